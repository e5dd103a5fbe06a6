"""proxy.py reverse-proxy plugin: every path goes to the benchmark backend, path kept as is.

Loaded by ``proxy --enable-reverse-proxy --plugins bench.peers.proxypy_reverse.ToBackend``
with the backend's "host:port" in ``BENCH_BACKEND``. proxy.py's reverse proxy opens a new
upstream connection per request (its connection pool serves only the forward proxy); that is
how it ships, so it is measured that way.
"""

from __future__ import annotations

import os
from typing import Any

from proxy.http import Url
from proxy.http.server import ReverseProxyBasePlugin

BACKEND = os.environ.get("BENCH_BACKEND", "127.0.0.1:9001").encode()


class ToBackend(ReverseProxyBasePlugin):
    """One dynamic route matching everything; the upstream URL keeps the request's path."""

    def routes(self) -> list[Any]:
        return [r"/.*"]

    def handle_route(self, request: Any, pattern: Any) -> Url:
        return Url.from_bytes(b"http://" + BACKEND + (request.path or b"/"))
