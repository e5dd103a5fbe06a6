# cython: boundscheck=True, wraparound=True, annotation_typing=False
"""Client side of the data path: one ClientConnection per accepted socket.

It owns the connection: reading request heads, collecting small bodies whole (so a bad
request never reaches an upstream, and the request can be replayed) or streaming large ones,
pipelining in order, flow control both ways, the connection's deadline, and writing the
gateway's own answers. What happens to each request (route, attempts, response, the one
``finish()``) is its Exchange's business (exchange.py). Protocol callbacks call each other:
there is no Task or Future per request.
"""

from __future__ import annotations

import logging
import socket
import struct

from .._core import ChunkedReader, ParseError
from .exchange import ATTEMPT, Exchange, connection_closes
from .outcome import Outcome
from .responses import CONTINUE, error_response

log = logging.getLogger("fastgw.proxy")

LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST

# phases of a client connection
IDLE = 0  # between requests, nothing received yet (idle deadline)
HEAD = 1  # receiving a request head (header deadline, not reset by trickling bytes)
BODY = 2  # head parsed, collecting a small body before choosing an upstream
PROXYING = 3  # request handed to an upstream; body may still be streaming
TUNNEL = 4  # after a 101: bytes both ways
CLOSED = 5


class ClientConnection:  # an asyncio protocol (uvloop needs no base class)
    __slots__ = (
        "gw", "transport", "buf", "phase", "deadline", "exchange", "body_left", "chunks", "scan",
        "pending", "eof", "pause_pipeline", "pause_upstream", "reading_paused", "write_paused",
        "client_ip", "xff_tail", "fresh",
    )

    def __init__(self, gw) -> None:
        self.gw = gw
        self.transport = None
        self.buf = b""  # received bytes not yet consumed (a head, a small body, pipelined requests)
        self.phase = IDLE
        self.deadline = 0.0
        self.exchange = None  # the request in progress
        self.body_left = 0  # Content-Length: body bytes still to come; chunked: bytes seen
        self.chunks = None  # ChunkedReader while a chunked body passes
        self.scan = 0  # where chunked validation continues in buf
        self.pending = b""  # streamed body bytes that arrived while the upstream was connecting
        self.eof = False
        self.pause_pipeline = False  # reading paused: pipelined or pending bytes piled up
        self.pause_upstream = False  # reading paused: the upstream is not taking the body
        self.reading_paused = False
        self.write_paused = False
        self.client_ip = b""
        self.xff_tail = b""
        self.fresh = True  # no request received yet on this connection

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        gw = self.gw
        self.transport = transport
        transport.set_write_buffer_limits(gw.write_high, gw.write_low)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0].encode() if peer else b"unknown"
        self.xff_tail = self.client_ip + b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "
        gw.clients.add(self)
        self.phase = IDLE
        self.deadline = gw.now + gw.header_timeout

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase <= HEAD:
            self.buf = self.buf + data if self.buf else data
            if phase == IDLE:
                self.phase = HEAD
                self.fresh = False
                self.deadline = self.gw.now + self.gw.header_timeout
            self._read_head()
        elif phase == PROXYING:
            if self.exchange.request_sent:
                self._hold_pipelined(data)
            else:
                self._stream_body(data)
        elif phase == BODY:
            self.buf += data
            self.deadline = self.gw.now + self.gw.idle_timeout
            self._collect_body()
        elif phase == TUNNEL:
            self.deadline = self.gw.now + self.gw.read_timeout
            self.exchange.conn.send(data)

    def eof_received(self) -> bool:
        self.eof = True
        phase = self.phase
        if phase == TUNNEL:
            exchange = self.exchange
            conn = exchange.conn
            if conn is None or conn.eof:  # both directions are finished
                if conn is not None:
                    conn.close()
                exchange.tunnel_closed()
                return False
            conn.send_eof()
            return True
        if phase <= BODY:
            if phase == HEAD and self.buf:  # pipelined requests not read yet: answer the
                self._read_head()  # whole ones (then close), or close on a partial one
                return True
            return False  # no complete request to answer: close
        if phase == PROXYING and not self.exchange.request_sent:
            self._body_failed("request body cut short")  # the client closed mid-body
            return False
        return True  # keep writing the responses still owed

    def connection_lost(self, exc) -> None:
        self.phase = CLOSED
        self.deadline = 0.0
        self.gw.clients.discard(self)
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.cut()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.deadline = self.gw.now + self.gw.read_timeout
        exchange = self.exchange
        if exchange is not None and exchange.conn is not None:
            exchange.conn.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        exchange = self.exchange
        if exchange is not None and exchange.conn is not None:
            exchange.conn.resume_reading()

    # -- reading requests ----------------------------------------------------------------------

    def _read_head(self) -> None:
        gw = self.gw
        try:
            head = gw.parser.parse(self.buf)
        except ParseError as exc:
            self._reject(exc.status, exc.reason)
            return
        if head is None:
            if self.eof:
                self._close()
            elif not self.buf.strip(b"\r\n"):  # only the empty lines a request may follow
                self.phase = IDLE  # (RFC 9112 2.2): still idle, not a request taking long
                self.deadline = gw.now + gw.idle_timeout
            return
        exchange = self.exchange = Exchange(self, head)  # routes it
        if exchange.refusal is not None:
            self._answer_after_head(*exchange.refusal)
            return
        start = head.head_length
        if head.chunked:
            self.chunks = ChunkedReader()
            self.scan = start
        elif head.content_length > 0:
            if head.content_length > gw.max_body:
                self._reject(413, "request body larger than limits.max_body_bytes")
                return
            self.chunks = None
        else:  # no body: the request goes now (what _send does, inline on the hot path)
            self.chunks = None
            answer = exchange.send(b"", True)
            if answer is not None:
                self._answer_after_head(*answer)
                return
            self.buf = self.buf[start:]
            self.phase = PROXYING
            return
        if head.expect_continue:
            self.transport.write(CONTINUE)
        self.phase = BODY
        self.deadline = gw.now + gw.idle_timeout
        self._collect_body()

    def _collect_body(self) -> None:
        """Wait for a small body to arrive whole; start streaming once it outgrows the buffer."""
        gw = self.gw
        buf = self.buf
        head = self.exchange.head
        start = head.head_length
        if self.chunks is None:
            end = start + head.content_length
            if len(buf) >= end:
                self._send(buf[start:end], end, True)
            elif len(buf) - start > gw.request_buffer:
                self.body_left = end - len(buf)
                self._send(buf[start:], len(buf), False)
            return
        try:
            end = self.chunks.feed(buf, self.scan)
        except ParseError as exc:
            self._reject(400, exc.reason)
            return
        if end >= 0:
            self._send(buf[start:end], end, True)
            return
        self.scan = len(buf)
        if len(buf) - start > gw.max_body:
            self._reject(413, "request body larger than limits.max_body_bytes")
        elif len(buf) - start > gw.request_buffer:
            self.body_left = len(buf) - start
            self._send(buf[start:], len(buf), False)

    def _send(self, body: bytes, consumed: int, complete: bool) -> None:
        """Hand the request (and the body received so far) to the exchange's first attempt."""
        answer = self.exchange.send(body, complete)
        if answer is not None:
            self._answer_after_head(*answer)
            return
        self.buf = self.buf[consumed:]
        self.phase = PROXYING

    def _stream_body(self, data: bytes) -> None:
        """Forward a body that did not fit the request buffer, validating its framing."""
        gw = self.gw
        self.deadline = gw.now + gw.idle_timeout
        rest = b""
        if self.chunks is None:
            left = self.body_left
            if len(data) > left:
                data, rest = data[:left], data[left:]
            self.body_left = left - len(data)
            done = self.body_left == 0
        else:
            try:
                end = self.chunks.feed(data)
            except ParseError as exc:
                self._body_failed(exc.reason)
                return
            done = end >= 0
            self.body_left += len(data)  # for chunked bodies: bytes seen so far
            if self.body_left > gw.max_body:
                self._body_failed("request body larger than limits.max_body_bytes", 413)
                return
            if done and end < len(data):
                data, rest = data[:end], data[end:]
        exchange = self.exchange
        exchange.bytes_in += len(data)
        conn = exchange.conn
        if conn is not None:
            conn.send(data)
        else:
            self.pending += data
            if len(self.pending) > gw.request_buffer:
                self.pause_pipeline = True
                self._update_reading()
        if done:
            exchange.body_sent()
            if exchange.state == ATTEMPT:  # no response yet: it is due within read_timeout
                self.deadline = gw.now + gw.read_timeout if conn is not None else 0.0
            if rest:
                self._hold_pipelined(rest)

    def take_pending(self) -> bytes:
        """The streamed body bytes that arrived while the upstream connection was opening."""
        pending = self.pending
        if pending:
            self.pending = b""
            if self.pause_pipeline:
                self.pause_pipeline = False
                self._update_reading()
        return pending

    def _hold_pipelined(self, data: bytes) -> None:
        """Keep bytes of the next request until this one is answered (in order)."""
        self.buf = self.buf + data if self.buf else data
        if len(self.buf) > self.gw.request_buffer and not self.pause_pipeline:
            self.pause_pipeline = True
            self._update_reading()

    def upstream_congested(self, congested: bool) -> None:
        """The upstream stopped (or resumed) taking the request body: pause reading meanwhile."""
        self.pause_upstream = congested
        self._update_reading()

    def _update_reading(self) -> None:
        want_paused = self.pause_pipeline or self.pause_upstream
        if want_paused != self.reading_paused and self.transport is not None:
            self.reading_paused = want_paused
            if want_paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # -- called by the exchange --------------------------------------------------------------

    def start_tunnel(self) -> None:
        """After a 101: bytes both ways. Bytes the client sent after its request go first."""
        self.phase = TUNNEL
        self.deadline = self.gw.now + self.gw.read_timeout
        if self.buf:
            data, self.buf = self.buf, b""
            self.exchange.conn.send(data)
        if self.pause_pipeline:
            self.pause_pipeline = False
            self._update_reading()

    def exchange_done(self, exchange) -> None:
        """The exchange finished and its response is written: answer the next pipelined
        request, wait for one, or close."""
        self.exchange = None
        gw = self.gw
        if exchange.close or self.phase == CLOSED:
            self._close()
            return
        if self.pause_pipeline or self.pause_upstream:
            self.pause_pipeline = False
            self.pause_upstream = False
            self._update_reading()
        if self.buf:
            self.phase = HEAD
            self.deadline = gw.now + gw.header_timeout
            gw.loop.call_soon(self._read_next)
        elif self.eof:
            self._close()
        else:
            self.phase = IDLE
            self.deadline = gw.now + gw.idle_timeout

    def _read_next(self) -> None:
        """The next pipelined request, from the loop rather than the stack: a long pipeline of
        requests the gateway answers itself would otherwise recurse without bound."""
        if self.phase == HEAD and self.buf:
            self._read_head()

    def answer_failure(self, exchange, status: int, reason: str) -> None:
        """The exchange's attempt failed before a response head: answer ``status``."""
        if self.phase == CLOSED:
            return
        exchange.close = connection_closes(not exchange.close, exchange.request_sent, False,
                                           self.gw.closing, self.eof and not self.buf)
        self._write_error(exchange, status, reason, exchange.close)
        self.exchange_done(exchange)

    # -- deadlines ---------------------------------------------------------------------------

    def on_deadline(self) -> None:
        phase = self.phase
        self.deadline = 0.0
        if phase == IDLE:
            self._close()
        elif phase in (HEAD, BODY):
            self._reject(408, "request not received in time")
        elif phase == PROXYING:
            exchange = self.exchange
            if self.write_paused:
                log.info("client %s: not reading the response; closing", self.client_ip.decode())
                self.abort()
            elif not exchange.request_sent:
                self._body_failed("request body not received in time", 408)
            elif exchange.state == ATTEMPT and exchange.conn is not None:
                exchange.timed_out()
            else:
                self.abort(Outcome.TIMEOUT)  # the response body stalled
        elif phase in (TUNNEL, CLOSED):  # CLOSED: still flushing to a client that stopped reading
            self.abort()

    # -- endings -----------------------------------------------------------------------------

    def _write_error(self, exchange, status: int, reason: str, close: bool) -> None:
        head = exchange.head
        data = error_response(status, reason, close, head is not None and head.method == b"HEAD",
                              head is not None and head.version == 10)
        exchange.bytes_out += len(data)
        self.transport.write(data)

    def _reject(self, status: int, reason: str) -> None:
        """Answer a bad request without involving an upstream, then close."""
        if self.phase == CLOSED:
            return
        self.buf = b""
        exchange = self.exchange
        if exchange is None:  # rejected before a head could be parsed
            exchange = Exchange(self, None)
        self.exchange = None
        self._write_error(exchange, status, reason, True)
        exchange.answer(status)
        self._close()

    def _answer_after_head(self, status: int, reason: str) -> None:
        """Answer a well-formed request the gateway will not send on (no route, unknown
        version, no target, a step's answer); keep the connection if the request had no body
        left unread."""
        exchange = self.exchange
        head = exchange.head
        if head.chunked or head.content_length > 0:
            self._reject(status, reason)
            return
        self.buf = self.buf[head.head_length:]
        exchange.request_sent = True
        exchange.close = connection_closes(not exchange.close, True, False, self.gw.closing,
                                           self.eof and not self.buf)
        self._write_error(exchange, status, reason, exchange.close)
        exchange.answer(status)
        self.exchange_done(exchange)

    def _body_failed(self, reason: str, status: int = 400) -> None:
        """The client's streamed body broke its framing or stalled: drop the upstream side."""
        if self.exchange.state == ATTEMPT:
            self._reject(status, reason)
        else:  # the response already started: the client must see it cut
            self.abort()

    def _close(self) -> None:
        if self.phase != CLOSED:
            self.phase = CLOSED
            self.deadline = 0.0
            if self.transport.get_write_buffer_size():  # bounded: a client that stops reading
                self.deadline = self.gw.now + self.gw.read_timeout  # is cut (on_deadline)
            self.transport.close()

    def close(self) -> None:
        """Close after what was written (the exchange ended: a tunnel closed)."""
        self.exchange = None
        self._close()

    def abort(self, outcome: int = Outcome.ABANDONED) -> None:
        """Cut the connection with a reset; the exchange in progress ends with ``outcome``."""
        exchange = self.exchange
        self.exchange = None
        self.phase = CLOSED
        self.deadline = 0.0
        if exchange is not None:
            exchange.cut(outcome)
        # a reset, not a clean close: a client reading a body without a length must be able
        # to tell that it was cut (uvloop's abort() alone closes cleanly)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self.transport.abort()

    def close_if_idle(self, fresh_too: bool = True) -> bool:
        """For shutdown: close now if no request is in progress (and, unless ``fresh_too``,
        if at least one request came on this connection)."""
        if self.phase == IDLE and (fresh_too or not self.fresh):
            self._close()
            return True
        return False
