"""A raw-socket HTTP/1.1 client for the integration tests.

It sends exactly the bytes a test gives it (malformed ones included) and reads responses strictly:
CRLF line endings, a framed body (Content-Length, chunked, or until close), no body for HEAD, 1xx,
204 and 304. Every read has a deadline; a timeout fails with what was received so far.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

MIB = 1 << 20


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    raw_head: bytes
    body: bytes = b""
    body_length: int = 0
    framing: str = "none"  # "content-length", "chunked", "close" or "none"

    def values(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def header(self, name: str) -> str | None:
        found = self.values(name)
        assert len(found) <= 1, f"response header {name!r} appears {len(found)} times: {found!r}"
        return found[0] if found else None

    def json(self):
        return json.loads(self.body)

    def connection_tokens(self) -> set[str]:
        return {t.strip().lower() for v in self.values("Connection") for t in v.split(",")}


class ConnectionClosed(AssertionError):
    """The peer closed the connection before a whole response arrived."""


class Client:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    # -- low-level reads -------------------------------------------------------------------

    def _fill(self, deadline: float, what: str) -> None:
        """Receive more bytes into the buffer; fail on timeout, raise ConnectionClosed on EOF."""
        if self.eof:
            raise ConnectionClosed(f"connection closed while waiting for {what}; "
                                   f"buffered: {bytes(self.buf[:300])!r}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what}; received: {bytes(self.buf[:300])!r}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(MIB)
        except TimeoutError:
            raise AssertionError(f"timed out after {self.timeout}s waiting for {what}; "
                                 f"received: {bytes(self.buf[:300])!r}") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise ConnectionClosed(f"connection closed while waiting for {what}; "
                                   f"buffered: {bytes(self.buf[:300])!r}")
        self.buf += data

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def read_until(self, marker: bytes, timeout: float | None = None, what: str = "") -> bytes:
        deadline = self._deadline(timeout)
        while True:
            at = self.buf.find(marker)
            if at >= 0:
                out = bytes(self.buf[:at + len(marker)])
                del self.buf[:at + len(marker)]
                return out
            self._fill(deadline, what or repr(marker))

    def read_exactly(self, n: int, timeout: float | None = None) -> bytes:
        deadline = self._deadline(timeout)
        while len(self.buf) < n:
            self._fill(deadline, f"{n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def take_buffered(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_to_eof(self, timeout: float | None = None,
                    sink: Callable[[bytes], None] | None = None) -> bytes:
        """Read until the peer closes; fail if it does not within the timeout."""
        deadline = self._deadline(timeout)
        out = bytearray()
        while True:
            if self.buf:
                if sink is not None:
                    sink(bytes(self.buf))
                else:
                    out += self.buf
                self.buf.clear()
            try:
                self._fill(deadline, "the connection to close")
            except ConnectionClosed:
                return bytes(out)

    def assert_closed(self, timeout: float | None = None) -> None:
        """The peer closes the connection without sending anything more."""
        rest = self.read_to_eof(timeout)
        assert rest == b"", f"expected the connection to close, got more bytes: {rest[:300]!r}"

    def is_open_and_quiet(self) -> bool:
        """True if the connection is neither closed nor has unread bytes right now."""
        if self.buf or self.eof:
            return False
        self.sock.setblocking(False)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            self.sock.setblocking(True)
        return False  # either unread bytes or EOF

    # -- responses ---------------------------------------------------------------------------

    def read_head(self, timeout: float | None = None) -> Response:
        raw = self.read_until(b"\r\n\r\n", timeout, "a response head")
        lines = raw[:-4].split(b"\r\n")
        for line in lines:
            assert b"\n" not in line and b"\r" not in line, f"bad line ending in head {raw!r}"
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        assert version in (b"HTTP/1.1", b"HTTP/1.0"), f"bad status line {lines[0]!r}"
        assert len(code) == 3 and code.isdigit(), f"bad status line {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon and name and name == name.strip(), f"bad header line {line!r} in {raw!r}"
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        return Response(version.decode(), int(code), reason.decode("latin-1"), headers, raw)

    def read_response(self, method: str = "GET", timeout: float | None = None,
                      sink: Callable[[bytes], None] | None = None) -> Response:
        """Read one response (a 1xx is returned on its own). ``sink`` receives the body instead
        of the response keeping it."""
        deadline = self._deadline(timeout)
        resp = self.read_head(timeout)
        out = bytearray()

        def take(data) -> None:
            resp.body_length += len(data)
            if sink is not None:
                sink(bytes(data))
            else:
                out.extend(data)

        te = ",".join(resp.values("Transfer-Encoding")).lower()
        cl = resp.values("Content-Length")
        if method == "HEAD" or resp.status < 200 or resp.status in (204, 304):
            resp.framing = "none"
        elif te:
            assert te.strip() == "chunked", f"unexpected Transfer-Encoding {te!r}"
            resp.framing = "chunked"
            while True:
                line = self.read_until(b"\r\n", deadline - time.monotonic(), "a chunk size line")
                size_text = line[:-2].split(b";")[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise AssertionError(f"invalid chunk size line {line!r}") from None
                if size == 0:
                    while self.read_until(b"\r\n", deadline - time.monotonic(),
                                          "the end of the trailers") != b"\r\n":
                        pass
                    break
                self._read_body(size, deadline, take)
                crlf = self.read_exactly(2, deadline - time.monotonic())
                assert crlf == b"\r\n", f"chunk not followed by CRLF: {crlf!r}"
        elif cl:
            assert len(set(cl)) == 1, f"several Content-Length values {cl!r}"
            resp.framing = "content-length"
            self._read_body(int(cl[0]), deadline, take)
        else:
            resp.framing = "close"
            while True:
                if self.buf:
                    take(self.buf)
                    self.buf.clear()
                try:
                    self._fill(deadline, "the end of a close-delimited body")
                except ConnectionClosed:
                    break
        resp.body = bytes(out)
        return resp

    def _read_body(self, n: int, deadline: float, take: Callable) -> None:
        while n > 0:
            if not self.buf:
                self._fill(deadline, f"{n} more body bytes")
            step = min(n, len(self.buf))
            take(memoryview(self.buf)[:step])
            del self.buf[:step]
            n -= step

    def request(self, method: str, target: str, headers: list[tuple[str, str]] | None = None,
                body: bytes | None = None, host: str = "test.local",
                timeout: float | None = None) -> Response:
        self.send(build_request(method, target, headers, body, host))
        return self.read_response(method, timeout)


def build_request(method: str, target: str, headers: list[tuple[str, str]] | None = None,
                  body: bytes | None = None, host: str | None = "test.local") -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body is not None and not any(n.lower() in ("content-length", "transfer-encoding")
                                    for n, _ in headers or []):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def chunked(*parts: bytes) -> bytes:
    """Encode ``parts`` as chunks, with the last chunk and an empty trailer section."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"
