"""``fastgw demo``: the gateway on an embedded configuration, in front of demo upstreams.

Everything runs in one process, on one uvloop loop: users-v1 (two targets) and users-v2 (one
target) are tiny HTTP/1.1 servers on free local ports that answer every request with JSON naming
themselves, and the gateway routes to them by API version, a sticky 90/10 canary split and a
consistent hash. The configuration is built here as data and checked by the normal loader, so it
is a real one. This module must not grow into a backend framework: the demo servers only echo.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys

from ._core import ChunkedReader, ParseError, RequestParser
from .config import ConfigError, load_config_bytes
from .config.schema import parse_address
from .plan import compile_plan
from .proxy.responses import REASONS
from .server import run_gateway, serve_in_process

log = logging.getLogger("fastgw")

DEFAULT_LISTEN = "127.0.0.1:8080"
CONFIG_NAME = "<demo>.json"  # not a file: the suffix tells the loader the format
MAX_HEAD = 16 * 1024  # bytes of request line + headers a demo upstream accepts
CANARY_ROUTE = "users-v1"
CRLF = "\r\n"


def demo_config(listen: str, v1_targets: list[str], v2_targets: list[str]) -> dict:
    """The embedded configuration, in the same shape as a file (see ``examples/``)."""
    users = r"(/v[0-9][0-9A-Za-z._-]*)?/users(/|$)"  # /users, /users/7, /v2/users/7
    return {
        "listen": listen,
        "versioning": {
            "header": "X-API-Version",
            "accept": "application/vnd.example.v{version}+json",
            "path": "/v{version}/",
            "default": "1",
            "precedence": ["path", "header", "accept"],
        },
        "upstreams": {
            "users-v1": {"balance": "consistent_hash", "hash_on": "header:X-User-Id",
                         "targets": [{"address": a} for a in v1_targets]},
            "users-v2": {"targets": [{"address": a} for a in v2_targets]},
        },
        "routes": [
            {"name": "health", "match": {"path": "/health"}, "upstream": "users-v1"},
            {"name": "users-v2", "match": {"path_regex": users, "version": "2"},
             "upstream": "users-v2", "strip_version": True},
            {"name": CANARY_ROUTE, "match": {"path_regex": users, "version": "1"},
             "split": [{"upstream": "users-v1", "weight": 90},
                       {"upstream": "users-v2", "weight": 10}],
             "sticky_on": "header:X-User-Id", "strip_version": True},
        ],
    }


class DemoConnection(asyncio.Protocol):
    """One connection to a demo target: keep-alive requests in, JSON responses out."""

    def __init__(self, target: DemoTarget) -> None:
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.parser = RequestParser(max_header_bytes=MAX_HEAD)  # the gateway's own parser
        self.body_left = 0  # Content-Length body bytes still to skip
        self.chunks: ChunkedReader | None = None  # while a chunked body passes
        self.pending: tuple[dict, bool, bool] | None = None  # the answer, once the body is read

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.target.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.target.connections.discard(self)

    def pause_writing(self) -> None:  # a client that does not read stops being read
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.transport.is_closing():
            if self.chunks is not None:
                try:
                    end = self.chunks.feed(self.buffer)
                except ParseError as exc:
                    self.fail(400, exc.reason)
                    return
                if end < 0:
                    self.buffer.clear()  # all body, all checked
                    return
                del self.buffer[:end]
                self.chunks = None
            if self.body_left:
                skipped = min(self.body_left, len(self.buffer))
                del self.buffer[:skipped]
                self.body_left -= skipped
                if self.body_left:
                    return
            if self.pending is not None:
                self.respond(200, *self.pending)
                self.pending = None
                continue
            try:
                head = self.parser.parse(self.buffer)
            except ParseError as exc:
                self.fail(exc.status, exc.reason)
                return
            if head is None:
                return
            del self.buffer[:head.head_length]
            self.answer(head)

    def answer(self, head) -> None:
        if head.chunked:
            self.chunks = ChunkedReader()
        else:
            self.body_left = max(head.content_length, 0)
        user = head.header(b"x-user-id")
        self.pending = ({"upstream": self.target.upstream, "target": self.target.address,
                         "method": head.method.decode("latin-1"),
                         "path": head.path.decode("latin-1"),
                         "user": user.decode("latin-1") if user else None},
                        not head.keep_alive, head.method == b"HEAD")

    def fail(self, status: int, error: str) -> None:
        self.respond(status, {"upstream": self.target.upstream, "target": self.target.address,
                              "error": error}, close=True)

    def respond(self, status: int, body: dict, close: bool, head_only: bool = False) -> None:
        payload = json.dumps(body).encode() + b"\n"
        reason = "OK" if status == 200 else REASONS.get(status, b"Error").decode()
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n{'Connection: close' + CRLF if close else ''}"
                f"\r\n")
        self.transport.write(head.encode("latin-1") + (b"" if head_only else payload))
        if close:
            self.transport.close()


class DemoTarget:
    """One demo upstream target: a socket bound to a free local port, served once started."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        host, port = self.sock.getsockname()
        self.address = f"{host}:{port}"
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[DemoConnection] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: DemoConnection(self), sock=self.sock)
        log.info("demo upstream %s: target %s started", self.upstream, self.address)

    async def stop(self) -> None:
        if self.server is None:
            self.sock.close()
            return
        self.server.close()
        for connection in list(self.connections):
            connection.transport.close()
        try:
            await asyncio.wait_for(self.server.wait_closed(), 1.0)
        except TimeoutError:
            log.warning("demo upstream %s: target %s did not close within 1 s", self.upstream,
                        self.address)


def _canary_users(config, count: int) -> tuple[list[str], list[str]]:
    """User ids that the sticky split sends to users-v2 (the canary) and to users-v1, asked of
    the compiled plan itself so the banner cannot disagree with the gateway."""
    split = next(r.split for r in compile_plan(config).routes if r.name == CANARY_ROUTE)
    canary, stable = [], []
    user = 0
    while len(canary) < count or len(stable) < count:
        user += 1
        side = canary if split.names[split.sticky(str(user).encode())] == "users-v2" else stable
        side.append(str(user))
    return canary[:count], stable[:count]


def banner(config, targets: list[DemoTarget]) -> str:
    host, port = config.listen_addresses()[0]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    v1 = ", ".join(t.address for t in targets if t.upstream == "users-v1")
    v2 = ", ".join(t.address for t in targets if t.upstream == "users-v2")
    canary, stable = _canary_users(config, 2)
    return f"""
fastgw demo: the gateway and its demo upstreams, in this one process
  gateway    {url}   (listening on {', '.join(config.listen)})
  users-v1   {v1}   (consistent hash on X-User-Id)
  users-v2   {v2}
  routes     /users, /v{{N}}/users: version 2 -> users-v2; version 1 (the default) -> a 10%
             canary: users-v1 90 / users-v2 10, sticky on X-User-Id;  /health -> users-v1

Try (each demo upstream answers with JSON naming itself):
  # API version 2 by header, by Accept, by path: users-v2
  curl -H 'X-API-Version: 2' {url}/users
  curl -H 'Accept: application/vnd.example.v2+json' {url}/users
  curl {url}/v2/users/7
  # version 1 (the default): user {canary[0]} is in the 10% canary (users-v2) on every request;
  # user {stable[0]} stays on users-v1, always on the same target (consistent hash on X-User-Id)
  curl -H 'X-User-Id: {canary[0]}' {url}/users
  curl -H 'X-User-Id: {stable[0]}' {url}/users
  # about 10 of 100 users are in the canary
  for u in $(seq 100); do curl -s -H "X-User-Id: $u" {url}/users; done | grep -c users-v2

Ctrl-C stops it.
"""


def run_demo(listen: str = DEFAULT_LISTEN) -> int:
    """Start the demo upstreams and the gateway on ``listen``; serve until SIGTERM/SIGINT."""
    targets: list[DemoTarget] = []
    try:
        for upstream in ("users-v1", "users-v1", "users-v2"):
            targets.append(DemoTarget(upstream))
    except OSError as exc:
        print(f"fastgw: cannot bind a demo upstream on 127.0.0.1: {exc.strerror or exc}",
              file=sys.stderr)
        for target in targets:
            target.sock.close()
        return 1
    raw = demo_config(listen, [t.address for t in targets if t.upstream == "users-v1"],
                      [t.address for t in targets if t.upstream == "users-v2"])
    try:
        parse_address(listen)  # a clearer message than the loader's "$.listen: ..."
        config = load_config_bytes(json.dumps(raw).encode(), CONFIG_NAME)
    except (ValueError, ConfigError) as exc:
        problem = exc if isinstance(exc, ConfigError) else f"--listen {listen}: {exc}"
        print(f"fastgw: {problem}", file=sys.stderr)
        for target in targets:
            target.sock.close()
        return 1

    async def main() -> int:
        try:
            for target in targets:
                await target.start()
            return await run_gateway(
                config, listening=lambda: print(banner(config, targets), flush=True))
        finally:
            for target in targets:
                await target.stop()

    return serve_in_process(config, CONFIG_NAME, main)
