"""Upstream side of the data path: one UpstreamConnection per TCP connection to a target.

It sends a request, parses the response head, streams the body to the client with its framing
checked as it passes, and returns itself to the target's pool only after a complete,
well-framed response to a completely sent request. Anything else closes it.
"""

from __future__ import annotations

import asyncio
import logging

from .._core import ChunkedReader, ParseError
from .dechunk import ChunkedDecoder

log = logging.getLogger("fastgw.upstream")

# phases
IDLE = 0  # in the pool, or just connected
HEAD = 1  # request sent (or sending); waiting for the response head
BODY = 2  # streaming the response body
TUNNEL = 3
CLOSED = 4

# how the response body ends
NO_BODY = 0
LENGTH = 1
CHUNKED = 2
UNTIL_CLOSE = 3


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "gw", "target", "transport", "client", "phase", "rbuf", "keep_alive", "kind", "remaining",
        "chunks", "dechunk", "reused", "got_bytes", "reading_paused", "write_paused", "eof",
    )

    def __init__(self, gw, target) -> None:
        self.gw = gw
        self.target = target
        self.transport = None
        self.client = None
        self.phase = IDLE
        self.rbuf = b""
        self.keep_alive = False  # the response in progress allows reusing the connection
        self.kind = NO_BODY
        self.remaining = 0
        self.chunks = None
        self.dechunk = None  # a ChunkedDecoder when the client speaks HTTP/1.0
        self.reused = False
        self.got_bytes = False
        self.reading_paused = False
        self.write_paused = False  # over the write high-water mark (the upstream reads slowly)
        self.eof = False  # the upstream finished sending (only tracked in a tunnel)

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(self.gw.write_high, self.gw.write_low)

    def start(self, client, request: bytes, reused: bool) -> None:
        """Serve ``client``'s request on this connection; ``request`` is written in one go."""
        self.client = client
        client.upstream = self
        self.phase = HEAD
        self.reused = reused
        self.got_bytes = False
        self.rbuf = b""
        if client.write_paused:
            self.pause_reading()
        gw = self.gw
        client.deadline = gw.now + (gw.read_timeout if client.request_sent else gw.idle_timeout)
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == BODY:
            self._body(data)
        elif phase == HEAD:
            self.got_bytes = True
            self._head(self.rbuf + data if self.rbuf else data)
        elif phase == TUNNEL:
            client = self.client
            client.deadline = self.gw.now + self.gw.read_timeout
            client.transport.write(data)
        else:  # bytes while idle: the upstream is not speaking HTTP/1.1 properly
            log.warning("upstream %s: %d unexpected bytes on an idle connection; closing",
                        self.target.address, len(data))
            self.target.pool.discard(self)
            self.close()

    def eof_received(self) -> bool:
        client = self.client
        if self.phase == TUNNEL and client is not None:
            self.eof = True
            if client.eof:  # both directions are finished
                self.close()
                client.tunnel_closed()
                return False
            client.transport.write_eof()
            return True
        return False  # close; connection_lost decides what it means

    def connection_lost(self, exc) -> None:
        phase = self.phase
        self.phase = CLOSED
        client = self.client
        self.client = None
        if client is None:
            self.target.pool.discard(self)
            return
        client.upstream = None
        if phase == HEAD:
            if self.reused and not self.got_bytes and client.retry(self.target):
                log.debug("upstream %s: pooled connection was stale; retrying on a new one",
                          self.target.address)
                return
            client.upstream_failed(502, "upstream closed the connection without a response")
        elif phase == BODY:
            if self.kind == UNTIL_CLOSE and exc is None:
                client.response_done()
            else:
                log.warning("upstream %s: response truncated", self.target.address)
                client.upstream_failed(502, "upstream response truncated")
        elif phase == TUNNEL:
            client.tunnel_closed()

    def pause_writing(self) -> None:
        self.write_paused = True
        client = self.client
        if client is not None:
            client.pause_upstream = True
            client._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        client = self.client
        if client is not None:
            client.pause_upstream = False
            client._update_reading()

    # -- response ----------------------------------------------------------------------------

    def _head(self, buf: bytes) -> None:
        client = self.client
        try:
            rhead = self.gw.response_parser.parse(buf)
        except ParseError as exc:
            log.warning("upstream %s: bad response: %s", self.target.address, exc.reason)
            self._fail(502, f"upstream sent an invalid response: {exc.reason}")
            return
        if rhead is None:
            self.rbuf = buf
            return
        self.rbuf = b""
        status = rhead.status
        body = buf[rhead.head_length:]
        if status < 200:
            if status == 101 and client.head.upgrade is not None:
                self.phase = TUNNEL
                client.transport.write(client.start_tunnel(rhead) + body)
                return
            if status != 101:
                # 100 was already answered by the gateway; other interim responses pass on
                if status != 100 and client.head.version == 11:
                    client.transport.write(b"HTTP/1.1 %d %s\r\n%s\r\n" % (
                        status, rhead.reason, rhead.kept))
                if body:
                    self._head(body)
                return
            self._fail(502, "upstream switched protocols without being asked to")
            return
        self.keep_alive = rhead.keep_alive
        if status == 204 or status == 304 or client.head.method == b"HEAD":
            kind = NO_BODY
        elif rhead.chunked:
            kind = CHUNKED
            self.chunks = ChunkedReader()
            self.dechunk = ChunkedDecoder() if client.head.version == 10 else None
        elif rhead.content_length >= 0:
            kind = LENGTH
            self.remaining = rhead.content_length
        else:
            kind = UNTIL_CLOSE
        self.kind = kind
        self.phase = BODY
        head = client.response_head(rhead, kind == NO_BODY,
                                    kind == UNTIL_CLOSE or self.dechunk is not None)
        if kind == NO_BODY:
            client.transport.write(head)
            if body:
                self._broken("bytes after a response without a body")
            else:
                self._done()
            return
        if kind == LENGTH and len(body) == self.remaining:  # the common case: all here
            self.remaining = 0
            client.transport.write(head + body if body else head)
            self._done()
            return
        client.deadline = self.gw.now + self.gw.read_timeout  # now between body bytes
        if not body:
            client.transport.write(head)
            return
        self._body(body, head)

    def _body(self, data: bytes, head: bytes = b"") -> None:
        """Pass body bytes to the client; finish when the framing says the body is complete."""
        client = self.client
        kind = self.kind
        if kind == LENGTH:
            remaining = self.remaining
            if len(data) < remaining:
                self.remaining = remaining - len(data)
                client.deadline = self.gw.now + self.gw.read_timeout
                client.transport.write(head + data if head else data)
                return
            extra = len(data) > remaining
            data = data[:remaining]
            self.remaining = 0
            client.transport.write(head + data if head else data)
            if extra:
                self._broken("more bytes than Content-Length")
            else:
                self._done()
        elif kind == CHUNKED:
            try:
                end = self.chunks.feed(data)
            except ParseError as exc:
                client.transport.write(head)
                self._broken(f"bad chunked framing: {exc.reason}")
                return
            if end >= 0:
                extra = end < len(data)
                data = data[:end]
            if self.dechunk is not None:
                data = self.dechunk.decode(data)
            if end < 0:
                client.deadline = self.gw.now + self.gw.read_timeout
                client.transport.write(head + data if head else data)
                return
            client.transport.write(head + data if head else data)
            if extra:
                self._broken("bytes after the end of a chunked response")
            else:
                self._done()
        else:  # UNTIL_CLOSE
            client.deadline = self.gw.now + self.gw.read_timeout
            client.transport.write(head + data if head else data)

    def _done(self) -> None:
        """The response is complete and well framed: pool this connection if it can be reused."""
        client = self.client
        self.client = None
        client.upstream = None
        # not with request bytes still queued: the upstream answered without reading them all
        keep = (self.keep_alive and client.request_sent and not self.write_paused
                and not self.gw.closing)
        self.phase = IDLE
        self.dechunk = None
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        if keep:
            self.target.pool.release(self, self.gw.now)
        elif client.request_sent and not self.write_paused:
            self.close()
        else:  # the rest of the request would never be read: do not wait to flush it
            self.client_gone()
        client.response_done()

    def _fail(self, status: int, reason: str) -> None:
        """No usable response head: the client gets ``status``; this connection is discarded."""
        client = self.client
        self.client = None
        self.phase = CLOSED
        self.transport.abort()
        if client is not None:
            client.upstream = None
            client.upstream_failed(status, reason)

    def _broken(self, reason: str) -> None:
        """The body's framing broke after the head went out: cut both connections."""
        log.warning("upstream %s: %s", self.target.address, reason)
        client = self.client
        self.client = None
        self.phase = CLOSED
        self.transport.abort()
        if client is not None:
            client.upstream = None
            client.upstream_failed(502, reason)

    # -- called by the client side -------------------------------------------------------------

    def client_gone(self) -> None:
        """The client disconnected mid-exchange: this connection's state is unknown; close it."""
        self.client = None
        self.phase = CLOSED
        if self.transport is not None:
            self.transport.abort()

    def abandon(self) -> None:
        """The client side gave up on this exchange (timeout or bad body)."""
        self.client_gone()

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
        self.client = None
        if self.transport is not None:
            self.transport.close()
