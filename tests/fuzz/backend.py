"""The upstream of a fuzz campaign: a raw TCP server that keeps what fastgw forwards.

Every byte received is framed by the strict reference (``strict.FORWARDED`` rules: what fastgw
may send upstream), per connection, as it arrives. Each complete request is recorded as a
``Forwarded`` with its raw bytes and answered with one fixed, valid response that names the case
and the request's index in it (``X-Fuzz-Case: N.K``), so the client side can tell that the
response it got belongs to the request it sent. Bytes the reference refuses are recorded with
the refusal, and the connection is closed: nothing after a framing error can be trusted.

A forwarded WebSocket upgrade is answered 101, and the connection then sends back every byte
it receives (the tunnel).

Requests are attributed to cases by the client address fastgw appends to X-Forwarded-For: each
case connects from its own loopback address (``case_address``). The server runs its own event
loop in a thread, so it keeps serving while the test's client side waits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import threading
from collections import defaultdict
from dataclasses import dataclass

import uvloop

from .strict import FORWARDED, Message, Violation, frame_request

CASE_BASE = int(ipaddress.IPv4Address("127.16.0.0"))
CASE_SPAN = int(ipaddress.IPv4Address("127.255.255.0")) - CASE_BASE
PROBE_ADDRESS = "127.0.0.2"  # a request that is no case: the sanity check after a campaign
XFF_TAIL = re.compile(rb"\r\nX-Forwarded-For: (?:[^\r\n]*, )?(127\.\d+\.\d+\.\d+)\r\n")


def case_address(number: int) -> str:
    """The loopback address case ``number`` connects from."""
    return str(ipaddress.IPv4Address(CASE_BASE + number % CASE_SPAN))


def case_of_address(address: bytes) -> int | None:
    try:
        value = int(ipaddress.IPv4Address(address.decode("ascii"))) - CASE_BASE
    except (ValueError, UnicodeDecodeError):
        return None
    return value if 0 <= value < CASE_SPAN else None


@dataclass
class Forwarded:
    """One request as it reached the upstream (or the bytes that could not be framed)."""

    case: int | None
    conn: int
    message: Message | None  # None when nothing could be framed
    raw: bytes  # the bytes of this request as received (for an error: all that followed)
    error: str | None = None  # the reference's refusal
    complete: bool = True  # False: the connection closed in the middle of this request
    probe: bool = False

    def describe(self) -> str:
        state = ("complete" if self.complete else "cut short") if self.error is None else (
            f"REFUSED by the reference: {self.error}")
        return f"upstream conn {self.conn}, {state}: {self.raw[:2000]!r}"


def _case_in(raw: bytes) -> tuple[int | None, bool]:
    """(case, is the probe) from the X-Forwarded-For in raw head bytes."""
    found = XFF_TAIL.search(raw)
    if not found:
        return None, False
    if found.group(1) == PROBE_ADDRESS.encode():
        return None, True
    return case_of_address(found.group(1)), False


# the answer, framed three ways (so HTTP/1.0 clients also get chunked bodies decoded)
RESPONSES = (
    (b"HTTP/1.1 200 OK\r\nX-Fuzz-Case: %d.%d\r\nContent-Length: 2\r\n\r\n", b"ok"),
    (b"HTTP/1.1 200 OK\r\nX-Fuzz-Case: %d.%d\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"2\r\nok\r\n0\r\n\r\n"),
    (b"HTTP/1.1 200 OK\r\nX-Fuzz-Case: %d.%d\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"1;x=y\r\no\r\n1\r\nk\r\n0\r\nX-Done: 1\r\n\r\n"),
    # then the backend closes: the gateway must not reuse the connection, nor tell the client
    (b"HTTP/1.1 200 OK\r\nX-Fuzz-Case: %d.%d\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
     b"ok"),
)


ANSWER_TRAILERS = [(b"X-Done", b"1")]  # those of the third way of framing the answer
# the answer to a WebSocket upgrade: then the connection echoes what it receives
SWITCHING = (b"HTTP/1.1 101 Switching Protocols\r\nX-Fuzz-Case: %d.%d\r\nConnection: Upgrade\r\n"
             b"Upgrade: websocket\r\n\r\n")


def upgrades(msg: Message) -> bool:
    """The backend switches to a tunnel for a forwarded WebSocket upgrade."""
    return b"websocket" in msg.elements(b"upgrade") and b"upgrade" in msg.elements(b"connection")


def answer_kind(case: int, index: int) -> int:
    """Which of RESPONSES answers request ``index`` of ``case``."""
    return (case + index) % len(RESPONSES)


class _Connection(asyncio.Protocol):
    def __init__(self, backend: RecordingBackend, conn_id: int) -> None:
        self.backend = backend
        self.conn_id = conn_id
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.finished = False  # nothing more is read (refused, or closed after an answer)
        self.pending: int | None = None  # the case of a request in progress here
        self.tunnel = False  # after a 101: every byte is sent back as it is

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.finished:
            return
        self.backend.bytes_received += len(data)
        if self.tunnel:
            self.transport.write(data)
            return
        self.buf += data
        self.backend.frame(self)

    def eof_received(self) -> bool:
        return False  # close (a tunnel's echo is written already)

    def connection_lost(self, exc) -> None:
        self.backend.closed(self)


class RecordingBackend:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.lock = threading.Lock()
        self.records: dict[int, list[Forwarded]] = defaultdict(list)  # by case
        self.unattributed: list[Forwarded] = []
        self.late: list[Forwarded] = []  # for cases already checked
        self.checked: set[int] = set()
        self.probes: list[Forwarded] = []
        self.busy: dict[int, int] = defaultdict(int)  # case -> connections mid-request
        self.connections = 0
        self.requests = 0
        self.bytes_received = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> RecordingBackend:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fuzz-backend",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fuzz backend did not start")
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = uvloop.new_event_loop()
        server = loop.run_until_complete(loop.create_server(self._accept, self.host, 0,
                                                            backlog=512))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    def _accept(self) -> _Connection:
        self.connections += 1
        return _Connection(self, self.connections)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- what the campaign reads ----------------------------------------------------------

    def is_busy(self, case: int) -> bool:
        """A connection is in the middle of a request of ``case``."""
        with self.lock:
            return self.busy.get(case, 0) > 0

    def take(self, case: int) -> list[Forwarded]:
        """The requests of ``case``, in arrival order; later ones count as late."""
        with self.lock:
            self.checked.add(case)
            self.busy.pop(case, None)
            return self.records.pop(case, [])

    def take_strays(self) -> list[Forwarded]:
        """Records no case can claim, and those that arrived after their case was checked."""
        with self.lock:
            strays, self.unattributed, self.late = self.unattributed + self.late, [], []
            return strays

    # -- framing (backend thread) ---------------------------------------------------------

    def _record(self, item: Forwarded) -> int:
        """Store ``item``; return its index among its case's requests."""
        with self.lock:
            if item.probe:
                self.probes.append(item)
                return len(self.probes) - 1
            if item.case is None:
                self.unattributed.append(item)
                return 0
            if item.case in self.checked:
                self.late.append(item)
                return 0
            records = self.records[item.case]
            records.append(item)
            return sum(1 for r in records if r.complete and r.error is None) - 1

    def _set_pending(self, conn: _Connection, case: int | None) -> None:
        with self.lock:
            if conn.pending is not None:
                self.busy[conn.pending] -= 1
            conn.pending = case
            if case is not None:
                self.busy[case] += 1

    def frame(self, conn: _Connection) -> None:
        buf = conn.buf
        pos = 0
        while pos < len(buf):
            try:
                msg = frame_request(buf, pos, FORWARDED)
            except Violation as exc:
                case, probe = _case_in(buf[pos:])
                self._record(Forwarded(case, conn.conn_id, exc.head, buf[pos:], error=exc.reason,
                                       probe=probe))
                self._set_pending(conn, None)
                conn.finished = True
                conn.transport.close()
                return
            if msg is None or not msg.complete:
                self._set_pending(conn, _case_in(buf[pos:])[0])
                break
            case, probe = _case_in(buf[msg.start:msg.head_end])
            index = self._record(Forwarded(case, conn.conn_id, msg, buf[msg.start:msg.end],
                                           probe=probe))
            self.requests += 1
            self._set_pending(conn, None)
            number = -1 if case is None else case
            if upgrades(msg):
                conn.transport.write(SWITCHING % (number, index) + buf[msg.end:])
                conn.tunnel = True
                conn.buf = b""
                return
            head, body = RESPONSES[answer_kind(number, index)]
            head %= (number, index)
            conn.transport.write(head if msg.method == b"HEAD" else head + body)
            pos = msg.end
            if b"Connection: close" in head:
                conn.finished = True
                conn.transport.close()
                break
        conn.buf = buf[pos:]

    def closed(self, conn: _Connection) -> None:
        if conn.buf and not conn.finished:
            rest = conn.buf
            try:
                head = frame_request(rest, 0, FORWARDED)
            except Violation:
                head = None
            case, probe = _case_in(rest)
            self._record(Forwarded(case, conn.conn_id, head, rest, complete=False, probe=probe))
        self._set_pending(conn, None)
