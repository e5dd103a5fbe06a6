"""Route matching: the first route whose conditions all hold wins. Pure and sans-IO.

Routes are compiled once per plan into byte-level conditions, so the per-request work is a
few ``startswith``/equality checks on the raw path and host, with no decoding.
"""

from __future__ import annotations


class CompiledRoute:
    __slots__ = ("index", "name", "upstream", "host", "path", "path_prefix")

    def __init__(self, index: int, name: str, upstream: str, host: str | None,
                 path: str | None, path_prefix: str | None) -> None:
        self.index = index
        self.name = name
        self.upstream = upstream
        self.host = host.lower().encode() if host else None
        self.path = path.encode() if path else None
        self.path_prefix = path_prefix.encode() if path_prefix and path_prefix != "/" else None

    def matches(self, host: bytes, path: bytes) -> bool:
        if self.host is not None and self.host != host:
            return False
        if self.path is not None and self.path != path:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


def _request_host(host: bytes) -> bytes:
    """Host without port, lowercased (IPv6 literals keep their brackets)."""
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[: end + 1].lower() if end > 0 else host.lower()
    colon = host.find(b":")
    return (host[:colon] if colon >= 0 else host).lower()


class Router:
    """Ordered routes; ``match`` returns the first that matches, or None."""

    __slots__ = ("routes", "_catch_all")

    def __init__(self, routes: list[CompiledRoute]) -> None:
        self.routes = routes
        first = routes[0] if routes else None
        # The most common table: a single catch-all route. Answer it without looking.
        self._catch_all = first if first is not None and first.host is None and \
            first.path is None and first.path_prefix is None else None

    def match(self, host: bytes, target: bytes):
        if self._catch_all is not None:
            return self._catch_all
        query = target.find(b"?")
        path = target[:query] if query >= 0 else target
        host = _request_host(host)
        for route in self.routes:
            if route.matches(host, path):
                return route
        return None
