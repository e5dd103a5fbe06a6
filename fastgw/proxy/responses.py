"""Responses the gateway writes itself: small JSON errors and 100 Continue."""

from __future__ import annotations

import orjson

REASONS = {
    400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
    413: b"Content Too Large", 414: b"URI Too Long", 417: b"Expectation Failed",
    431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
}

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def error_response(status: int, message: str, close: bool, head_only: bool = False) -> bytes:
    """A complete response whose body is ``{"error": message, "status": status}``."""
    body = orjson.dumps({"error": message, "status": status})
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (
        status,
        REASONS.get(status, b"Error"),
        len(body),
        b"Connection: close\r\n" if close else b"",
    )
    return head if head_only else head + body
