# cython: boundscheck=True, wraparound=True, annotation_typing=False
"""Client side of the data path: one ClientConnection per accepted socket.

It owns the connection: reading request heads, collecting small bodies whole (so a bad
request never reaches an upstream, and the request can be replayed) or streaming large ones,
pipelining in order, flow control both ways, the connection's deadline, and writing the
gateway's own answers. What happens to each request (route, attempts, response, the one
``finish()``) is its Exchange's business (exchange.py). Protocol callbacks call each other:
there is no Task or Future per request.

Held input is bounded and consumed by offset: ``buf[pos:]`` is what has not been used yet, a
request taken from it moves ``pos`` (never a copy of the rest), and reading pauses while more
than ``request_buffer`` waits behind unanswered requests, or while the client is not reading
the answers it already has (its write buffer is over the high-water mark).
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
TCP_INFO_BYTES_ACKED = 120  # offset of tcpi_bytes_acked (u64) in Linux's struct tcp_info

# phases of a client connection
IDLE = 0  # between requests, nothing received yet (idle deadline)
HEAD = 1  # receiving a request head (header deadline, not reset by trickling bytes)
BODY = 2  # head parsed, collecting a small body before choosing an upstream
PROXYING = 3  # request handed to an upstream; body may still be streaming
TUNNEL = 4  # after a 101: bytes both ways
CLOSED = 5

BATCH = 64  # pipelined requests answered by the gateway itself before yielding to the loop


class ClientConnection:  # an asyncio protocol (uvloop needs no base class)
    __slots__ = (
        "gw", "transport", "buf", "phase", "deadline", "exchange", "body_left", "chunks", "scan",
        "pending", "eof", "pause_pipeline", "pause_upstream", "reading_paused", "write_paused",
        "client_ip", "xff_tail", "fresh", "pos", "batching", "unsent", "acked", "settling",
    )

    def __init__(self, gw, peer=None) -> None:
        self.gw = gw
        self.transport = None
        self.buf = b""  # received bytes (a head, a small body, pipelined requests): the unused
        self.pos = 0  # ones start at pos; buf is b"" and pos 0 when everything was used
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
        # the address accept() gave (asking the socket later fails if the client reset)
        self.client_ip = peer[0].encode() if peer else b""
        self.xff_tail = b""
        self.fresh = True  # no request received yet on this connection
        self.batching = False  # _read_next is answering held requests: exchange_done leaves
        # the next one to its loop
        self.unsent = 0  # bytes waiting in the write buffer when the send deadline was set
        self.acked = 0  # bytes the client's TCP had acknowledged then
        self.settling = False  # the first, short wait after a pause_writing (_await_progress)

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        gw = self.gw
        self.transport = transport
        transport.set_write_buffer_limits(gw.write_high, gw.write_low)
        if not self.client_ip:
            peer = transport.get_extra_info("peername")
            self.client_ip = peer[0].encode() if peer else b"unknown"
        self.xff_tail = self.client_ip + b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "
        gw.clients.add(self)
        self.phase = IDLE
        self.deadline = gw.now + gw.header_timeout

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase <= HEAD:
            if self.buf:
                self._append(data)
            else:
                self.buf = data
            if self.write_paused:  # the answers it has are not being read: hold this input
                self.phase = HEAD
                self.fresh = False
                self._limit_held()
                return
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
            self._append(data)
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
        if phase == BODY:  # a head was taken, its body will never be whole: say so
            self._cut_short()
            return True
        if phase <= HEAD:
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
        """The client is not taking bytes as fast as they come: stop reading the upstream
        (and answering held requests) until it does; it must keep making progress."""
        self.write_paused = True
        self._await_progress()
        exchange = self.exchange
        if exchange is not None and exchange.conn is not None:
            exchange.conn.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.settling = False
        gw = self.gw
        phase = self.phase
        exchange = self.exchange
        if phase in (PROXYING, TUNNEL):  # the upstream's bytes are due again
            if phase == PROXYING and not exchange.request_sent:
                self.deadline = gw.now + gw.idle_timeout  # the request body is still coming
            else:
                self.deadline = gw.now + gw.read_timeout
            if exchange is not None and exchange.conn is not None:
                exchange.conn.resume_reading()
        elif phase == HEAD:  # requests held while the client was not reading its answers
            self.deadline = gw.now + gw.header_timeout
            if exchange is None and self.buf:
                gw.loop.call_soon(self._read_next)
        elif phase == IDLE:
            self.deadline = gw.now + gw.idle_timeout

    # -- reading requests ----------------------------------------------------------------------

    def _read_head(self) -> bool:
        """Take the next request from the held input: False if its head is not all there."""
        gw = self.gw
        pos = self.pos
        try:  # a pipelined request: parsed in place (the parser takes any buffer, no copy)
            head = gw.parser.parse(self.buf if pos == 0 else memoryview(self.buf)[pos:])
        except ParseError as exc:
            self._reject(exc.status, exc.reason)
            return True
        if head is None:
            if self.eof:
                self._close()
            elif not self.buf[pos:].strip(b"\r\n"):  # only the empty lines a request may
                self.phase = IDLE  # follow (RFC 9112 2.2): idle, not a request taking long
                self.deadline = gw.now + gw.idle_timeout
            if self.pause_pipeline:  # the rest of the head is needed (its size is the
                self.pause_pipeline = False  # parser's limits to bound)
                self._update_reading()
            return False
        exchange = self.exchange = Exchange(self, head)  # routes it
        if exchange.refusal is not None:
            self._answer_after_head(*exchange.refusal)
            return True
        start = pos + head.head_length
        if head.chunked:
            self.chunks = ChunkedReader()
            self.scan = start
        elif head.content_length > 0:
            if head.content_length > gw.max_body:
                self._reject(413, "request body larger than limits.max_body_bytes")
                return True
            self.chunks = None
        else:  # no body: the request goes now (what _send does, inline on the hot path)
            self.chunks = None
            answer = exchange.send(b"", True)
            if answer is not None:
                self._answer_after_head(*answer)
                return True
            self.phase = PROXYING
            if start == len(self.buf):
                self.buf = b""
                self.pos = 0
            else:
                self.pos = start
                self._limit_held()
            return True
        if head.expect_continue:
            self.transport.write(CONTINUE)
        if self.pause_pipeline:  # what is needed now is this request's own body
            self.pause_pipeline = False
            self._update_reading()
        self.phase = BODY
        self.deadline = gw.now + gw.idle_timeout
        self._collect_body()
        return True

    def _collect_body(self) -> None:
        """Wait for a small body to arrive whole; start streaming once it outgrows the buffer."""
        gw = self.gw
        buf = self.buf
        head = self.exchange.head
        start = self.pos + head.head_length
        if self.chunks is None:
            end = start + head.content_length
            if len(buf) >= end:
                self._send(buf[start:end], end, True)
            elif len(buf) - start > gw.request_buffer:
                self.body_left = end - len(buf)
                self._send(buf[start:], len(buf), False)
            elif self.eof:
                self._cut_short()
            return
        try:
            end = self.chunks.feed(buf, self.scan)
        except ParseError as exc:
            self._reject(400, exc.reason)
            return
        if end >= 0:
            if end - start > gw.max_body:  # counted with its framing, as when streamed
                self._reject(413, "request body larger than limits.max_body_bytes")
                return
            trailer = self.chunks.trailer_bytes
            if trailer > 2:  # it has trailer fields: they are not forwarded (see _stream_body)
                self._send(buf[start:end - trailer] + b"\r\n", end, True)
            else:
                self._send(buf[start:end], end, True)
            return
        self.scan = len(buf)
        if len(buf) - start > gw.max_body:
            self._reject(413, "request body larger than limits.max_body_bytes")
        elif len(buf) - start > gw.request_buffer:
            self.body_left = len(buf) - start
            # the trailer bytes read so far end buf: withheld, as _stream_body does with
            # the rest (only the section's end is sent)
            self._send(buf[start:len(buf) - self.chunks.trailer_bytes], len(buf), False)
        elif self.eof:
            self._cut_short()

    def _cut_short(self) -> None:
        """The client ended its side before this (pipelined) request's body was whole: the
        rest will never come, so answer now rather than wait out client_idle."""
        self._reject(400, "request body cut short")

    def _send(self, body: bytes, consumed: int, complete: bool) -> None:
        """Hand the request (and the body received so far) to the exchange's first attempt."""
        answer = self.exchange.send(body, complete)
        if answer is not None:
            self._answer_after_head(*answer)
            return
        self._consume(consumed)
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
            chunks = self.chunks
            before = chunks.trailer_bytes
            try:
                end = chunks.feed(data)
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
            trailer = chunks.trailer_bytes - before
            if trailer and not (done and before == 0 and trailer == 2):
                # Request trailers are not forwarded, as nginx does not: they would carry
                # fields past the checks on the head (X-Forwarded-For, X-Real-IP, names with
                # '_'). They are withheld as they pass, and only the section's end is sent.
                data = data[:len(data) - trailer]
                if done:
                    data += b"\r\n"
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
                self._limit_held()
        return pending

    def _hold_pipelined(self, data: bytes) -> None:
        """Keep bytes of the next request until this one is answered (in order)."""
        if self.buf:
            self._append(data)
        else:
            self.buf = data
        self._limit_held()

    def _append(self, data: bytes) -> None:
        """Add received bytes to the held input, dropping the used part first (one copy of
        what is held, which is bounded, per read)."""
        pos = self.pos
        if pos:
            self.buf = self.buf[pos:] + data
            self.scan -= pos
            self.pos = 0
        else:
            self.buf += data

    def _consume(self, end: int) -> None:
        """The held input up to ``end`` is used."""
        if end >= len(self.buf):
            self.buf = b""
            self.pos = 0
        else:
            self.pos = end
        self._limit_held()

    def _limit_held(self) -> None:
        """Read no more while over ``request_buffer`` of input waits behind earlier requests:
        what is held stays under request_buffer plus one read."""
        over = len(self.buf) - self.pos > self.gw.request_buffer
        if over != self.pause_pipeline:
            self.pause_pipeline = over
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
        """After a 101: bytes both ways. Bytes the client sent after its request go first, and
        its end of sending, if it came already."""
        self.phase = TUNNEL
        self.deadline = self.gw.now + self.gw.read_timeout
        conn = self.exchange.conn
        if self.buf:
            data = self.buf[self.pos:]
            self.buf = b""
            self.pos = 0
            conn.send(data)
        if self.eof:
            conn.send_eof()
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
        if self.pause_upstream:
            self.pause_upstream = False
            self._update_reading()
        if self.buf:
            self.phase = HEAD
            if self.write_paused:  # held until the client reads what it was sent
                self._limit_held()
                return
            self._limit_held()
            self.deadline = gw.now + gw.header_timeout
            if not self.batching:
                gw.loop.call_soon(self._read_next)
        elif self.eof:
            self._close()
        else:
            self.phase = IDLE
            if not self.write_paused:  # else client_send's deadline stands (on_deadline)
                self.deadline = gw.now + gw.idle_timeout

    def _read_next(self) -> None:
        """The next pipelined requests, from the loop rather than the stack (a long pipeline
        of requests the gateway answers itself would otherwise recurse without bound): up to
        BATCH of them, then the loop's other connections get their turn."""
        self.batching = True
        n = BATCH
        try:
            while self.phase == HEAD and self.buf and not self.write_paused:
                if not self._read_head():
                    break
                n -= 1
                if n == 0:
                    if self.phase == HEAD and self.buf and not self.write_paused:
                        self.gw.loop.call_soon(self._read_next)
                    break
        finally:
            self.batching = False

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
        if self.write_paused or phase == CLOSED:  # waiting for the client to read
            if self.settling:
                self._settled()
            elif not self._sent_some():
                log.info("client %s: took none of the bytes sent to it for timeouts.client_send; "
                         "closing",
                         self.client_ip.decode())
                self.abort()
        elif phase == IDLE:
            self._close()
        elif phase in (HEAD, BODY):
            self._reject(408, "request not received in time")
        elif phase == PROXYING:
            exchange = self.exchange
            if not exchange.request_sent:
                self._body_failed("request body not received in time", 408)
            elif exchange.state == ATTEMPT and exchange.conn is not None:
                exchange.timed_out()
            else:
                self.abort(Outcome.TIMEOUT)  # the response body stalled
        elif phase == TUNNEL:
            self.abort()

    def _await_progress(self) -> None:
        """Bytes wait for the client: it gets ``client_send`` to take some of them (nginx's
        send_timeout: the time between two writes that made progress, not the whole send).

        What the client's TCP acknowledges in the moments after the pause is what was already
        in flight (its receive buffer filling), not reading: progress is counted from a
        baseline taken a little later (``_settled``), so a client that stopped reading is cut
        after client_send, not twice that."""
        self.settling = True
        self.deadline = self.gw.now + settle_time(self.gw.send_timeout)

    def _settled(self) -> None:
        self.settling = False
        self.unsent = self.transport.get_write_buffer_size()
        self.acked = bytes_acked(self.transport)
        gw = self.gw
        self.deadline = gw.now + gw.send_timeout - settle_time(gw.send_timeout)

    def _sent_some(self) -> bool:
        """At the send deadline: did the client take bytes since it was set? Then it gets
        another ``client_send``. Taking bytes shows as a smaller write buffer, or, while the
        kernel's (large, autotuned) send buffer still holds plenty, as more bytes acknowledged
        by the client's TCP, which only opens its window as the client reads."""
        unsent = self.transport.get_write_buffer_size()
        if unsent == 0 and self.phase == CLOSED:
            return True  # flushed; the transport finishes closing by itself
        acked = bytes_acked(self.transport)
        if unsent < self.unsent or acked > self.acked:
            self.unsent = unsent
            self.acked = acked
            self.deadline = self.gw.now + self.gw.send_timeout
            return True
        return False

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
        self.pos = 0
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
        self._consume(self.pos + head.head_length)
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
                self._await_progress()  # is cut (on_deadline)
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


def settle_time(send_timeout: float) -> float:
    """How long after a pause the progress baseline is taken: long enough for the bytes in
    flight to be acknowledged (many round trips on loopback and most networks), a small
    part of client_send."""
    return min(1.0, send_timeout / 4)


def bytes_acked(transport) -> int:
    """How many bytes the peer's TCP has acknowledged on this connection (0 where the kernel
    does not say): a progress count that includes what the kernel's buffer sent."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (OSError, AttributeError):
        return 0
    if len(info) < TCP_INFO_BYTES_ACKED + 8:
        return 0
    return struct.unpack_from("Q", info, TCP_INFO_BYTES_ACKED)[0]
