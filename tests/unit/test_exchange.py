"""The request exchange, in process: its transitions, "finish exactly once" for every ending,
how each attempt's outcome is classified and reported, and the keep-alive decision.

The protocols run on fake transports (they record what was written), so every ending can be
produced exactly and in order; the integration suite proves the same paths over real sockets.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from fastgw.config import load_config_bytes
from fastgw.plan import compile_plan
from fastgw.proxy import exchange as ex
from fastgw.proxy.client import ClientConnection
from fastgw.proxy.outcome import Outcome, describe, target_failed
from fastgw.proxy.state import ProxyState
from fastgw.proxy.upstream import UpstreamConnection

CONFIG = """
listen: 127.0.0.1:{port}
upstreams:
  app:
    targets: [{{address: "127.0.0.1:{up}"}}]
  empty:
    targets: [{{address: "127.0.0.1:{up}", down: true}}]
routes:
  - {{match: {{path_prefix: /down}}, upstream: empty}}
  - {{match: {{path_prefix: /app}}, upstream: app}}
limits: {{max_body_bytes: 1MiB, request_buffer: 1KiB}}
"""


def closed_port() -> int:
    """A local port nothing listens on (connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False
        self.aborted = False
        self.eof_sent = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def write_eof(self) -> None:
        self.eof_sent = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name, default=None):
        return ("127.0.0.9", 4321) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class World:
    """One worker's state on a real loop, with a recorder of finished exchanges."""

    def __init__(self, up_port: int) -> None:
        self.loop = asyncio.new_event_loop()
        config = load_config_bytes(CONFIG.format(port=closed_port(), up=up_port).encode(),
                                   "t.yaml")
        self.gw = ProxyState(self.loop, config, compile_plan(config))
        self.finished: list = []
        self.gw.finishers = (self.finished.append,)

    def client(self):
        client = ClientConnection(self.gw)
        transport = FakeTransport()
        client.connection_made(transport)
        return client, transport

    def pooled(self, upstream: str = "app"):
        """An idle upstream connection in the first target's pool (the next request takes it)."""
        target = self.gw.groups[upstream].targets[0]
        conn = UpstreamConnection(self.gw, target)
        transport = FakeTransport()
        conn.connection_made(transport)
        target.pool.release(conn, self.gw.now)
        return conn, transport

    def run(self, seconds: float = 0.05) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def only(self):
        assert len(self.finished) == 1, self.finished
        return self.finished[0]


@pytest.fixture
def world():
    w = World(closed_port())
    yield w
    w.loop.close()


GET = b"GET /app/x HTTP/1.1\r\nHost: h\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_response_complete(world):
    conn, up = world.pooled()
    client, out = world.client()
    client.data_received(GET)
    assert up.out.startswith(b"GET /app/x HTTP/1.1\r\n")
    conn.data_received(OK)
    x = world.only()
    assert (x.ending, x.status, x.state) == (ex.RESPONDED, 200, ex.DONE)
    assert [(t.address, reused, outcome) for t, reused, _, outcome in x.attempts] == [
        (conn.target.address, True, 200)]
    assert x.outcome == 200
    assert bytes(out.out).endswith(b"ok") and x.bytes_out == len(out.out)
    assert x.bytes_in == len(GET)
    assert x.t_head <= x.t_attempt <= x.t_sent <= x.t_first <= x.t_done
    assert client.exchange is None and not out.closed  # keep-alive: waiting for the next
    assert conn.target.pool.idle == [conn]  # back in its pool
    client.connection_lost(None)
    assert len(world.finished) == 1


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n", 404),  # no route
    (b"GET /down HTTP/1.1\r\nHost: h\r\n\r\n", 503),  # no target available
])
def test_gateway_answers_itself_and_keeps_the_connection(world, request_bytes, status):
    client, out = world.client()
    client.data_received(request_bytes)
    x = world.only()
    assert (x.ending, x.status, x.attempts) == (ex.ANSWERED, status, ())
    assert out.out.startswith(b"HTTP/1.1 %d " % status) and not out.closed
    client.data_received(request_bytes)  # the next request is a new exchange
    assert len(world.finished) == 2 and world.finished[1] is not x


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),  # rejected before a head exists
    (b"POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999\r\n\r\n", 413),
    (b"POST /app HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
])
def test_rejected_requests_end_once_and_close(world, request_bytes, status):
    client, out = world.client()
    client.data_received(request_bytes)
    x = world.only()
    assert (x.ending, x.status) == (ex.ANSWERED, status)
    assert out.closed
    client.connection_lost(None)
    assert len(world.finished) == 1


def test_head_timeout_is_408(world):
    client, out = world.client()
    client.data_received(b"GET /app HTTP/1.1\r\n")
    client.on_deadline()
    x = world.only()
    assert (x.ending, x.status, x.head) == (ex.ANSWERED, 408, None)


def test_empty_lines_alone_keep_a_connection_idle(world):
    """CRLFs before a request (RFC 9112 2.2) are no request yet: the idle timeout applies and
    runs out silently, not a 408."""
    client, out = world.client()
    client.data_received(b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n\r\n")  # 404, then a CRLF
    world.run(0.01)  # the next pipelined request is read from the loop
    assert len(world.finished) == 1
    client.data_received(b"\r\n")
    assert client.phase == 0 and client.deadline == world.gw.now + world.gw.idle_timeout
    client.on_deadline()
    assert out.closed and b"408" not in out.out and len(world.finished) == 1

    client, out = world.client()  # the same on a fresh connection
    client.data_received(b"\r\n\r")
    assert client.phase == 0
    client.data_received(b"\nGET /nope HTTP/1.1\r\nHost: h\r\n\r\n")
    assert out.out.startswith(b"HTTP/1.1 404 ")


def test_idle_connection_that_closes_makes_no_exchange(world):
    client, _ = world.client()
    client.on_deadline()
    client.connection_lost(None)
    assert world.finished == []


@pytest.mark.parametrize("reply, outcome", [
    (b"HTTP/1.1 200", Outcome.RESET),  # closed before a complete head
    (b"NOT HTTP\r\n\r\n", Outcome.BAD_RESPONSE),
])
def test_no_usable_response_head_is_502(world, reply, outcome):
    conn, up = world.pooled()
    client, out = world.client()
    client.data_received(GET)
    conn.data_received(reply)
    if not up.closed:
        conn.connection_lost(None)
    x = world.only()
    assert (x.ending, x.status, x.outcome) == (ex.UPSTREAM_FAILED, 502, outcome)
    assert out.out.startswith(b"HTTP/1.1 502 ")
    assert conn.target.pool.idle == []


def test_truncated_body_cuts_the_client(world):
    conn, up = world.pooled()
    client, out = world.client()
    client.data_received(GET)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    assert world.finished == []
    conn.connection_lost(None)
    x = world.only()
    assert (x.ending, x.status, x.outcome) == (ex.UPSTREAM_FAILED, 200, Outcome.BAD_RESPONSE)
    assert out.aborted  # the client sees a cut response
    client.connection_lost(None)
    assert len(world.finished) == 1


def test_connect_error(world):
    client, out = world.client()
    client.data_received(GET)  # nothing pooled: a connection is opened to a closed port
    world.run()
    x = world.only()
    assert (x.status, x.outcome, x.attempts[0][1]) == (502, Outcome.CONNECT_ERROR, False)
    assert out.out.startswith(b"HTTP/1.1 502 ")


def test_connect_timeout(world):
    world.gw.connect_timeout = 0
    client, out = world.client()
    client.data_received(GET)
    world.run()
    x = world.only()
    assert (x.status, x.outcome) == (502, Outcome.CONNECT_TIMEOUT)


def test_client_gone_while_connecting_ends_once(world):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    w = World(listener.getsockname()[1])
    try:
        client, _ = w.client()
        client.data_received(GET)
        client.connection_lost(None)
        x = w.only()
        assert (x.ending, x.outcome) == (ex.CLIENT_GONE, Outcome.ABANDONED)
        w.run(0.2)  # the connection opens after all: it goes to the pool, nothing else ends
        assert len(w.finished) == 1
        assert len(w.gw.groups["app"].targets[0].pool.idle) == 1
    finally:
        w.loop.close()
        listener.close()


def test_client_gone_while_waiting_and_while_streaming(world):
    conn, up = world.pooled()
    client, _ = world.client()
    client.data_received(GET)
    client.connection_lost(None)
    assert (world.only().ending, world.only().outcome) == (ex.CLIENT_GONE, Outcome.ABANDONED)
    assert up.aborted

    conn, up = world.pooled()
    client, _ = world.client()
    client.data_received(GET)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    client.connection_lost(None)
    conn.connection_lost(None)
    assert len(world.finished) == 2
    assert (world.finished[1].ending, world.finished[1].outcome) == (ex.CLIENT_GONE,
                                                                    Outcome.ABANDONED)


def test_response_timeout_is_504(world):
    conn, up = world.pooled()
    client, out = world.client()
    client.data_received(GET)
    client.on_deadline()
    x = world.only()
    assert (x.ending, x.status, x.outcome) == (ex.UPSTREAM_FAILED, 504, Outcome.TIMEOUT)
    assert up.aborted and out.out.startswith(b"HTTP/1.1 504 ")
    conn.connection_lost(None)
    assert len(world.finished) == 1


def test_stalled_response_body_is_a_timeout(world):
    conn, _ = world.pooled()
    client, out = world.client()
    client.data_received(GET)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    client.on_deadline()
    x = world.only()
    assert (x.ending, x.outcome) == (ex.UPSTREAM_FAILED, Outcome.TIMEOUT) and out.aborted


def test_stalled_request_body_is_408(world):
    conn, up = world.pooled()
    client, out = world.client()
    client.data_received(b"POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n"
                         + b"a" * 2000)  # over request_buffer: streamed
    assert up.out.endswith(b"a" * 2000)
    client.on_deadline()
    x = world.only()
    assert (x.ending, x.status, x.outcome) == (ex.ANSWERED, 408, Outcome.ABANDONED)
    assert up.aborted and out.closed


def test_tunnel_closed(world):
    conn, up = world.pooled()
    client, out = world.client()
    client.data_received(b"GET /app/ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
                         b"Upgrade: websocket\r\n\r\n")
    conn.data_received(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Connection: upgrade\r\n\r\n")
    assert out.out.startswith(b"HTTP/1.1 101 ")
    client.data_received(b"ping")
    assert up.out.endswith(b"ping")
    assert world.finished == []
    conn.connection_lost(None)
    x = world.only()
    assert (x.ending, x.status, x.outcome) == (ex.TUNNEL_CLOSED, 101, 101)
    client.connection_lost(None)
    assert len(world.finished) == 1


def test_shutdown_closes_after_the_response_in_flight(world):
    conn, _ = world.pooled()
    client, out = world.client()
    client.data_received(GET)
    world.gw.closing = True
    conn.data_received(OK)
    x = world.only()
    assert x.ending == ex.RESPONDED and b"Connection: close\r\n" in out.out and out.closed


def test_stale_pooled_connection_is_not_a_separate_attempt(world):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    w = World(listener.getsockname()[1])
    try:
        conn, _ = w.pooled()
        client, _ = w.client()
        client.data_received(GET)
        conn.connection_lost(None)  # closed by the upstream before any byte: replayed once
        assert w.finished == []
        w.run(0.2)
        fresh = client.exchange.conn
        assert fresh is not None and fresh is not conn
        fresh.data_received(OK)
        x = w.only()
        assert [(reused, outcome) for _, reused, _, outcome in x.attempts] == [(False, 200)]
    finally:
        w.loop.close()
        listener.close()


class PausingTransport(FakeTransport):
    """A client transport over its write limit at the first write (as uvloop calls
    pause_writing from inside write())."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol = None

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.protocol is not None:
            self.protocol.pause_writing()


def test_a_client_not_reading_leaves_no_paused_connection_in_the_pool(world):
    """A response that fills the client's write buffer pauses the upstream connection's
    reading; the connection must go back to its pool reading again, or the next request on it
    never gets its answer."""
    conn, up = world.pooled()
    client = ClientConnection(world.gw)
    transport = PausingTransport()
    client.connection_made(transport)
    transport.protocol = client
    client.data_received(GET)
    conn.data_received(OK)
    assert world.only().ending == ex.RESPONDED
    assert conn.target.pool.idle == [conn]
    assert up.reading and not conn.reading_paused

    other, out = world.client()  # the next request takes the pooled connection
    other.data_received(GET)
    assert up.reading
    conn.data_received(OK)
    assert out.out.endswith(b"ok") and len(world.finished) == 2


def test_pipelined_requests_before_a_half_close_are_all_answered(world):
    """Requests pipelined ahead of the client's FIN are answered, the gateway's own answers
    included, and only then does the connection close."""
    nope = b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"
    client, out = world.client()
    client.data_received(nope * 3)  # the first is answered now, the rest from the loop
    assert client.eof_received() is True  # the FIN comes before the loop reads the next one
    world.run(0.01)
    assert out.out.count(b"HTTP/1.1 404 ") == 3, bytes(out.out)
    assert out.out.count(b"Connection: close") == 1 and out.closed
    assert len(world.finished) == 3

    client, out = world.client()  # a partial request before the FIN: closed, no answer
    client.data_received(nope + b"GET /nope HTTP/1.1\r\n")
    assert client.eof_received() is True
    world.run(0.01)
    assert out.out.count(b"HTTP/1.1 404 ") == 1 and out.closed


def test_every_attempt_is_reported_to_the_balancer(world):
    reports = []
    group = world.gw.groups["app"]

    class Recorder:
        def __init__(self, balancer):
            self.balancer = balancer

        def pick(self, key=None, exclude=None):
            return self.balancer.pick(key, exclude)

        def report(self, target, outcome, latency):
            assert latency >= 0
            reports.append((target.address, outcome))
            self.balancer.report(target, outcome, latency)

    group.balancer = Recorder(group.balancer)
    conn, _ = world.pooled()
    client, _ = world.client()
    client.data_received(GET)
    conn.data_received(OK)
    client.data_received(GET)  # the connection went back to its pool: reused
    conn.data_received(b"HTTP/1.1 503 X\r\nContent-Length: 0\r\n\r\n")
    group.targets[0].pool.close_all()
    client2, _ = world.client()
    client2.data_received(GET)
    world.run()  # connect error
    address = group.targets[0].address
    assert reports == [(address, 200), (address, 503), (address, Outcome.CONNECT_ERROR)]


# -- the transition table ------------------------------------------------------------------------

@pytest.mark.parametrize("state", range(len(ex.STATES)))
@pytest.mark.parametrize("event", range(len(ex.EVENTS)))
def test_only_the_table_s_moves_are_possible(world, state, event):
    client, _ = world.client()
    x = ex.Exchange(client, None)
    x.state = state
    allowed = ex.TRANSITIONS[state].get(event)
    if allowed is None:
        with pytest.raises(ex.IllegalTransition):
            x._move(event)
        assert x.state == state
    else:
        x._move(event)
        assert x.state == allowed


def test_finish_twice_is_refused(world):
    client, _ = world.client()
    x = ex.Exchange(client, None)
    x.finish(ex.ANSWERED)
    with pytest.raises(ex.IllegalTransition):
        x.finish(ex.ANSWERED)


# -- outcomes and the keep-alive decision ----------------------------------------------------------

def test_outcomes():
    assert describe(200) == "200" and describe(Outcome.CONNECT_TIMEOUT) == "connect_timeout"
    assert [o.name for o in Outcome] == ["CONNECT_ERROR", "CONNECT_TIMEOUT", "RESET", "TIMEOUT",
                                         "BAD_RESPONSE", "ABANDONED"]
    assert all(target_failed(o) for o in Outcome if o != Outcome.ABANDONED)
    assert not target_failed(Outcome.ABANDONED)
    assert not any(target_failed(status) for status in (101, 200, 404, 503))


@pytest.mark.parametrize("keep_alive, sent, delimited, draining, client_done, closes", [
    (True, True, False, False, False, False),  # the one case that keeps the connection
    (False, True, False, False, False, True),  # the request said close
    (True, False, False, False, False, True),  # body not all read
    (True, True, True, False, False, True),  # body ends at the close
    (True, True, False, True, False, True),  # draining
    (True, True, False, False, True, True),  # the client half-closed, nothing queued
])
def test_connection_closes(keep_alive, sent, delimited, draining, client_done, closes):
    assert ex.connection_closes(keep_alive, sent, delimited, draining, client_done) is closes
