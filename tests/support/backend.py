"""A real HTTP/1.1 backend for the integration tests, run in threads inside the test process.

Requests are parsed with h11, so anything fastgw forwards that is not valid HTTP/1.1 shows up as a
recorded protocol error. Every request is recorded as received (raw head bytes, raw-case headers,
body or its hash, the TCP connection it came on), and the backend counts connections and bytes so
tests can assert that nothing at all reached it. Responses are chosen by path:

    /echo              200 with the request body
    /size/N            N pattern bytes, Content-Length
    /chunked/N         N pattern bytes, chunked
    /close/N           N pattern bytes, close-delimited (HTTP/1.1, no framing headers)
    /close10/N         N pattern bytes, close-delimited HTTP/1.0 response
    /status/N          status N (204, 304 and 1xx without a body); ?cl=N adds Content-Length
    /slow/S            waits S seconds, then 200
    /stream-in         consumes the body (hashing it, not storing it); answers JSON length+sha256
    /hold-in           like /stream-in, but reads the body only once ``release`` is set
    /bad[/KIND]        a malformed response, then keeps the connection open
    /bad-chunk         a chunked response whose second chunk size is invalid
    /truncate          head with Content-Length 100, 10 bytes, then close
    /ws                101 Switching Protocols, then echoes raw bytes (?greet=1: sends "hello")
    /respond-early     answers 200 "early" (keep-alive) as soon as the head arrives, then reads
                       the body only once ``release`` is set; nothing more is sent at its end
    /reset/N           N pattern bytes, close-delimited, then a reset (RST), not a clean close
    anything else      200 with body "METHOD TARGET"

HEAD gets the same head as GET, without a body. It does not mock anything; it is a server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import select
import socket
import struct
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

import h11

from . import wait_until

MIB = 1 << 20
PATTERN = bytes(range(256)) * 4096  # 1 MiB; every body the backend makes is a prefix of PATTERN*
BODY_KEEP = MIB  # bodies (and raw framed bodies) longer than this are hashed, not stored

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def pattern_chunks(n: int, size: int = MIB):
    """Yield ``n`` bytes of the repeating test pattern as memoryviews of at most ``size`` bytes.

    The pattern repeats every 256 bytes, so ``size`` must be a multiple of 256."""
    assert size % 256 == 0, size
    view = memoryview(PATTERN * max(1, -(-size // len(PATTERN))))
    while n > 0:
        step = min(n, size)
        yield view[:step]
        n -= step


def pattern_bytes(n: int) -> bytes:
    return b"".join(bytes(c) for c in pattern_chunks(n))


@lru_cache(maxsize=16)
def pattern_sha256(n: int) -> str:
    digest = hashlib.sha256()
    for chunk in pattern_chunks(n):
        digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Received:
    """One request as the backend received it."""

    conn_id: int
    method: str
    target: str
    http_version: str
    headers: list[tuple[str, str]]  # raw-case names, in order, as received
    raw_head: bytes
    body: bytes | None = None  # None when longer than BODY_KEEP
    body_length: int = 0
    body_sha256: str = ""
    raw_body: bytes | None = None  # the body bytes with their framing; None when too long
    complete: bool = False
    dropped: bool = False  # closed without an answer (``drop_on_reused``)

    def values(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def header(self, name: str) -> str | None:
        """The single value of ``name``; fails if it appears more than once."""
        found = self.values(name)
        assert len(found) <= 1, f"header {name!r} appears {len(found)} times: {found!r}"
        return found[0] if found else None


@dataclass
class ConnRecord:
    conn_id: int
    bytes_received: int = 0
    requests: int = 0
    closed_by: str | None = None  # "peer", "backend", "backend-idle" or "error"
    errors: list[str] = field(default_factory=list)


class Backend:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.release = threading.Event()  # lets /hold-in read its body
        self.close_idle_after: float | None = None  # close keep-alive connections idle this long
        # close this many requests' connections without an answer when they arrive on a reused
        # connection: the race where the upstream closes an idle connection as a request arrives
        self.drop_on_reused = 0
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._live: dict[int, socket.socket] = {}
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Backend:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "backend-accept")
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self._stop.set()
        self.release.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._cond:
            live = list(self._live.values())
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    def reset(self) -> None:
        """Forget everything recorded so far (live connections keep being served)."""
        with self._cond:
            self.requests: list[Received] = []
            self.connections: dict[int, ConnRecord] = {}
            self.connections_accepted = 0
            self.bytes_received = 0
            self.bytes_sent = 0
            self.protocol_errors: list[str] = []
            self.idle_closes = 0
            self.drop_on_reused = 0

    def _spawn(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- waiting ---------------------------------------------------------------------------

    def summary(self) -> str:
        with self._cond:
            reqs = [f"  conn {r.conn_id}: {r.method} {r.target} complete={r.complete}"
                    f"{' dropped' if r.dropped else ''}" for r in self.requests]
            conns = [f"  conn {c.conn_id}: {c.bytes_received} bytes, {c.requests} requests, "
                     f"closed_by={c.closed_by} {c.errors}" for c in self.connections.values()]
            return (f"backend: {self.connections_accepted} connections accepted, "
                    f"{self.bytes_received} bytes received, protocol errors {self.protocol_errors}\n"
                    + "\n".join(reqs + conns))

    def wait_for(self, predicate, timeout: float, what: str):
        return wait_until(lambda: self._locked(predicate), timeout, what, details=self.summary)

    def _locked(self, predicate):
        with self._cond:
            return predicate()

    def wait_requests(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``n`` complete requests were received; return the complete ones."""
        self.wait_for(lambda: sum(r.complete for r in self.requests) >= n, timeout,
                      f"{n} complete request(s) at the backend")
        with self._cond:
            return [r for r in self.requests if r.complete]

    def open_connection_ids(self) -> set[int]:
        """Connections still being served (call under the lock, e.g. in a wait_for predicate)."""
        return set(self._live)

    def complete_requests(self) -> list[Received]:
        with self._cond:
            return [r for r in self.requests if r.complete]

    # -- serving ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            conn_id = peer[1]
            with self._cond:
                self.connections_accepted += 1
                record = ConnRecord(conn_id)
                self.connections[conn_id] = record
                self._live[conn_id] = sock
                self._cond.notify_all()
            self._spawn(self._serve, f"backend-conn-{conn_id}", sock, record)

    def _count_in(self, record: ConnRecord, n: int) -> None:
        with self._cond:
            record.bytes_received += n
            self.bytes_received += n

    def _send(self, sock: socket.socket, data) -> None:
        sock.sendall(data)
        with self._cond:
            self.bytes_sent += len(data)

    def _serve(self, sock: socket.socket, record: ConnRecord) -> None:
        try:
            self._serve_requests(sock, record)
        except OSError as exc:
            with self._cond:
                record.errors.append(repr(exc))
                record.closed_by = record.closed_by or "error"
        finally:
            with self._cond:
                self._live.pop(record.conn_id, None)
                self._cond.notify_all()
            sock.close()

    def _serve_requests(self, sock: socket.socket, record: ConnRecord) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=256 * 1024)
        window = bytearray()  # received bytes from absolute offset ``base`` on
        base = 0
        fed = 0  # absolute count of bytes fed to h11
        req_start = 0
        peer_closed = False
        current: Received | None = None
        keep_raw = True
        body_start = 0
        digest = None
        body_parts: list[bytes] | None = None

        def consumed() -> int:
            return fed - len(conn.trailing_data[0])

        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                with self._cond:
                    self.protocol_errors.append(f"conn {record.conn_id}: {exc}")
                    record.closed_by = "backend"
                    self._cond.notify_all()
                return
            if event is h11.NEED_DATA:
                idle = current is None and not conn.trailing_data[0]
                if idle and self.close_idle_after is not None:
                    sock.settimeout(self.close_idle_after)
                else:
                    sock.settimeout(None)
                try:
                    data = sock.recv(MIB)
                except TimeoutError:
                    with self._cond:
                        record.closed_by = "backend-idle"
                        self.idle_closes += 1
                        self._cond.notify_all()
                    return
                except OSError:
                    data = b""
                if not data:
                    peer_closed = True
                    with self._cond:
                        record.closed_by = record.closed_by or "peer"
                        self._cond.notify_all()
                    conn.receive_data(b"")
                    continue
                self._count_in(record, len(data))
                fed += len(data)
                window += data
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return
            if isinstance(event, h11.Request):
                at = consumed()
                current = Received(
                    conn_id=record.conn_id,
                    method=event.method.decode("latin-1"),
                    target=event.target.decode("latin-1"),
                    http_version=event.http_version.decode("latin-1"),
                    headers=[(n.decode("latin-1"), v.decode("latin-1"))
                             for n, v in event.headers.raw_items()],
                    raw_head=bytes(window[req_start - base:at - base]),
                )
                del window[:at - base]
                base = body_start = at
                keep_raw = True
                digest = hashlib.sha256()
                body_parts = []
                with self._cond:
                    self.requests.append(current)
                    record.requests += 1
                    self._cond.notify_all()
                path = urlsplit(current.target).path
                if path == "/respond-early":
                    self._send(sock, f"HTTP/1.1 200 OK\r\nX-Backend-Conn: {record.conn_id}\r\n"
                               "Content-Length: 5\r\n\r\nearly".encode())
                if path in ("/hold-in", "/respond-early"):
                    self.release.wait(timeout=60)
                continue
            if isinstance(event, h11.Data):
                assert current is not None and digest is not None
                digest.update(event.data)
                current.body_length += len(event.data)
                if body_parts is not None:
                    if current.body_length > BODY_KEEP:
                        body_parts = None
                    else:
                        body_parts.append(bytes(event.data))
                if keep_raw and fed - body_start > BODY_KEEP:
                    keep_raw = False
                if not keep_raw:
                    at = consumed()
                    del window[:at - base]
                    base = at
                continue
            if isinstance(event, h11.EndOfMessage):
                assert current is not None and digest is not None
                at = consumed()
                current.raw_body = bytes(window[body_start - base:at - base]) if keep_raw else None
                current.body = b"".join(body_parts) if body_parts is not None else None
                current.body_sha256 = digest.hexdigest()
                del window[:at - base]
                base = req_start = at
                with self._cond:
                    current.complete = True
                    self._cond.notify_all()
                leftover = conn.trailing_data[0]
                with self._cond:
                    drop = self.drop_on_reused > 0 and record.requests > 1
                    if drop:
                        self.drop_on_reused -= 1
                        current.dropped = True
                if drop:
                    self._close(sock, record)
                    return
                outcome = self._respond(sock, current, record, leftover)
                if outcome != "keep":
                    return
                current = None
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=256 * 1024)
                if leftover:
                    conn.receive_data(leftover)
                if peer_closed:
                    conn.receive_data(b"")
                continue
            # InformationalResponse etc. cannot arrive at a server; anything else is ignored.

    # -- responses -------------------------------------------------------------------------

    def _respond(self, sock: socket.socket, req: Received, record: ConnRecord,
                 leftover: bytes) -> str:
        """Answer ``req``; return "keep" to read the next request, anything else to stop."""
        split = urlsplit(req.target)
        parts = split.path.strip("/").split("/")
        query = parse_qs(split.query)
        head_only = req.method == "HEAD"
        kind = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        extra = f"X-Backend-Conn: {req.conn_id}\r\n"

        def head(status: str, headers: str) -> bytes:
            return f"HTTP/1.1 {status}\r\n{extra}{headers}\r\n".encode("latin-1")

        if kind == "echo":
            body = req.body if req.body is not None else json.dumps(
                {"length": req.body_length, "sha256": req.body_sha256}).encode()
            self._send(sock, head("200 OK", f"Content-Length: {len(body)}\r\n")
                       + (b"" if head_only else body))
        elif kind in ("stream-in", "hold-in"):
            body = json.dumps({"length": req.body_length, "sha256": req.body_sha256}).encode()
            self._send(sock, head("200 OK", "Content-Type: application/json\r\n"
                                  f"Content-Length: {len(body)}\r\n") + (b"" if head_only else body))
        elif kind == "size":
            n = int(arg)
            self._send(sock, head("200 OK", f"Content-Length: {n}\r\n"))
            if not head_only:
                for chunk in pattern_chunks(n):
                    self._send(sock, chunk)
        elif kind == "chunked":
            n = int(arg)
            self._send(sock, head("200 OK", "Transfer-Encoding: chunked\r\n"))
            if not head_only:
                pieces = list(pattern_chunks(n, 256 * 1024))
                if pieces:  # a one-byte chunk first, then big ones
                    pieces[:1] = [pieces[0][:1], pieces[0][1:]]
                for chunk in pieces:
                    if chunk:
                        self._send(sock, b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
                self._send(sock, b"0\r\n\r\n")
        elif kind in ("close", "close10"):
            n = int(arg)
            if kind == "close":
                self._send(sock, head("200 OK", "Connection: close\r\n"))
            else:
                self._send(sock, b"HTTP/1.0 200 OK\r\n" + extra.encode() + b"\r\n")
            if not head_only:
                for chunk in pattern_chunks(n):
                    self._send(sock, chunk)
            self._close(sock, record)
            return "close"
        elif kind == "status":
            code = int(arg)
            headers = ""
            if code == 304:
                headers += 'ETag: "v1"\r\n'
            if "cl" in query:
                headers += f"Content-Length: {query['cl'][0]}\r\n"
            if code in (204, 304) or code < 200:
                self._send(sock, head(f"{code} Status", headers))
            else:
                body = f"status {code}".encode()
                headers += "" if "cl" in query else f"Content-Length: {len(body)}\r\n"
                self._send(sock, head(f"{code} Status", headers) + (b"" if head_only else body))
        elif kind == "slow":
            if not self._wait_unless_closed(sock, record, float(arg)):
                return "stop"
            self._send(sock, head("200 OK", "Content-Length: 4\r\n") + (b"" if head_only else b"slow"))
        elif kind == "bad":
            bad = {
                "": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
                "status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
                "garbage": b"THIS IS NOT HTTP\r\n\r\n",
                "header": b"HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 2\r\n\r\nok",
                "cl": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok",
                "version": b"HTTP/9.9 200 OK\r\nContent-Length: 2\r\n\r\nok",
            }[arg]
            self._send(sock, bad)
            return self._hold_until_peer_closes(sock, record)
        elif kind == "bad-chunk":
            self._send(sock, head("200 OK", "Transfer-Encoding: chunked\r\n")
                       + b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")
            return self._hold_until_peer_closes(sock, record)
        elif kind == "truncate":
            self._send(sock, head("200 OK", "Content-Length: 100\r\n") + b"0123456789")
            self._close(sock, record)
            return "close"
        elif kind == "respond-early":
            pass  # answered when the head arrived
        elif kind == "reset":
            self._send(sock, head("200 OK", "Connection: close\r\n"))
            for chunk in pattern_chunks(int(arg)):
                self._send(sock, chunk)
            with self._cond:
                record.closed_by = "backend"
                self._cond.notify_all()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return "close"  # the caller closes the socket: with linger 0, that is a reset
        elif kind == "ws":
            key = req.header("Sec-WebSocket-Key") or ""
            accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
            greeting = b"hello" if "greet" in query else b""
            self._send(sock, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\n" + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
                       + greeting)
            self._echo(sock, record, leftover)
            return "tunnel"
        else:
            body = f"{req.method} {req.target}".encode("latin-1")
            self._send(sock, head("200 OK", "Content-Type: text/plain\r\n"
                                  f"Content-Length: {len(body)}\r\n") + (b"" if head_only else body))
        return "keep"

    def _wait_unless_closed(self, sock: socket.socket, record: ConnRecord, seconds: float) -> bool:
        """Wait ``seconds``; False if the peer closed the connection (or we stop) meanwhile."""
        readable, _, _ = select.select([sock], [], [], seconds)
        if readable:
            try:
                closed = sock.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                closed = True
            if closed:
                with self._cond:
                    record.closed_by = "peer"
                    self._cond.notify_all()
                return False
            # a pipelined request is waiting: keep the delay anyway
            return not self._stop.wait(seconds)
        return not self._stop.is_set()

    def _close(self, sock: socket.socket, record: ConnRecord) -> None:
        with self._cond:
            record.closed_by = "backend"
            self._cond.notify_all()
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _hold_until_peer_closes(self, sock: socket.socket, record: ConnRecord) -> str:
        """Keep a connection we broke open until the proxy closes it (it must discard it)."""
        sock.settimeout(30)
        try:
            while sock.recv(MIB):
                pass
            closed_by = "peer"
        except TimeoutError:
            closed_by = "backend"
        except OSError:
            closed_by = "peer"
        with self._cond:
            record.closed_by = closed_by
            self._cond.notify_all()
        return "close"

    def _echo(self, sock: socket.socket, record: ConnRecord, leftover: bytes) -> None:
        """The tunnel side of /ws: send back every byte received, until the peer closes."""
        if leftover:
            self._send(sock, leftover)
        sock.settimeout(30)
        while True:
            try:
                data = sock.recv(MIB)
            except OSError:
                data = b""
            if not data:
                break
            self._count_in(record, len(data))
            self._send(sock, data)
        with self._cond:
            record.closed_by = "peer"
            self._cond.notify_all()
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
