"""End to end: upstream failures. A refused connection, a malformed or truncated response, and a
stale pooled connection; the upstream connection is discarded after a bad response."""

from __future__ import annotations

import pytest

from tests.support.client import Client, ConnectionClosed, build_request
from tests.support.gateway import free_port


def assert_json_error(resp, status: int) -> None:
    assert resp.status == status, resp
    body = resp.json()
    assert body.get("status") == status and isinstance(body.get("error"), str), body


def test_upstream_down_gives_502(make_gateway):
    gw = make_gateway(upstream=f"127.0.0.1:{free_port()}")  # nothing listens there
    with Client(gw.port) as c:
        assert_json_error(c.request("GET", "/down"), 502)
        # a body that was already received does not change the answer
        assert_json_error(c.request("POST", "/down", body=b"x" * 1000), 502)


def test_upstream_down_then_up(make_gateway, backend):
    gw = make_gateway()
    with Client(gw.port) as c:
        assert c.request("GET", "/up").status == 200
    backend.stop()
    with Client(gw.port) as c:
        assert_json_error(c.request("GET", "/gone"), 502)


@pytest.mark.parametrize("kind", ["status", "garbage", "header", "cl", "version"])
def test_malformed_upstream_response_gives_502(gateway, backend, kind):
    with Client(gateway.port) as c:
        resp = c.request("GET", f"/bad/{kind}")
        assert_json_error(resp, 502)
        # the broken upstream connection is discarded, never pooled
        backend.wait_for(lambda: all(cr.closed_by == "peer" for cr in backend.connections.values()),
                         5, "the proxy to close the broken upstream connection")
        # the client connection may stay open; if it does, it still works, on a new upstream conn
        if "close" not in resp.connection_tokens():
            follow = c.request("GET", "/after")
            assert follow.body == b"GET /after"
            assert backend.connections_accepted == 2, backend.summary()


def test_truncated_upstream_response(gateway, backend):
    with Client(gateway.port) as c:
        c.send(build_request("GET", "/truncate"))
        resp = c.read_head()
        if resp.status == 502:  # the proxy held the head back: a clean error is fine
            return
        assert resp.status == 200 and resp.header("Content-Length") == "100", resp
        rest = c.read_to_eof(timeout=5)
        assert len(rest) < 100, "the client must not see a complete body"
        assert rest == b"0123456789"[:len(rest)]
    # the next request works on a fresh upstream connection
    with Client(gateway.port) as c:
        assert c.request("GET", "/after").body == b"GET /after"
    recs = backend.wait_requests(2)
    assert recs[0].conn_id != recs[1].conn_id


def test_invalid_chunked_upstream_response_is_cut(gateway, backend):
    with Client(gateway.port) as c:
        c.send(build_request("GET", "/bad-chunk"))
        resp = c.read_head()
        if resp.status == 502:
            return
        assert resp.status == 200, resp
        with pytest.raises(ConnectionClosed):
            c.read_response()  # reads chunks; the proxy must cut the stream, not end it cleanly
    # not a stream the proxy ends cleanly: the client connection is gone, and so is the upstream's
    backend.wait_for(lambda: all(cr.closed_by == "peer" for cr in backend.connections.values()),
                     5, "the proxy to close the upstream connection with a bad chunked body")


def test_stale_pooled_connection_replaced(gateway, backend):
    """The backend closes each idle connection 50 ms after answering; every request must still
    succeed, on a new upstream connection, without a client-visible error."""
    backend.close_idle_after = 0.05
    with Client(gateway.port) as c:
        for i in range(5):
            closes = backend.idle_closes
            resp = c.request("GET", f"/stale/{i}")
            assert (resp.status, resp.body) == (200, f"GET /stale/{i}".encode()), resp
            backend.wait_for(lambda closes=closes: backend.idle_closes > closes, 5,
                             "the backend to close the idle pooled connection")
        # a request with a small body is replayed on the fresh connection, too
        closes = backend.idle_closes
        resp = c.request("POST", "/echo", body=b"replayed body")
        assert (resp.status, resp.body) == (200, b"replayed body"), resp
    recs = backend.wait_requests(6)
    assert len({r.conn_id for r in recs}) == 6, backend.summary()
    assert recs[-1].body == b"replayed body"


def test_several_stale_pooled_connections(gateway, backend):
    """Several pooled connections go stale at once; a burst of clients must all succeed."""
    backend.close_idle_after = 0.05
    clients = [Client(gateway.port) for _ in range(4)]
    try:
        # concurrent slow requests: the proxy opens (and then pools) four upstream connections
        for c in clients:
            c.send(build_request("GET", "/slow/0.2"))
        for c in clients:
            assert c.read_response().status == 200
        backend.wait_for(lambda: backend.idle_closes >= 4, 5,
                         "the backend to close all idle pooled connections")
        for c in clients:
            c.send(build_request("GET", "/again"))
        for c in clients:
            resp = c.read_response()
            assert (resp.status, resp.body) == (200, b"GET /again"), resp
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pooled_connection_closed_as_request_arrives_is_retried(gateway, backend, method):
    """The race behind stale connections: the upstream closes a pooled connection just as the
    proxy writes a request on it (no response byte comes back). The proxy must retry on a new
    connection; the client sees a normal answer."""
    with Client(gateway.port) as c:
        assert c.request("GET", "/first").status == 200
        backend.drop_on_reused = 1
        resp = c.request(method, "/echo", body=b"small body")
        assert (resp.status, resp.body) == (200, b"small body"), resp
    recs = backend.complete_requests()
    assert [r.dropped for r in recs] == [False, True, False], backend.summary()
    assert recs[0].conn_id == recs[1].conn_id != recs[2].conn_id
    assert recs[2].body == b"small body"
