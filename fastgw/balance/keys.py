"""The consistent-hash key of a request, compiled once from ``hash_on`` (sans-IO).

``header:NAME`` the header's value; ``cookie:NAME`` that cookie's value; ``query:NAME`` that
query argument's raw (undecoded) value; ``ip`` the client address; ``path`` the path without
the query; ``uri`` path and query as received (nginx's ``$request_uri``). A missing or empty
key gives None: the balancer then falls back to round robin, as nginx does.
"""

from __future__ import annotations

from collections.abc import Callable

KeyFunction = Callable[[object, bytes], "bytes | None"]


def compile_key(hash_on: str) -> KeyFunction:
    kind, _, name = hash_on.partition(":")
    wanted = name.lower().encode()
    if kind == "header":
        return lambda head, ip: head.header(wanted) or None
    if kind == "cookie":
        return lambda head, ip: _cookie(head.header(b"cookie"), name.encode())
    if kind == "query":
        return lambda head, ip: _query_argument(head.path, name.encode())
    if kind == "ip":
        return lambda head, ip: ip
    if kind == "path":
        return lambda head, ip: head.path.partition(b"?")[0]
    if kind == "uri":
        return lambda head, ip: head.path
    raise ValueError(f"unknown hash_on {hash_on!r}")


def _cookie(header: bytes | None, name: bytes) -> bytes | None:
    if not header:
        return None
    for pair in header.split(b";"):
        key, sep, value = pair.strip(b" \t").partition(b"=")
        if sep and key == name:
            return value.strip(b'"') or None
    return None


def _query_argument(path: bytes, name: bytes) -> bytes | None:
    query = path.partition(b"?")[2].partition(b"#")[0]
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == name:
            return value or None
    return None
