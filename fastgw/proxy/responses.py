"""Responses the gateway writes itself: small JSON errors and 100 Continue."""

from __future__ import annotations

import functools

import orjson

REASONS = {
    400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
    413: b"Content Too Large", 414: b"URI Too Long", 417: b"Expectation Failed",
    431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
    501: b"Not Implemented",
}

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@functools.lru_cache(maxsize=256)
def error_response(status: int, message: str, close: bool, head_only: bool = False,
                   http10: bool = False) -> bytes:
    """A complete response whose body is ``{"error": message, "status": status}``.

    ``http10``: the client speaks HTTP/1.0, so staying open must be said explicitly. Kept
    once made: the same few answers (404 for a scanner, 400s) are made again and again."""
    body = orjson.dumps({"error": message, "status": status})
    if close:
        connection = b"Connection: close\r\n"
    else:
        connection = b"Connection: keep-alive\r\n" if http10 else b""
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (
        status, REASONS.get(status, b"Error"), len(body), connection)
    return head if head_only else head + body
