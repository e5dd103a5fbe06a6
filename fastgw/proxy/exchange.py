# cython: boundscheck=True, wraparound=True, annotation_typing=False
"""One request's life, from its parsed head to the one ``finish()`` that ends it.

The client connection owns the socket (reading, pipelining, flow control, deadlines, writing);
an Exchange owns what happens to one request: its route and API version, the route's steps,
the attempts on upstream targets and how each ended, the bytes that can be replayed, the
response status, byte counts and timestamps. The upstream connection talks to it through the
methods under "called by the upstream side", never by writing its fields.

States and the events that move between them (any other move raises IllegalTransition):

    state        event     next         when
    RECEIVING    SEND      ATTEMPT      routed, a target picked, the request handed to it
    RECEIVING    FINISH    DONE         answered by the gateway (404, 503, a step), client gone
    ATTEMPT      SEND      ATTEMPT      a new attempt (retries: the next issue plugs in here)
    ATTEMPT      RESPOND   RESPONDING   a final response head arrived and went to the client
    ATTEMPT      UPGRADE   TUNNEL       101 Switching Protocols to an Upgrade request
    ATTEMPT      FINISH    DONE         the attempt failed (502/504 sent), client gone
    RESPONDING   FINISH    DONE         response complete, cut short, or client gone
    TUNNEL       FINISH    DONE         either side closed the tunnel

Every attempt ends with exactly one outcome (outcome.py), reported to the upstream's balancer
(and, in the next issues, to health and breakers) and recorded in ``attempts``. Every exchange
ends in exactly one ``finish(ending, outcome)``, which also ends the attempt still open: the
place where counters and the access log plug in (``gw.finishers``).

The hot path (a pooled connection, a response that arrives whole) is three calls into this
module: the constructor (which routes), ``send`` and ``respond``; each moves along the table
inline (``_NEXT``) rather than through a method, because a Python call costs as much as a
third of the work a request needs here.

No Task or Future per request: only opening a new upstream connection runs in a Task.
"""

from __future__ import annotations

import asyncio
import logging

from ..versioning import VersionError
from .outcome import Outcome, target_failed

log = logging.getLogger("fastgw.proxy")

# states
RECEIVING, ATTEMPT, RESPONDING, TUNNEL, DONE = range(5)
STATES = ("RECEIVING", "ATTEMPT", "RESPONDING", "TUNNEL", "DONE")
# events
SEND, RESPOND, UPGRADE, FINISH = range(4)
EVENTS = ("SEND", "RESPOND", "UPGRADE", "FINISH")

TRANSITIONS = {
    RECEIVING: {SEND: ATTEMPT, FINISH: DONE},
    ATTEMPT: {SEND: ATTEMPT, RESPOND: RESPONDING, UPGRADE: TUNNEL, FINISH: DONE},
    RESPONDING: {FINISH: DONE},
    TUNNEL: {FINISH: DONE},
    DONE: {},
}
# the table flattened for the hot path: _NEXT[state * len(EVENTS) + event], -1 if illegal
_NEXT = tuple(TRANSITIONS[s].get(e, -1) for s in range(len(STATES)) for e in range(len(EVENTS)))

# how an exchange ended (``Exchange.ending``)
RESPONDED = "responded"  # the upstream's response went to the client whole
ANSWERED = "answered"  # the gateway answered itself (its own 4xx/5xx)
UPSTREAM_FAILED = "upstream failed"  # no usable response (the client got 502/504 or a cut)
CLIENT_GONE = "client gone"  # the client closed or was cut before the end
TUNNEL_CLOSED = "tunnel closed"


def connection_closes(keep_alive: bool, request_sent: bool, close_delimited: bool,
                      draining: bool, client_done: bool) -> bool:
    """Whether the client connection closes after this response (RFC 9112 9.3, 9.6): the
    request did not ask to keep it (HTTP/1.1 "close", HTTP/1.0 without keep-alive), the body
    the client gets ends at the close, the worker is draining, the request body was not all
    read (what follows it cannot be framed), or the client half-closed with nothing queued."""
    return (not keep_alive or close_delimited or draining or not request_sent
            or client_done)


class IllegalTransition(RuntimeError):
    """A bug: an exchange was asked to move along an arrow its table does not have."""


class Rewrite:
    """The parts of the forwarded head that a route's request steps change. Made only for
    routes that have steps: a plain route forwards the head as parsed."""

    __slots__ = ("path", "kept", "host")

    def __init__(self, head) -> None:
        self.path = head.path
        self.kept = head.kept
        self.host = None  # a Host to send instead of the client's


class Exchange:
    __slots__ = (
        "gw", "client", "head", "route", "version", "refusal", "group", "target", "conn",
        "reused", "trying", "outcome", "earlier", "replay", "rewrite", "request_sent", "close",
        "status", "bytes_in", "bytes_out", "t_head", "t_attempt", "t_sent", "t_first",
        "t_done", "state", "ending",
    )

    def __init__(self, client, head) -> None:
        """A request with a parsed ``head`` (None: rejected before one could be parsed),
        routed at once: ``refusal`` is then None, or the (status, message) to answer with."""
        gw = client.gw
        self.gw = gw
        self.client = client
        self.head = head
        self.route = None  # the RouteRuntime
        self.version = None  # the API version, when versioning is configured
        # the last attempt (see ``attempts`` for all of them)
        self.group = None  # its UpstreamGroup
        self.target = None  # its Target
        self.conn = None  # the UpstreamConnection serving it (None while connecting)
        self.reused = False  # it went out on a pooled connection
        self.trying = False  # it is in progress
        self.outcome = 0  # how it ended (outcome.py; 0 while in progress or without one)
        self.earlier = ()  # (target, reused, started, outcome) of the attempts before it
        self.replay = None  # the whole forwarded request, while it may be sent again
        self.rewrite = None  # a Rewrite, on routes with request steps
        self.request_sent = False  # the whole request has been handed to the upstream
        self.status = 0  # the status the client got (0: none)
        self.bytes_out = 0  # to the client
        self.t_head = gw.now  # times from the worker's coarse clock (loop.time() seconds)
        self.t_attempt = self.t_sent = self.t_first = self.t_done = 0.0
        self.state = RECEIVING
        self.ending = None
        if head is None:
            self.close = True
            self.bytes_in = 0
            self.refusal = None
            return
        self.close = not head.keep_alive  # close the connection afterwards
        self.bytes_in = head.head_length  # from the client
        if gw.versioning is None:
            index = gw.router.match(head)
        else:
            index = self._versioned(gw, head)
            if index < -1:
                return
        if index < 0:
            self.refusal = 404, "no route matches this request"
            return
        route = self.route = gw.routes[index]
        self.refusal = None
        if route.request_steps:
            self.rewrite = Rewrite(head)
            for step in route.request_steps:
                answer = step(self)
                if answer is not None:
                    self.refusal = answer
                    return

    def _versioned(self, gw, head) -> int:
        """The route index for the request's API version; -2 with ``refusal`` set when the
        version is malformed (400) or not served (404)."""
        try:
            value = gw.versioning.extract(head).value
        except VersionError as exc:
            self.refusal = 400, exc.message
            return -2
        self.version = value
        index = gw.router.match(head, value)
        if index < 0 and value is not None and value not in gw.router.versions:
            default = gw.unknown_version_default
            if default is not None:
                self.version = default
                index = gw.router.match(head, default)
            if index < 0:
                self.refusal = 404, f"API version {value} is not served here"
                return -2
        return index

    def _move(self, event: int) -> None:
        """Move along the table (the hot paths inline these three lines)."""
        state = _NEXT[self.state * 4 + event]
        if state < 0:
            self._illegal(event)
        self.state = state

    def _illegal(self, event: int) -> None:
        raise IllegalTransition(f"exchange in {STATES[self.state]} cannot take {EVENTS[event]}")

    # -- attempts ----------------------------------------------------------------------------

    def send(self, body: bytes, complete: bool):
        """Send the request (head and the body received so far) to a target of the route.
        None once it is on its way; (503, message) when no target is available."""
        head = self.head
        route = self.route
        group = route.group
        client = self.client
        if group is None:  # a split: choose the side first
            group = route.upstream_for(head, client.client_ip)
        self.group = group
        key = group.key
        target = group.balancer.pick(key(head, client.client_ip) if key is not None else None)
        if target is None:
            return 503, f"upstream {group.name} has no target available"
        self.request_sent = complete
        rewrite = self.rewrite
        if rewrite is None:
            request = head.forward(client.xff_tail, head.host or target.address_bytes)
        else:
            request = head.forward(client.xff_tail,
                                   rewrite.host or head.host or target.address_bytes,
                                   rewrite.path, rewrite.kept, head.host or target.address_bytes)
        if body:
            self.bytes_in += len(body)
            request += body
        # only a request held whole can be replayed on a fresh connection
        self.replay = request if complete else None
        state = _NEXT[self.state * 4 + SEND]
        if state < 0:
            self._illegal(SEND)
        self.state = state
        gw = self.gw
        self.target = target
        self.trying = True
        self.t_attempt = now = gw.now
        conn = target.pool.acquire()
        if conn is None:
            self.reused = False
            self._connect(target, request)
            return None
        self.reused = True
        self.conn = conn
        if complete:
            self.t_sent = now
            client.deadline = now + gw.read_timeout
        else:
            client.deadline = now + gw.idle_timeout  # the body is still coming
        conn.start(self, request, client.write_paused)
        return None

    def _connect(self, target, request: bytes) -> None:
        # A Task per new upstream connection (not per request): connecting is rare with pooling.
        # upstream_connect bounds it; the read deadline starts once the request is written.
        self.client.deadline = 0.0
        self.gw.loop.create_task(self._open(target, request))

    async def _open(self, target, request: bytes) -> None:
        from .upstream import UpstreamConnection  # here: upstream imports this module

        gw = self.gw
        try:
            _, conn = await asyncio.wait_for(
                gw.loop.create_connection(lambda: UpstreamConnection(gw, target), target.host,
                                          target.port),
                gw.connect_timeout,
            )
        except TimeoutError:
            _connect_failure(target, gw.now, "connect timed out")
            self.attempt_failed(Outcome.CONNECT_TIMEOUT, 502,
                                f"connecting to upstream {target.address} timed out")
            return
        except OSError as exc:
            _connect_failure(target, gw.now, f"connect failed: {exc.strerror or exc}")
            self.attempt_failed(Outcome.CONNECT_ERROR, 502,
                                f"cannot connect to upstream {target.address}")
            return
        if not self.trying or self.conn is not None:  # the client left meanwhile
            target.pool.release(conn, gw.now)  # keep the fresh connection for the next one
            return
        request += self.client.take_pending()
        self.conn = conn
        client = self.client
        if self.request_sent:
            self.t_sent = gw.now
            client.deadline = gw.now + gw.read_timeout
        else:
            client.deadline = gw.now + gw.idle_timeout  # the body is still coming
        conn.start(self, request, client.write_paused)

    # -- called by the client side -----------------------------------------------------------

    def body_sent(self) -> None:
        """The rest of a streamed request body has been handed over."""
        self.request_sent = True
        if self.conn is not None:
            self.t_sent = self.gw.now

    def answer(self, status: int) -> None:
        """The gateway answered this request itself (the client wrote the response); an
        attempt in progress (e.g. a 408 for a stalled body) is given up."""
        conn = self.conn
        self.status = status
        self.finish(ANSWERED, Outcome.ABANDONED)
        if conn is not None:
            conn.abandon()

    def timed_out(self) -> None:
        """No response head in time: the attempt ends with TIMEOUT, the client gets 504."""
        self.conn.abandon()
        self.attempt_failed(Outcome.TIMEOUT, 504, "upstream did not respond in time")

    def cut(self, outcome: int = Outcome.ABANDONED) -> None:
        """The client connection is gone or being cut: end the attempt (with ``outcome``:
        TIMEOUT when the response body stalled) and the exchange."""
        state = self.state
        if state == DONE:
            return
        conn = self.conn
        if state == TUNNEL:
            self.finish(TUNNEL_CLOSED, 101)
        else:
            self.finish(UPSTREAM_FAILED if target_failed(outcome) else CLIENT_GONE, outcome)
        if conn is not None:
            conn.abandon()

    # -- called by the upstream side ---------------------------------------------------------

    def response_head(self, rhead, no_body: bool, close_delimited: bool) -> bytes:
        """A final response head arrived: the head to send the client; decides whether the
        client connection closes after it. ``close_delimited``: the client's copy of the body
        ends when the connection closes (the upstream's did, or a chunked body is decoded for
        an HTTP/1.0 client)."""
        state = _NEXT[self.state * 4 + RESPOND]
        if state < 0:
            self._illegal(RESPOND)
        self.state = state
        gw = self.gw
        self.status = rhead.status
        self.t_first = gw.now
        client = self.client
        self.close = close = connection_closes(not self.close, self.request_sent,
                                               close_delimited, gw.closing,
                                               client.eof and not client.buf)
        head = self.head
        if close:
            extra = b"Connection: close\r\n"
        elif head.version == 10:
            extra = b"Connection: keep-alive\r\n"
        else:
            extra = b""
        steps = self.route.response_steps
        if steps:
            kept = rhead.kept
            for step in steps:
                kept = step(self, kept)
            return rhead.forward(extra, head.version == 11, no_body, kept)
        # HTTP/1.0 has no Transfer-Encoding: a 1.0 client's body ends at the close
        return rhead.forward(extra, head.version == 11, no_body)

    def respond(self, rhead, no_body: bool, body: bytes) -> None:
        """The whole response arrived with its head (the common case): send it and finish.
        The upstream connection has been released already."""
        out = self.response_head(rhead, no_body, False)
        if body:
            out += body
        self.bytes_out += len(out)
        client = self.client
        client.transport.write(out)
        self.finish(RESPONDED, self.status)
        client.exchange_done(self)

    def deliver(self, data: bytes) -> None:
        """Bytes for the client: body bytes, an interim response, tunnel bytes."""
        self.bytes_out += len(data)
        self.client.transport.write(data)

    def deliver_more(self, data: bytes) -> None:
        """Body bytes for the client, more to come: the next ones must come in time."""
        gw = self.gw
        self.client.deadline = gw.now + gw.read_timeout
        self.bytes_out += len(data)
        self.client.transport.write(data)

    def response_done(self) -> None:
        """The response is complete and well framed (the upstream connection has gone back
        to its pool or been closed already)."""
        self.finish(RESPONDED, self.status)
        self.client.exchange_done(self)

    def stale(self) -> bool:
        """A pooled connection turned out closed before any response byte: send the request
        again on a new connection to the same target, once. Not a new attempt: the keep-alive
        race says nothing about the target. False when the request was not held whole.
        (A POST is replayed too, as before this module existed; whether non-idempotent
        requests may be sent again is the retry policy's decision, RFC 9110 9.2.2.)"""
        request = self.replay
        if request is None or self.state != ATTEMPT:
            return False
        self.replay = None
        self.conn = None
        self.reused = False
        self._connect(self.target, request)
        return True

    def attempt_failed(self, outcome: int, status: int, reason: str) -> None:
        """The attempt gave no (complete) response: the client gets ``status``, or a cut
        response if the head already went out."""
        state = self.state
        if state == DONE:  # the client left while connecting
            return
        client = self.client
        if state in (RESPONDING, TUNNEL):
            self.finish(UPSTREAM_FAILED, outcome)
            client.abort()  # the client must see a truncated response, not a complete one
            return
        self.status = status
        self.finish(UPSTREAM_FAILED, outcome)
        client.answer_failure(self, status, reason)

    def upgraded(self, rhead) -> bytes:
        """101 to an Upgrade request: the head to send the client; bytes flow both ways now."""
        self._move(UPGRADE)
        self.status = 101
        self.t_first = self.gw.now
        head = b"HTTP/1.1 101 %s\r\n%sConnection: upgrade\r\nUpgrade: %s\r\n\r\n" % (
            rhead.reason, rhead.kept, rhead.upgrade or self.head.upgrade)
        self.client.start_tunnel()
        return head

    def tunnel_eof(self) -> bool:
        """The upstream finished sending in a tunnel. True to keep the upstream connection
        half-open (the client still sends); False when both directions are done."""
        client = self.client
        if client.eof:
            self.conn.close()
            self.tunnel_closed()
            return False
        client.transport.write_eof()
        return True

    def upstream_congested(self, congested: bool) -> None:
        """The upstream stopped (or resumed) reading the request: so does the client side."""
        self.client.upstream_congested(congested)

    def tunnel_closed(self) -> None:
        if self.state == DONE:
            return
        self.finish(TUNNEL_CLOSED, 101)
        self.client.close()

    # -- the end -----------------------------------------------------------------------------

    def finish(self, ending: str, outcome: int = Outcome.ABANDONED) -> None:
        """Exactly once per exchange, whatever the ending. An attempt still in progress ends
        here with ``outcome``: the balancer hears of it and ``attempts`` records it."""
        state = _NEXT[self.state * 4 + FINISH]
        if state < 0:
            self._illegal(FINISH)
        self.state = state
        now = self.gw.now
        if self.trying:
            self.trying = False
            self.conn = None
            self.outcome = outcome
            self.group.balancer.report(self.target, outcome, now - self.t_attempt)
        self.ending = ending
        self.t_done = now
        finishers = self.gw.finishers
        if finishers:
            for finisher in finishers:
                finisher(self)

    @property
    def attempts(self) -> tuple:
        """(target, reused, started, outcome) for every attempt, in order; the outcome of one
        still in progress is 0."""
        if self.target is None:
            return self.earlier
        return self.earlier + ((self.target, self.reused, self.t_attempt, self.outcome),)


def _connect_failure(target, now: float, what: str) -> None:
    """One warning per target every few seconds, with the count of failures since the last."""
    count = target.connect_failed(now)
    if count:
        log.warning("upstream %s: %s (%d failed connect%s since the last line)", target.address,
                    what, count, "" if count == 1 else "s")
