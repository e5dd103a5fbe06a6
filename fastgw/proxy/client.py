"""Client side of the data path: one ClientConnection per accepted socket.

It parses request heads, collects small bodies whole (so a bad request never reaches an
upstream, and the request can be replayed on a fresh connection), picks a route and a target,
and hands the request to an UpstreamConnection. The upstream side calls back when the response
head arrives, when the response is done, or when it failed. Protocol callbacks call each
other: there is no Task or Future per request.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

from .._core import ChunkedReader, ParseError
from ..versioning import VersionError
from .responses import CONTINUE, error_response
from .upstream import UpstreamConnection

log = logging.getLogger("fastgw.proxy")

LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST

# phases of a client connection
IDLE = 0  # between requests, nothing received yet (idle deadline)
HEAD = 1  # receiving a request head (header deadline, not reset by trickling bytes)
BODY = 2  # head parsed, collecting a small body before choosing an upstream
PROXYING = 3  # request handed to an upstream; body may still be streaming
TUNNEL = 4  # after a 101: bytes both ways
CLOSED = 5


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "gw", "transport", "buf", "phase", "deadline", "head", "group", "upstream", "request",
        "body_left", "chunks", "scan", "request_sent", "response_started", "close_after",
        "eof", "pause_pipeline", "pause_upstream", "reading_paused", "write_paused",
        "xff_tail", "client_ip", "pending", "attempt", "route", "version", "fresh",
    )

    def __init__(self, gw) -> None:
        self.gw = gw
        self.transport = None
        self.buf = b""  # received bytes not yet consumed (a head, a small body, pipelined requests)
        self.phase = IDLE
        self.deadline = 0.0
        self.head = None
        self.group = None
        self.upstream = None  # the UpstreamConnection serving the current request
        self.request = None  # the whole forwarded request, kept while it may be replayed
        self.body_left = 0  # Content-Length: body bytes still to come; chunked: bytes seen
        self.chunks = None  # ChunkedReader while a chunked body passes
        self.scan = 0  # where chunked validation continues in buf
        self.request_sent = False  # the whole request has been handed over
        self.response_started = False
        self.close_after = False
        self.eof = False
        self.pause_pipeline = False
        self.pause_upstream = False
        self.reading_paused = False
        self.write_paused = False
        self.pending = b""  # streamed body bytes that arrived while the upstream was connecting
        self.client_ip = b""
        self.xff_tail = b""
        self.attempt = -1  # the target index picked by a balancer that wants the outcome
        self.route = None  # the matched RouteRuntime
        self.version = None  # the request's API version, when versioning is configured
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
            if self.request_sent:
                self._hold_pipelined(data)
            else:
                self._stream_body(data)
        elif phase == BODY:
            self.buf += data
            self.deadline = self.gw.now + self.gw.idle_timeout
            self._collect_body()
        elif phase == TUNNEL:
            self.deadline = self.gw.now + self.gw.read_timeout
            self.upstream.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.phase == TUNNEL:
            upstream = self.upstream
            if upstream is None or upstream.eof:  # both directions are finished
                if upstream is not None:
                    upstream.close()
                self.tunnel_closed()
                return False
            upstream.transport.write_eof()
            return True
        if self.phase <= BODY:
            return False  # no complete request to answer: close
        if not self.request_sent:
            self._body_failed("request body cut short")  # the client closed mid-body
            return False
        return True  # keep writing the responses still owed

    def connection_lost(self, exc) -> None:
        self.phase = CLOSED
        self.deadline = 0.0
        self._end_attempt(False)
        self.gw.clients.discard(self)
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.client_gone()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.deadline = self.gw.now + self.gw.read_timeout
        upstream = self.upstream
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        upstream = self.upstream
        if upstream is not None:
            upstream.resume_reading()

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
            return
        self.head = head
        if gw.versioning is None:
            index = gw.router.match(head)
        else:
            index = self._route_by_version(head)
            if index < 0:
                return
        if index < 0:
            self._reject_after_head(404, "no route matches this request")
            return
        self.route = gw.routes[index]
        start = head.head_length
        if head.chunked:
            self.chunks = ChunkedReader()
            self.scan = start
        elif head.content_length > 0:
            if head.content_length > gw.max_body:
                self._reject(413, "request body larger than limits.max_body_bytes")
                return
            self.chunks = None
        else:
            self.chunks = None
            self._dispatch(b"", start, True)
            return
        if head.expect_continue:
            self.transport.write(CONTINUE)
        self.phase = BODY
        self.deadline = gw.now + gw.idle_timeout
        self._collect_body()

    def _route_by_version(self, head) -> int:
        """Route on the API version; -1 after answering (400 malformed, 404 unknown)."""
        gw = self.gw
        try:
            version = gw.versioning.extract(head)
        except VersionError as exc:
            self._reject_after_head(400, exc.message)
            return -1
        self.version = value = version.value
        index = gw.router.match(head, value)
        if index >= 0 or value is None or value in gw.router.versions:
            if index < 0:
                self._reject_after_head(404, "no route matches this request")
            return index
        default = gw.unknown_version_default
        if default is not None:
            self.version = default
            index = gw.router.match(head, default)
            if index >= 0:
                return index
        self._reject_after_head(404, f"API version {value} is not served here")
        return -1

    def _collect_body(self) -> None:
        """Wait for a small body to arrive whole; start streaming once it outgrows the buffer."""
        gw = self.gw
        buf = self.buf
        start = self.head.head_length
        if self.chunks is None:
            end = start + self.head.content_length
            if len(buf) >= end:
                self._dispatch(buf[start:end], end, True)
            elif len(buf) - start > gw.request_buffer:
                self.body_left = end - len(buf)
                self._dispatch(buf[start:], len(buf), False)
            return
        try:
            end = self.chunks.feed(buf, self.scan)
        except ParseError as exc:
            self._reject(400, exc.reason)
            return
        if end >= 0:
            self._dispatch(buf[start:end], end, True)
            return
        self.scan = len(buf)
        if len(buf) - start > gw.max_body:
            self._reject(413, "request body larger than limits.max_body_bytes")
        elif len(buf) - start > gw.request_buffer:
            self.body_left = len(buf) - start
            self._dispatch(buf[start:], len(buf), False)

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
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)
        else:
            self.pending += data
            if len(self.pending) > gw.request_buffer:
                self.pause_pipeline = True
                self._update_reading()
        if done:
            self.request_sent = True
            if not self.response_started:
                self.deadline = gw.now + gw.read_timeout if upstream is not None else 0.0
            if rest:
                self._hold_pipelined(rest)

    def _hold_pipelined(self, data: bytes) -> None:
        """Keep bytes of the next request until this one is answered (in order)."""
        self.buf = self.buf + data if self.buf else data
        if len(self.buf) > self.gw.request_buffer and not self.pause_pipeline:
            self.pause_pipeline = True
            self._update_reading()

    def _update_reading(self) -> None:
        want_paused = self.pause_pipeline or self.pause_upstream
        if want_paused != self.reading_paused and self.transport is not None:
            self.reading_paused = want_paused
            if want_paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # -- handing the request to an upstream ------------------------------------------------------

    def _dispatch(self, body: bytes, consumed: int, complete: bool) -> None:
        """Send the request (head and the body received so far) to a target of the route."""
        head = self.head
        route = self.route
        group = route.group
        if group is None:  # a split: choose the side first
            group = route.upstream_for(head, self.client_ip)
        self.group = group
        index = group.pick(head, self.client_ip)
        if index < 0:
            self._reject_after_head(503, f"upstream {group.name} has no target available")
            return
        target = group.targets[index]
        if group.reports:
            self.attempt = index
        self.buf = self.buf[consumed:]
        self.phase = PROXYING
        self.request_sent = complete
        self.response_started = False
        self.close_after = not head.keep_alive
        if route.rewrites:
            request = self._rewritten(route, head, target)
        else:
            request = head.forward(self.xff_tail, head.host or target.address_bytes)
        if body:
            request += body
        # only a request held whole can be replayed on a fresh connection
        self.request = request if complete else None
        conn = target.pool.acquire()
        if conn is not None:
            conn.start(self, request, True)
        else:
            self._connect(target, request)

    def _rewritten(self, route, head, target) -> bytes:
        path = route.path_edit.apply(head.path) if route.path_edit is not None else head.path
        host = head.host or target.address_bytes
        kept = head.kept
        edit = route.request_edit
        if edit is not None:
            kept = edit.apply(kept)
            if edit.host is not None:
                host = edit.host
        return head.forward(self.xff_tail, host, path, kept, head.host or target.address_bytes)

    def _connect(self, target, request: bytes) -> None:
        # A Task per new upstream connection (not per request): connecting is rare with pooling.
        # upstream_connect bounds it; the read deadline starts once the request is written.
        self.deadline = 0.0
        self.gw.loop.create_task(self._open(target, request))

    async def _open(self, target, request: bytes) -> None:
        gw = self.gw
        try:
            _, conn = await asyncio.wait_for(
                gw.loop.create_connection(lambda: UpstreamConnection(gw, target), target.host,
                                          target.port),
                gw.connect_timeout,
            )
        except TimeoutError:
            log.warning("upstream %s: connect timed out", target.address)
            self.upstream_failed(502, f"connecting to upstream {target.address} timed out")
            return
        except OSError as exc:
            log.warning("upstream %s: connect failed: %s", target.address, exc.strerror or exc)
            self.upstream_failed(502, f"cannot connect to upstream {target.address}")
            return
        if self.phase != PROXYING:  # the client left meanwhile; keep the fresh connection
            target.pool.release(conn, gw.now)
            return
        if self.pending:
            request += self.pending
            self.pending = b""
            if self.pause_pipeline:
                self.pause_pipeline = False
                self._update_reading()
        conn.start(self, request, False)

    def retry(self, target) -> bool:
        """Replay the request on a fresh connection after a reused one turned out stale."""
        request = self.request
        if request is None or self.phase != PROXYING:
            return False
        self.request = None  # once
        self.upstream = None
        self._connect(target, request)
        return True

    # -- called by the upstream side ---------------------------------------------------------

    def response_head(self, rhead, no_body: bool, close_delimited: bool) -> bytes:
        """The response head to send to this client, and whether to close after it.

        ``close_delimited``: the client's copy of the body ends when the connection closes
        (the upstream's did, or a chunked body is decoded for an HTTP/1.0 client)."""
        self.response_started = True
        head = self.head
        close = (self.close_after or close_delimited or self.gw.closing
                 or not self.request_sent or (self.eof and not self.buf))
        self.close_after = close
        if close:
            extra = b"Connection: close\r\n"
        elif head.version == 10:
            extra = b"Connection: keep-alive\r\n"
        else:
            extra = b""
        gw = self.gw
        if gw.versioning is not None and self.version is not None:
            extra += gw.versioning.response_headers(self.version)  # Deprecation, Sunset
        edit = self.route.response_edit if self.route is not None else None
        if edit is not None:
            return rhead.forward(extra, head.version == 11, no_body, edit.apply(rhead.kept))
        # HTTP/1.0 has no Transfer-Encoding: a 1.0 client's body ends at the close
        return rhead.forward(extra, head.version == 11, no_body)

    def start_tunnel(self, rhead) -> bytes:
        """Switch to a byte tunnel after a 101; returns the head to send to the client."""
        self.phase = TUNNEL
        self.response_started = True
        self.deadline = self.gw.now + self.gw.read_timeout
        upgrade = rhead.upgrade or self.head.upgrade
        head = b"HTTP/1.1 101 %s\r\n%sConnection: upgrade\r\nUpgrade: %s\r\n\r\n" % (
            rhead.reason, rhead.kept, upgrade)
        if self.buf:  # bytes the client sent after its request, before the 101
            data, self.buf = self.buf, b""
            self.upstream.transport.write(data)
        if self.pause_pipeline:
            self.pause_pipeline = False
            self._update_reading()
        return head

    def _end_attempt(self, ok: bool) -> None:
        """Tell the balancer how the attempt went (once per pick)."""
        index = self.attempt
        if index >= 0:
            self.attempt = -1
            self.group.balancer.report(index, ok)

    def response_done(self) -> None:
        """The response is complete: answer the next pipelined request, or wait for one."""
        if self.attempt >= 0:
            self._end_attempt(True)
        gw = self.gw
        self.upstream = None
        self.head = None
        self.request = None
        if self.close_after or self.phase == CLOSED:
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

    def upstream_failed(self, status: int, reason: str) -> None:
        """The upstream could not give a (complete) response."""
        self.upstream = None
        self._end_attempt(False)
        if self.phase == CLOSED:
            return
        if self.response_started:
            self._abort()  # the client must see a truncated response, not a complete one
            return
        close = self.close_after or not self.request_sent or self.eof or self.gw.closing
        self.close_after = close
        head = self.head
        self.transport.write(error_response(status, reason, close,
                                            head is not None and head.method == b"HEAD",
                                            head is not None and head.version == 10))
        self.response_done()

    def tunnel_closed(self) -> None:
        self.upstream = None
        self._end_attempt(True)
        self._close()

    # -- deadlines ---------------------------------------------------------------------------

    def on_deadline(self) -> None:
        phase = self.phase
        self.deadline = 0.0
        if phase == IDLE:
            self._close()
        elif phase in (HEAD, BODY):
            self._reject(408, "request not received in time")
        elif phase == PROXYING:
            upstream = self.upstream
            if self.write_paused:
                log.info("client %s: not reading the response; closing", self.client_ip.decode())
                self._abort()
            elif not self.request_sent:
                self._body_failed("request body not received in time", 408)
            elif upstream is not None and not self.response_started:
                self.upstream = None
                upstream.abandon()
                self.upstream_failed(504, "upstream did not respond in time")
            else:
                self._abort()
        elif phase in (TUNNEL, CLOSED):  # CLOSED: still flushing to a client that stopped reading
            self._abort()

    # -- endings -----------------------------------------------------------------------------

    def _reject(self, status: int, reason: str) -> None:
        """Answer a bad request without involving an upstream, then close."""
        if self.phase == CLOSED:
            return
        self.buf = b""
        self.transport.write(error_response(status, reason, True))
        self._close()

    def _reject_after_head(self, status: int, reason: str) -> None:
        """Answer a well-formed request the gateway cannot route; keep the connection if the
        request had no body left unread."""
        head = self.head
        if head.chunked or head.content_length > 0:
            self._reject(status, reason)
            return
        self.phase = PROXYING
        self.request_sent = True
        self.response_started = False
        self.close_after = not head.keep_alive
        self.buf = self.buf[head.head_length:]
        self.upstream_failed(status, reason)

    def _body_failed(self, reason: str, status: int = 400) -> None:
        """The client's streamed body broke its framing or stalled: drop the upstream side."""
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.abandon()
        self.request_sent = False
        if self.response_started:
            self._abort()
        else:
            self._reject(status, reason)

    def _close(self) -> None:
        if self.phase != CLOSED:
            self.phase = CLOSED
            self.deadline = 0.0
            if self.transport.get_write_buffer_size():  # bounded: a client that stops reading
                self.deadline = self.gw.now + self.gw.read_timeout  # is cut (on_deadline)
            self.transport.close()

    def _abort(self) -> None:
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.abandon()
        self.phase = CLOSED
        self.deadline = 0.0
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
