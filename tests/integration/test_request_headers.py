"""Request headers a client must not be able to forge or smuggle through the gateway (issue 10,
items 2 and 8): a real fastgw process, a real backend that records the head it received.

- Header names with "_" are dropped (nginx's ``underscores_in_headers off``): CGI/WSGI
  backends read "_" and "-" alike, so ``X_Forwarded_For`` would reach them as
  X-Forwarded-For. ``limits.underscores_in_headers: true`` lets them pass, except those that
  read as a field the gateway owns.
- The forwarding headers are the gateway's: X-Forwarded-Proto/-Host its own, every other
  X-Forwarded-*, Forwarded and X-Real-IP dropped; X-Forwarded-For appended to.
- ``Upgrade: h2c`` and ``HTTP2-Settings`` are never forwarded (h2c smuggling).
- ``Expect``: 100-continue is the gateway's; any other expectation is a 417.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.test_proxy_upgrade import KEY, UPGRADE_HEADERS
from tests.support.backend import Received
from tests.support.client import Client, build_request
from tests.support.gateway import free_port, make_config

FORGED = [
    ("X_Forwarded_For", "6.6.6.6"),
    ("x_forwarded_for", "6.6.6.7"),
    ("X-Forwarded_Proto", "https"),
    ("X_Forwarded-Host", "evil.example"),
    ("X_FORWARDED_PORT", "443"),
    ("X-Real_IP", "6.6.6.6"),
    ("X-Forwarded-Port", "8443"),
    ("X-Forwarded-Prefix", "/admin"),
    ("X-Forwarded-Server", "evil"),
    ("x-forwarded-ssl", "on"),
    ("Forwarded", "for=6.6.6.6;proto=https"),
    ("X-Real-IP", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-For", "10.0.0.1"),
    ("X-Kept", "yes"),
]


def wsgi_environ(rec: Received) -> dict[str, list[str]]:
    """What a CGI/WSGI backend (wsgiref, and most frameworks) makes of the received header
    names: upper case, "-" read as "_", every value of a name in order."""
    environ: dict[str, list[str]] = {}
    for name, value in rec.headers:
        environ.setdefault("HTTP_" + name.upper().replace("-", "_"), []).append(value)
    return environ


def assert_forwarding_is_the_gateways(rec: Received, host: str = "test.local") -> None:
    environ = wsgi_environ(rec)
    assert environ["HTTP_X_FORWARDED_FOR"] == ["10.0.0.1, 127.0.0.1"], rec.headers
    assert environ["HTTP_X_FORWARDED_PROTO"] == ["http"], rec.headers
    assert environ["HTTP_X_FORWARDED_HOST"] == [host], rec.headers
    forwarding = sorted(key for key in environ if key.startswith("HTTP_X_FORWARDED_"))
    assert forwarding == ["HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST",
                          "HTTP_X_FORWARDED_PROTO"], rec.headers
    assert "HTTP_FORWARDED" not in environ, rec.headers
    assert "HTTP_X_REAL_IP" not in environ, rec.headers
    assert rec.header("X-Kept") == "yes"


def test_forged_forwarding_headers_never_reach_the_backend(gateway, backend):
    with Client(gateway.port) as c:
        resp = c.request("GET", "/forwarding", FORGED + [("X_Custom_Header", "1")])
        assert resp.status == 200, resp
    rec, = backend.wait_requests(1)
    assert_forwarding_is_the_gateways(rec)
    assert not [name for name, _ in rec.headers if "_" in name], rec.headers


def test_underscores_in_headers_lets_other_underscore_names_pass(make_gateway, backend):
    gw = make_gateway(limits={"underscores_in_headers": True})
    extra = [("X_Custom_Header", "1"), ("x_other", "2"), ("Content_Length", "99"),
             ("Transfer_Encoding", "chunked"), ("Keep_Alive", "1"), ("HTTP2_Settings", "x")]
    with Client(gw.port) as c:
        resp = c.request("GET", "/underscores", FORGED + extra)
        assert resp.status == 200, resp
    rec, = backend.wait_requests(1)
    assert_forwarding_is_the_gateways(rec)
    passed = [(name, value) for name, value in rec.headers if "_" in name]
    # only the names that read as a field the gateway acts on are dropped
    assert passed == [("X_Custom_Header", "1"), ("x_other", "2")], rec.headers


def test_underscores_in_headers_follows_a_reload(start, backend):
    """The option is read where the parser is made: a reload turns it on and off again, on
    the connection already open (the parser is the worker's, swapped with the plan)."""
    config = make_config(backend.address, free_port())
    gw = start(config)
    with Client(gw.port) as c:
        for allow, logged in ((True, "limits.underscores_in_headers: false → true"),
                              (False, "limits.underscores_in_headers: true → false")):
            config = make_config(backend.address, gw.port,
                                 limits={"underscores_in_headers": allow})
            result = gw.reload(config)
            assert result.returncode == 0, result.stderr
            assert logged in gw.log(), gw.log_tail()
            backend.reset()
            assert c.request("GET", "/r", [("X_Custom", "1"), ("X_Forwarded_For", "6")]).status == 200
            rec, = backend.wait_requests(1)
            assert [n for n, _ in rec.headers if "_" in n] == (["X_Custom"] if allow else [])


def test_h2c_upgrade_is_never_forwarded(gateway, backend):
    h2c = [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
           ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]
    with Client(gateway.port) as c:
        resp = c.request("GET", "/h2c", h2c)
        assert resp.status == 200, resp
        assert resp.body == b"GET /h2c"
        # without Connection listing it, HTTP2-Settings is not forwarded either
        resp = c.request("GET", "/h2c-settings", [("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
                                                  ("Upgrade", "H2C")])
        assert resp.status == 200, resp
    for rec in backend.wait_requests(2):
        assert rec.header("Upgrade") is None, rec.headers
        assert rec.header("HTTP2-Settings") is None, rec.headers
        tokens = {t.strip().lower() for v in rec.values("Connection") for t in v.split(",")}
        assert not tokens & {"upgrade", "http2-settings"}, rec.headers


def test_h2c_among_other_protocols_is_removed(gateway, backend):
    headers = [(name, "websocket, h2c" if name == "Upgrade" else value)
               for name, value in UPGRADE_HEADERS] + [("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]
    with Client(gateway.port) as c:
        c.send(build_request("GET", "/ws", headers))
        resp = c.read_response()
        assert resp.status == 101, resp
    rec, = backend.wait_requests(1)
    assert rec.header("Upgrade") == "websocket", rec.headers
    assert rec.header("Sec-WebSocket-Key") == KEY
    assert rec.header("HTTP2-Settings") is None, rec.headers


@pytest.mark.parametrize("expect", [["foo"], ["100-continue, foo"], ["100-continue", "Foo=bar"],
                                    ["x-unknown;a=1"]])
def test_an_expectation_the_gateway_cannot_meet_is_417(gateway, backend, expect):
    headers = [("Expect", value) for value in expect]
    with Client(gateway.port) as c:
        c.send(build_request("POST", "/echo", headers, body=b"hello"))
        resp = c.read_response()
        assert resp.status == 417, resp
        c.assert_closed()
    assert backend.connections_accepted == 0, backend.summary()


def test_100_continue_is_answered_and_not_forwarded(gateway, backend):
    headers = [("Expect", "100-Continue"), ("Expect", ", 100-continue"), ("Expect", "")]
    with Client(gateway.port) as c:
        c.send(build_request("POST", "/echo", headers + [("Content-Length", "5")]))
        interim = c.read_head()
        assert interim.status == 100, interim
        c.send(b"hello")
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"hello"), resp
    rec, = backend.wait_requests(1)
    assert rec.header("Expect") is None, rec.headers


def test_http10_100_continue_is_ignored(gateway, backend):
    with Client(gateway.port) as c:
        c.send(b"POST /echo HTTP/1.0\r\nHost: test.local\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5\r\n\r\nhello")
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"hello"), resp  # no 100 before it
    rec, = backend.wait_requests(1)
    assert rec.header("Expect") is None, rec.headers


FORGED_TRAILER = (b"X-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\n"
                  b"Forwarded: for=6.6.6.6\r\nContent-Length: 5\r\n\r\n")


@pytest.mark.parametrize("size", [10, 300_000], ids=["collected", "streamed"])
@pytest.mark.parametrize("pieces", [1, 40], ids=["one-write", "trailer-split"])
def test_request_trailers_are_not_forwarded(gateway, backend, size, pieces):
    """Trailer fields would carry what the head may not (forged forwarding headers, '_'
    names, framing) past the gateway's checks: like nginx, it forwards none of them. The body
    arrives whole and the chunked framing stays valid, whether the body was collected or
    streamed (over request_buffer) and however the trailer section is split across reads."""
    payload = bytes(range(256)) * (size // 256) + b"p" * (size % 256)
    framed = b"%x\r\n" % size + payload + b"\r\n0\r\n"
    with Client(gateway.port) as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked"),
                                               ("Trailer", "X-Real-IP")]) + framed)
        step = -(-len(FORGED_TRAILER) // pieces)
        for i in range(0, len(FORGED_TRAILER), step):
            c.send(FORGED_TRAILER[i:i + step])
        resp = c.read_response()
        assert resp.status == 200 and resp.body == payload, resp
        assert c.request("GET", "/after").body == b"GET /after"
    rec = backend.wait_requests(2)[0]
    assert rec.raw_body == framed + b"\r\n", rec.raw_body[-200:]
    names = {name.lower() for name, _ in rec.headers}
    assert not names & {"x-real-ip", "forwarded", "trailer", "x_forwarded_for"}, rec.headers
    assert dict((n.lower(), v) for n, v in rec.headers)["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.parametrize(("crossing", "last"), [
    (b"0\r\n" + FORGED_TRAILER[:-2], b"\r\n"),
    (b"0\r\n\r", b"\n"),
    (b"0\r\nX-Real-IP: 6.6", b".6.6.6\r\n\r\n"),
], ids=["fields", "final-cr", "half-a-field"])
def test_trailer_bytes_in_the_read_that_starts_streaming_are_withheld(gateway, backend,
                                                                      crossing, last):
    """The read that takes a held chunked body over request_buffer (and so starts streaming
    it) may already hold part of the trailer section: it was forwarded raw (trailer fields
    reached the backend, and '0\r\n\r' then '\n' became '0\r\n\r\r\n'). Reads are
    separate sends with pauses between them, so the gateway sees them apart."""
    first = b"%x\r\n" % 65_000 + b"a" * 65_000 + b"\r\n"  # held: under the 64 KiB buffer
    second = b"3e8\r\n" + b"b" * 1000 + b"\r\n"
    with Client(gateway.port) as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + first)
        time.sleep(0.2)  # apart, so that the next read is the one that crosses the buffer
        c.send(second + crossing)
        time.sleep(0.2)
        c.send(last)
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"a" * 65_000 + b"b" * 1000, resp.status
    rec, = backend.wait_requests(1)
    assert rec.raw_body == first + second + b"0\r\n\r\n", rec.raw_body[-120:]
    assert not {n.lower() for n, _ in rec.headers} & {"x-real-ip", "x_forwarded_for"}


def test_x_forwarded_for_is_a_canonical_list(gateway, backend):
    """The client's X-Forwarded-For elements, from every field line, without empty ones or
    OWS around them, then the client address: a backend that takes the first or the last
    element never gets an empty one."""
    with Client(gateway.port) as c:
        resp = c.request("GET", "/xff", [("X-Forwarded-For", " 1.1.1.1 , ,"),
                                         ("X-Forwarded-For", ""), ("X-Forwarded-For", ",2.2.2.2")])
        assert resp.status == 200, resp
        resp = c.request("GET", "/xff-empty", [("X-Forwarded-For", " , ")])
        assert resp.status == 200, resp
    first, only_empty = backend.wait_requests(2)
    assert first.header("X-Forwarded-For") == "1.1.1.1, 2.2.2.2, 127.0.0.1", first.headers
    assert only_empty.header("X-Forwarded-For") == "127.0.0.1", only_empty.headers


def test_a_route_on_an_underscore_header_is_warned_about(make_gateway, backend, tmp_path):
    """A header with '_' still selects a route (the request carries it), but it is not
    forwarded: `fastgw check` says so, since the upstream will not see what it was routed by."""
    import subprocess
    import sys

    import yaml
    routes = {"routes": [{"match": {"headers": {"X_Tenant": "a"}}, "upstream": "app"}]}
    gw = make_gateway(**routes)
    with Client(gw.port) as c:
        assert c.request("GET", "/t", [("X_Tenant", "a")]).status == 200
        assert c.request("GET", "/t", [("X-Tenant", "a")]).status == 404
    rec, = backend.wait_requests(1)
    assert not [n for n, _ in rec.headers if "_" in n], rec.headers
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(make_config(backend.address, free_port(), **routes)))
    done = subprocess.run([sys.executable, "-m", "fastgw", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert ("warning: $.routes[0].match.headers.X_Tenant: X_Tenant has a '_': requests are "
            "routed by it, but it is not forwarded") in done.stdout, done.stdout
