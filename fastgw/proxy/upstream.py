# cython: boundscheck=True, wraparound=True, annotation_typing=False
"""Upstream side of the data path: one UpstreamConnection per TCP connection to a target.

It sends a request, parses the response head, streams the body to the client with its framing
checked as it passes, and returns itself to the target's pool only after a complete,
well-framed response to a completely sent request. Anything else closes it. It talks to the
request's Exchange only through the Exchange's methods (response_head, deliver, deliver_more,
response_done, attempt_failed, stale, upgraded, tunnel_eof, tunnel_closed,
upstream_congested), and never to the client connection.
"""

from __future__ import annotations

import logging

from .._core import ChunkedReader, ParseError
from .outcome import Outcome

log = logging.getLogger("fastgw.upstream")

# phases
IDLE = 0  # in the pool, or just connected
HEAD = 1  # request sent (or sending); waiting for the response head
BODY = 2  # streaming the response body
TUNNEL = 3
CLOSED = 4

MAX_INTERIM = 100  # interim (1xx) responses passed on per request; one more is a bad upstream

# how the response body ends
NO_BODY = 0
LENGTH = 1
CHUNKED = 2
UNTIL_CLOSE = 3


class UpstreamConnection:  # an asyncio protocol (uvloop needs no base class)
    __slots__ = (
        "gw", "target", "transport", "exchange", "phase", "rbuf", "keep_alive", "kind",
        "remaining", "chunks", "dechunk", "got_bytes", "reading_paused", "write_paused", "eof",
        "interim",
    )

    def __init__(self, gw, target) -> None:
        self.gw = gw
        self.target = target
        self.transport = None
        self.exchange = None  # the Exchange this connection serves now
        self.phase = IDLE
        self.rbuf = b""
        self.keep_alive = False  # the response in progress allows reusing the connection
        self.kind = NO_BODY
        self.remaining = 0
        self.chunks = None
        self.dechunk = None  # HTTP/1.0 client: a bytearray, the payload of a chunked body
        self.got_bytes = False
        self.reading_paused = False
        self.write_paused = False  # over the write high-water mark (the upstream reads slowly)
        self.eof = False  # the upstream finished sending (only tracked in a tunnel)
        self.interim = 0  # interim responses received for this request

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(self.gw.write_high, self.gw.write_low)

    def start(self, exchange, request: bytes, paused: bool) -> None:
        """Serve ``exchange``'s request on this connection; ``request`` is written in one go.
        ``paused``: the client is not taking bytes now, so do not read the response yet."""
        self.exchange = exchange
        self.phase = HEAD
        self.got_bytes = False
        self.rbuf = b""
        self.interim = 0
        if paused:
            self.pause_reading()
        elif self.reading_paused:  # never read for one exchange, write for the next
            self.resume_reading()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == BODY:
            self._body(data)
        elif phase == HEAD:
            self.got_bytes = True
            self._head(self.rbuf + data if self.rbuf else data)
        elif phase == TUNNEL:
            self.exchange.deliver_more(data)
        else:  # bytes while idle: the upstream is not speaking HTTP/1.1 properly
            log.warning("upstream %s: %d unexpected bytes on an idle connection; closing",
                        self.target.address, len(data))
            self.target.pool.discard(self)
            self.close()

    def eof_received(self) -> bool:
        exchange = self.exchange
        if self.phase == TUNNEL and exchange is not None:
            self.eof = True
            return exchange.tunnel_eof()
        return False  # close; connection_lost decides what it means

    def connection_lost(self, exc) -> None:
        phase = self.phase
        self.phase = CLOSED
        exchange = self.exchange
        self.exchange = None
        if exchange is None:
            self.target.pool.discard(self)
            return
        if phase == HEAD:
            if not self.got_bytes and exchange.reused and exchange.stale():
                log.debug("upstream %s: pooled connection was stale; retrying on a new one",
                          self.target.address)
                return
            exchange.attempt_failed(Outcome.RESET, 502,
                                    "upstream closed the connection without a response")
        elif phase == BODY:
            if self.kind == UNTIL_CLOSE and exc is None:
                exchange.response_done()
            else:
                log.warning("upstream %s: response truncated", self.target.address)
                exchange.attempt_failed(Outcome.BAD_RESPONSE, 502, "upstream response truncated")
        elif phase == TUNNEL:
            exchange.tunnel_closed()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.exchange is not None:
            self.exchange.upstream_congested(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.exchange is not None:
            self.exchange.upstream_congested(False)

    # -- response ----------------------------------------------------------------------------

    def _head(self, buf: bytes) -> None:
        exchange = self.exchange
        request = exchange.head
        parse = self.gw.response_parser.parse
        while True:  # interim responses first, as many as came in this read
            try:
                rhead = parse(buf)
            except ParseError as exc:
                log.warning("upstream %s: bad response: %s", self.target.address, exc.reason)
                self._fail(f"upstream sent an invalid response: {exc.reason}")
                return
            if rhead is None:
                self.rbuf = buf
                return
            status = rhead.status
            if status >= 200:
                break
            body = buf[rhead.head_length:]
            if status == 101:
                if request.upgrade is None:
                    log.warning("upstream %s: 101 to a request that asked for no upgrade",
                                self.target.address)
                    self._fail("upstream switched protocols without being asked to")
                elif not upgrade_granted(request.upgrade, rhead.upgrade):
                    log.warning("upstream %s: 101 to %s; the client asked for %s",
                                self.target.address, show_protocols(rhead.upgrade),
                                show_protocols(request.upgrade))
                    self._fail("upstream switched to a protocol the client did not ask for")
                else:
                    self.rbuf = b""
                    self.phase = TUNNEL
                    exchange.deliver(exchange.upgraded(rhead) + body)
                return
            self.interim += 1
            if self.interim > MAX_INTERIM:
                log.warning("upstream %s: more than %d interim responses to one request",
                            self.target.address, MAX_INTERIM)
                self._fail("upstream sent too many interim responses")
                return
            # 100 was already answered by the gateway; other interim responses pass on
            if status != 100 and request.version == 11:
                exchange.deliver(b"HTTP/1.1 %d %s\r\n%s\r\n" % (
                    status, rhead.reason, rhead.kept))
            buf = body
            if not buf:
                self.rbuf = b""
                return
        self.rbuf = b""
        status = rhead.status
        body = buf[rhead.head_length:]
        self.keep_alive = rhead.keep_alive
        if status == 204 or status == 304 or request.method == b"HEAD":
            kind = NO_BODY
        elif rhead.chunked:
            kind = CHUNKED
            self.chunks = ChunkedReader()
            self.dechunk = bytearray() if request.version == 10 else None
        elif rhead.content_length >= 0:
            kind = LENGTH
            self.remaining = rhead.content_length
        else:
            kind = UNTIL_CLOSE
        self.kind = kind
        if (kind == LENGTH and len(body) == self.remaining) or (kind == NO_BODY and not body):
            self.remaining = 0  # the common case: the whole response is here
            self.exchange = None
            request_sent = exchange.request_sent
            # the write to the client first: if it pauses this connection's reading (a client
            # over its write limit), the release below resumes it before it can be pooled
            exchange.respond(rhead, kind == NO_BODY, body)
            self._release(request_sent)
            return
        self.phase = BODY
        head = exchange.response_head(rhead, kind == NO_BODY,
                                      kind == UNTIL_CLOSE or self.dechunk is not None)
        if kind == NO_BODY:
            exchange.deliver(head)
            self._overrun("bytes after a response without a body")
            return
        if not body:
            exchange.deliver_more(head)  # now between body bytes
            return
        self._body(body, head)

    def _body(self, data: bytes, head: bytes = b"") -> None:
        """Pass body bytes to the client; finish when the framing says the body is complete."""
        exchange = self.exchange
        kind = self.kind
        if kind == LENGTH:
            remaining = self.remaining
            if len(data) < remaining:
                self.remaining = remaining - len(data)
                exchange.deliver_more(head + data if head else data)
                return
            extra = len(data) > remaining
            data = data[:remaining]
            self.remaining = 0
            exchange.deliver(head + data if head else data)
            if extra:
                self._overrun("more bytes than Content-Length")
            else:
                self._done()
        elif kind == CHUNKED:
            payload = self.dechunk  # None for HTTP/1.1 clients: they get the chunks as they are
            try:
                end = self.chunks.feed(data) if payload is None else \
                    self.chunks.feed(data, 0, payload)
            except ParseError as exc:
                if head:
                    exchange.deliver(head)
                self._broken(f"bad chunked framing: {exc.reason}")
                return
            if end >= 0:
                extra = end < len(data)
                data = data[:end]
            if payload is not None:  # the reader took the framing off
                data = bytes(payload)
                del payload[:]
            if end < 0:
                exchange.deliver_more(head + data if head else data)
                return
            exchange.deliver(head + data if head else data)
            if extra:
                self._overrun("bytes after the end of a chunked response")
            else:
                self._done()
        else:  # UNTIL_CLOSE
            exchange.deliver_more(head + data if head else data)

    def _done(self) -> None:
        """The response is complete and well framed."""
        exchange = self.exchange
        self.exchange = None
        self._release(exchange.request_sent)
        exchange.response_done()

    def _overrun(self, reason: str) -> None:
        """The response is complete but more bytes followed it: the client has its response
        (the extra bytes are not passed on, as nginx does); this connection is not reused."""
        log.warning("upstream %s: %s; closing the connection", self.target.address, reason)
        self.keep_alive = False
        self._done()

    def _release(self, request_sent: bool) -> None:
        """Back to the pool if the connection can be reused, else closed."""
        # not with request bytes still queued: the upstream answered without reading them all
        sent = request_sent and not self.write_paused
        self.phase = IDLE
        self.dechunk = None
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        if self.keep_alive and sent and not self.gw.closing:
            self.target.pool.release(self, self.gw.now)
        elif sent:
            self.close()
        else:  # the rest of the request would never be read: do not wait to flush it
            self.abandon()

    def _fail(self, reason: str) -> None:
        """No usable response head: the client gets 502; this connection is discarded."""
        exchange = self.exchange
        self.exchange = None
        self.phase = CLOSED
        self.transport.abort()
        if exchange is not None:
            exchange.attempt_failed(Outcome.BAD_RESPONSE, 502, reason)

    def _broken(self, reason: str) -> None:
        """The body's framing broke after the head went out: cut both connections."""
        log.warning("upstream %s: %s", self.target.address, reason)
        self._fail(reason)

    # -- called by the exchange and the client side ------------------------------------------

    def send(self, data: bytes) -> None:
        """More of the request (a streamed body), or tunnel bytes."""
        if self.transport is not None:
            self.transport.write(data)

    def send_eof(self) -> None:
        self.transport.write_eof()

    def abandon(self) -> None:
        """The exchange gave up on this connection (client gone, timeout, bad request body):
        its state is unknown, so close it at once."""
        self.exchange = None
        self.phase = CLOSED
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.phase = CLOSED
        self.exchange = None
        if self.transport is not None:
            self.transport.close()


def show_protocols(upgrade) -> str:
    """An Upgrade value for a log line (validated tokens), quoted; words when absent."""
    return "no protocol (no Upgrade)" if upgrade is None else f'"{upgrade.decode("latin-1")}"'


def upgrade_granted(asked: bytes, named) -> bool:
    """Does a 101's Upgrade (``named``) switch only to protocols the request offered
    (``asked``)? Both are canonical comma lists; names compare without case (RFC 9110 7.8),
    and a version the request gave must match."""
    if not named:
        return False  # RFC 9110 7.8: a 101 must say what it switches to
    offered = [element.lower() for element in asked.split(b", ")]
    for protocol in named.lower().split(b", "):
        if protocol not in offered and protocol.partition(b"/")[0] not in offered:
            return False
    return True
