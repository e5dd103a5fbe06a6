"""End to end: what the backend receives for plain requests, response framings, keep-alive,
pipelining and the upstream connection pool. fastgw runs as a real process."""

from __future__ import annotations

from tests.support.backend import pattern_bytes
from tests.support.client import Client, build_request
from tests.support.gateway import free_port

FORWARDED = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


def assert_forwarded_head(rec, method: str, target: str) -> None:
    """The head the proxy wrote upstream: request line, CRLF only, one Host."""
    first = rec.raw_head.split(b"\r\n", 1)[0]
    assert first == f"{method} {target} HTTP/1.1".encode(), rec.raw_head
    assert rec.raw_head.endswith(b"\r\n\r\n"), rec.raw_head
    assert rec.raw_head.count(b"\n") == rec.raw_head.count(b"\r\n"), f"bare LF in {rec.raw_head!r}"
    assert len(rec.values("Host")) == 1, rec.headers


def assert_no_hop_by_hop(rec) -> None:
    for name, value in rec.headers:
        lname = name.lower()
        if lname == "connection":
            # a proxy may say keep-alive to its upstream, nothing else
            assert value.strip().lower() == "keep-alive", f"Connection forwarded: {value!r}"
        else:
            assert lname not in HOP_BY_HOP, f"hop-by-hop header {name!r} forwarded: {rec.headers}"


def test_get_forwarded_with_documented_rewrites(gateway, backend):
    with Client(gateway.port) as c:
        c.send(b"GET /hello/world?x=1&y=%20 HTTP/1.1\r\n"
               b"Host: api.example.test:8443\r\n"
               b"User-Agent: fastgw-tests/1.0\r\n"
               b"X-Custom-Case: MiXeD Value\r\n"
               b"accept: */*\r\n"
               b"X-Empty:\r\n"
               b"X-Dup: 1\r\n"
               b"X-Dup: 2\r\n"
               b"\r\n")
        resp = c.read_response()
    assert resp.status == 200, resp
    assert resp.body == b"GET /hello/world?x=1&y=%20"
    rec, = backend.wait_requests(1)
    assert_forwarded_head(rec, "GET", "/hello/world?x=1&y=%20")
    assert rec.header("Host") == "api.example.test:8443"
    assert rec.header("X-Forwarded-For") == "127.0.0.1"
    assert rec.header("X-Forwarded-Proto") == "http"
    assert rec.header("X-Forwarded-Host") == "api.example.test:8443"
    assert_no_hop_by_hop(rec)
    # the other header lines arrive verbatim (raw name case, value, order), nothing is invented
    kept = [(n, v) for n, v in rec.headers if n.lower() not in FORWARDED | {"host", "connection"}]
    assert kept == [("User-Agent", "fastgw-tests/1.0"), ("X-Custom-Case", "MiXeD Value"),
                    ("accept", "*/*"), ("X-Empty", ""), ("X-Dup", "1"), ("X-Dup", "2")]
    assert b"\r\nX-Custom-Case: MiXeD Value\r\n" in rec.raw_head
    assert rec.body == b"" and rec.raw_body == b""
    assert rec.header("Content-Length") is None and rec.header("Transfer-Encoding") is None
    # end-to-end response headers come back
    assert resp.header("X-Backend-Conn") == str(rec.conn_id)


def test_hop_by_hop_headers_removed(gateway, backend):
    with Client(gateway.port) as c:
        resp = c.request("GET", "/hop", [
            ("Connection", "keep-alive, X-Hop-Listed, x-other-listed"),
            ("X-Hop-Listed", "secret"),
            ("X-Other-Listed", "secret2"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("X-End-To-End", "kept"),
        ])
    assert resp.status == 200, resp
    rec, = backend.wait_requests(1)
    assert_forwarded_head(rec, "GET", "/hop")
    assert_no_hop_by_hop(rec)
    names = {n.lower() for n, _ in rec.headers}
    assert "x-hop-listed" not in names and "x-other-listed" not in names, rec.headers
    assert rec.header("X-End-To-End") == "kept"


def test_x_forwarded_for_appended_and_proto_host_set(gateway, backend):
    with Client(gateway.port) as c:
        resp = c.request("GET", "/xff", [
            ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "spoofed.example"),
        ], host="real.example")
    assert resp.status == 200, resp
    rec, = backend.wait_requests(1)
    assert rec.values("X-Forwarded-For") == ["203.0.113.7, 10.0.0.1, 127.0.0.1"]
    assert rec.values("X-Forwarded-Proto") == ["http"]
    assert rec.values("X-Forwarded-Host") == ["real.example"]
    assert rec.header("Host") == "real.example"


def test_absolute_form_target(gateway, backend):
    with Client(gateway.port) as c:
        c.send(b"GET http://abs.example:8081/x/y?q=1 HTTP/1.1\r\n"
               b"Host: ignored.example\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200, resp
    rec, = backend.wait_requests(1)
    assert_forwarded_head(rec, "GET", "/x/y?q=1")
    assert rec.values("Host") == ["abs.example:8081"]
    assert rec.header("X-Forwarded-Host") == "abs.example:8081"


def test_absolute_form_without_path(gateway, backend):
    with Client(gateway.port) as c:
        c.send(b"GET http://abs.example HTTP/1.1\r\nHost: abs.example\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200, resp
    rec, = backend.wait_requests(1)
    assert_forwarded_head(rec, "GET", "/")
    assert rec.values("Host") == ["abs.example"]


def test_http10_client_is_answered_and_closed(gateway, backend):
    with Client(gateway.port) as c:
        c.send(b"GET /old HTTP/1.0\r\nHost: old.example\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200, resp
        assert resp.body == b"GET /old"
        c.assert_closed(timeout=5)
    rec, = backend.wait_requests(1)
    assert_forwarded_head(rec, "GET", "/old")
    assert rec.header("Host") == "old.example"


def test_http10_keep_alive_client(gateway, backend):
    with Client(gateway.port) as c:
        for i in range(3):
            c.send(f"GET /ka10/{i} HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n".encode())
            resp = c.read_response()
            assert resp.status == 200 and resp.body == f"GET /ka10/{i}".encode(), resp
            assert resp.framing == "content-length", "a keep-alive 1.0 response needs a length"
    assert len(backend.wait_requests(3)) == 3


def test_keep_alive_many_requests_one_client_connection(gateway, backend):
    with Client(gateway.port) as c:
        for i in range(20):
            resp = c.request("GET", f"/seq/{i}")
            assert resp.status == 200 and resp.body == f"GET /seq/{i}".encode(), resp
            assert "close" not in resp.connection_tokens()
    assert [r.target for r in backend.wait_requests(20)] == [f"/seq/{i}" for i in range(20)]


def test_upstream_connection_reused_for_sequential_requests(gateway, backend):
    with Client(gateway.port) as c:
        for i in range(10):
            assert c.request("GET", f"/reuse/{i}").status == 200
    recs = backend.wait_requests(10)
    assert backend.connections_accepted == 1, backend.summary()
    assert len({r.conn_id for r in recs}) == 1


def test_upstream_connection_reused_across_client_connections(gateway, backend):
    for round_ in range(2):
        with Client(gateway.port) as c:
            for i in range(5):
                assert c.request("GET", f"/reuse/{round_}/{i}").status == 200
    recs = backend.wait_requests(10)
    assert backend.connections_accepted == 1, backend.summary()
    assert len({r.conn_id for r in recs}) == 1


def test_pipelined_requests_answered_in_order(gateway, backend):
    batch = (build_request("GET", "/p/1")
             + build_request("POST", "/echo", body=b"second body")
             + build_request("GET", "/p/3")
             + build_request("HEAD", "/size/10")
             + build_request("GET", "/chunked/1000")
             + build_request("GET", "/p/6"))
    with Client(gateway.port) as c:
        c.send(batch)  # one write
        bodies = []
        for method in ("GET", "POST", "GET", "HEAD", "GET", "GET"):
            resp = c.read_response(method)
            assert resp.status == 200, resp
            bodies.append(resp.body)
    assert bodies[:4] == [b"GET /p/1", b"second body", b"GET /p/3", b""]
    assert len(bodies[4]) == 1000
    assert bodies[5] == b"GET /p/6"
    recs = backend.wait_requests(6)
    assert [r.target for r in recs] == ["/p/1", "/echo", "/p/3", "/size/10", "/chunked/1000", "/p/6"]


def test_pipelined_slow_first_request_keeps_order(gateway, backend):
    with Client(gateway.port) as c:
        c.send(build_request("GET", "/slow/0.3") + build_request("GET", "/fast/2"))
        first = c.read_response()
        second = c.read_response()
    assert (first.status, first.body) == (200, b"slow")
    assert (second.status, second.body) == (200, b"GET /fast/2")


def test_head_has_no_body(gateway, backend):
    with Client(gateway.port) as c:
        resp = c.request("HEAD", "/size/1000")
        assert resp.status == 200 and resp.header("Content-Length") == "1000", resp
        # had the proxy sent body bytes, they would be read as the next response
        follow = c.request("GET", "/after-head")
        assert (follow.status, follow.body) == (200, b"GET /after-head"), follow
    recs = backend.wait_requests(2)
    assert recs[0].method == "HEAD"


def test_204_and_304_have_no_body(gateway, backend):
    with Client(gateway.port) as c:
        for target in ("/status/204", "/status/304", "/status/304?cl=5"):
            resp = c.request("GET", target)
            assert resp.status == int(target.split("/")[2][:3]), resp
            if resp.status == 304:
                assert resp.header("ETag") == '"v1"', resp.headers
            follow = c.request("GET", "/after")
            assert (follow.status, follow.body) == (200, b"GET /after"), (target, follow)


def test_other_statuses_pass_through(gateway):
    with Client(gateway.port) as c:
        for code in (201, 404, 500, 503):
            resp = c.request("GET", f"/status/{code}")
            assert (resp.status, resp.body) == (code, f"status {code}".encode()), resp


def test_content_length_response(gateway):
    with Client(gateway.port) as c:
        resp = c.request("GET", "/size/300000")
    assert resp.status == 200 and resp.framing == "content-length"
    assert resp.body == pattern_bytes(300000)


def test_chunked_response(gateway, backend):
    with Client(gateway.port) as c:
        resp = c.request("GET", "/chunked/300000")
        assert resp.status == 200, resp
        assert resp.body == pattern_bytes(300000)
        follow = c.request("GET", "/after-chunked")
        assert follow.body == b"GET /after-chunked"
    # a well-framed chunked response leaves the upstream connection reusable
    assert backend.connections_accepted == 1, backend.summary()


def test_chunked_response_to_http10_client_is_decoded(gateway, backend):
    """HTTP/1.0 has no Transfer-Encoding: the body is decoded and ends at the close."""
    with Client(gateway.port) as c:
        c.send(b"GET /chunked/300000 HTTP/1.0\r\nHost: old.example\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200, resp
        assert resp.framing == "close", resp
        assert resp.header("Transfer-Encoding") is None
        assert resp.body == pattern_bytes(300000)
        c.assert_closed(timeout=5)
    # the upstream's response was complete and well framed: its connection is reused
    with Client(gateway.port) as c:
        assert c.request("GET", "/after").body == b"GET /after"
    assert backend.connections_accepted == 1, backend.summary()


def test_empty_chunked_response(gateway):
    with Client(gateway.port) as c:
        resp = c.request("GET", "/chunked/0")
        assert (resp.status, resp.body) == (200, b"")
        assert c.request("GET", "/after").body == b"GET /after"


def test_close_delimited_response(gateway, backend):
    for kind in ("close", "close10"):
        with Client(gateway.port) as c:
            c.send(build_request("GET", f"/{kind}/200000"))
            resp = c.read_response()
            assert resp.status == 200, resp
            assert resp.body == pattern_bytes(200000), (kind, resp.body_length)
            if resp.framing != "close":
                # re-framed for the client: the connection stays usable
                assert c.request("GET", "/after").body == b"GET /after"
    # the closed upstream connections were not reused
    recs = backend.wait_requests(2)
    assert len({r.conn_id for r in recs[:2]}) == 2


def test_error_bodies_are_json(make_gateway):
    gw = make_gateway(upstream=f"127.0.0.1:{free_port()}")
    with Client(gw.port) as c:
        resp = c.request("GET", "/")
    assert resp.status == 502, resp
    assert "json" in (resp.header("Content-Type") or ""), resp.headers
    body = resp.json()
    assert body["status"] == 502 and isinstance(body["error"], str) and body["error"], body
    assert set(body) == {"error", "status"}, body
    assert len(resp.body) < 512
