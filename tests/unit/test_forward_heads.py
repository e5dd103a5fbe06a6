"""The heads fastgw writes: ``RequestHead.forward`` (upstream) and ``ResponseHead.forward``
(client), exactly, for both parser implementations; and the two agree on many heads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

TAIL = b"10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "


def request(parser_impl, data: bytes):
    head = parser_impl.RequestParser().parse(data)
    assert head is not None
    return head


def response(parser_impl, data: bytes):
    head = parser_impl.ResponseParser().parse(data)
    assert head is not None
    return head


def test_get_forwarded(parser_impl):
    head = request(parser_impl, b"GET /a?b=1 HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\n"
                                b"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n\r\n")
    assert head.forward(TAIL, head.host) == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\nX-Keep: 2\r\n"
        b"X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ex.com\r\n\r\n")


def test_framing_and_xff_appended(parser_impl):
    head = request(parser_impl, b"POST /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\n"
                                b"Content-Length: 0012, 12\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n")
    assert head.forward(TAIL, b"h") == (
        b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n"
        b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.1.2.3\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: h\r\n\r\n")


def test_chunked_and_upgrade(parser_impl):
    head = request(parser_impl, b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                                b"Connection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head.forward(TAIL, b"h") == (
        b"GET /ws HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: upgrade\r\nUpgrade: websocket\r\n"
        b"X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n")


def test_http10_without_host_uses_the_given_host(parser_impl):
    head = request(parser_impl, b"GET / HTTP/1.0\r\n\r\n")
    assert head.forward(b"ip\r\n", b"127.0.0.1:9001").startswith(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n")


RESP = (b"HTTP/1.0 404 Not Here\r\nServer: s\r\nConnection: keep-alive\r\n"
        b"Content-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\n")


@pytest.mark.parametrize(
    ("extra", "te_allowed", "no_body", "expected"),
    [
        (b"", True, False, b"HTTP/1.1 404 Not Here\r\nServer: s\r\nContent-Length: 5\r\n\r\n"),
        (b"Connection: close\r\n", True, True,
         b"HTTP/1.1 404 Not Here\r\nServer: s\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"),
    ],
)
def test_response_forwarded(parser_impl, extra, te_allowed, no_body, expected):
    assert response(parser_impl, RESP).forward(extra, te_allowed, no_body) == expected


def test_chunked_response_not_sent_to_http10(parser_impl):
    head = response(parser_impl, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head.forward(b"", True, False) == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head.forward(b"Connection: close\r\n", False, False) == (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")


def test_no_framing_and_empty_reason(parser_impl):
    head = response(parser_impl, b"HTTP/1.1 204 \r\nX: y\r\n\r\n")
    assert head.forward(b"", True, True) == b"HTTP/1.1 204 \r\nX: y\r\n\r\n"


@pytest.mark.parametrize("framing", [b"Content-Length: 5", b"Transfer-Encoding: chunked",
                                     b"Transfer-Encoding: gzip, chunked"])
def test_a_204_is_sent_without_framing_whatever_the_upstream_said(parser_impl, framing):
    """RFC 9110 8.6 and 9112 6.1: a 204 has neither Content-Length nor Transfer-Encoding; a
    client that honoured the upstream's would read the next response as this one's body.
    (A 304 may carry Content-Length: that of the representation.)"""
    head = response(parser_impl, b"HTTP/1.1 204 No Content\r\n" + framing + b"\r\nX: y\r\n\r\n")
    assert head.forward(b"", True, True) == b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n"
    head = response(parser_impl, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")
    assert head.forward(b"", True, True) == (
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
value = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ,;=/.", max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(st.tuples(token, value), max_size=8),
    length=st.one_of(st.none(), st.integers(0, 10**12)),
    xff=st.one_of(st.none(), st.just("9.9.9.9")),
    tail=st.binary(max_size=40),
)
def test_compiled_and_pure_forward_the_same(compiled_parser, fields, length, xff, tail):
    from fastgw._core import pure_parser

    lines = [f"{n}: {v}" for n, v in fields if n.lower() not in
             ("host", "content-length", "transfer-encoding", "connection", "expect")]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if xff:
        lines.append(f"X-Forwarded-For: {xff}")
    data = ("PUT /x HTTP/1.1\r\nHost: h\r\n" + "".join(f"{x}\r\n" for x in lines) + "\r\n").encode()
    a = compiled_parser.RequestParser().parse(data)
    b = pure_parser.RequestParser().parse(data)
    assert a.forward(tail, b"h") == b.forward(tail, b"h")
    resp = ("HTTP/1.1 200 OK\r\n" + "".join(f"{x}\r\n" for x in lines) + "\r\n").encode()
    a = compiled_parser.ResponseParser().parse(resp)
    b = pure_parser.ResponseParser().parse(resp)
    for te_allowed in (True, False):
        for no_body in (True, False):
            assert a.forward(tail, te_allowed, no_body) == b.forward(tail, te_allowed, no_body)


def test_rewritten_parts(parser_impl):
    """A route's rewrites: another path, header lines and Host; X-Forwarded-Host stays."""
    head = request(parser_impl, b"GET /api/x HTTP/1.1\r\nHost: ex.com\r\nCookie: a\r\n\r\n")
    assert head.forward(TAIL, b"internal", b"/x", b"X-Env: prod\r\n", b"ex.com") == (
        b"GET /x HTTP/1.1\r\nHost: internal\r\nX-Env: prod\r\n"
        b"X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ex.com\r\n\r\n")
    resp = response(parser_impl, b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\n\r\n")
    assert resp.forward(b"", True, False, b"Cache-Control: no-store\r\n") == (
        b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\n")


# -- framing and routing headers are forwarded in the gateway's spelling, never the client's ----

FORWARDED_TAIL = b"X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n"


@pytest.mark.parametrize("codings", [
    [b"chunked"], [b"Chunked"], [b",chunked"], [b"chunked, "], [b"chunked,,"], [b" , CHUNKED ,"],
    [b",", b"chunked"], [b"chunked", b""],
])
def test_request_transfer_encoding_forwarded_as_chunked(parser_impl, codings):
    data = b"POST /u HTTP/1.1\r\nHost: h\r\n" + b"".join(
        b"Transfer-Encoding: " + c + b"\r\n" for c in codings) + b"\r\n"
    head = request(parser_impl, data)
    assert head.transfer_encoding == b"chunked"
    assert head.forward(TAIL, b"h") == (
        b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" + FORWARDED_TAIL)


@pytest.mark.parametrize("lengths", [[b"5"], [b"5, 5"], [b"5", b"5"], [b" 005 ,5", b"05"]])
def test_repeated_content_length_forwarded_once(parser_impl, lengths):
    fields = b"".join(b"Content-Length: " + v + b"\r\n" for v in lengths)
    head = request(parser_impl, b"PUT /u HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n")
    assert head.forward(TAIL, b"h") == (
        b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n" + FORWARDED_TAIL)
    resp = response(parser_impl, b"HTTP/1.1 200 OK\r\n" + fields + b"X: y\r\n\r\n")
    assert resp.forward(b"", True, False) == b"HTTP/1.1 200 OK\r\nX: y\r\nContent-Length: 5\r\n\r\n"


@pytest.mark.parametrize(("codings", "canonical"), [
    ([b"chunked"], b"chunked"),
    ([b",chunked"], b"chunked"),
    ([b"chunked, "], b"chunked"),
    ([b"gzip ,, chunked"], b"gzip, chunked"),
    ([b"gzip", b" chunked "], b"gzip, chunked"),
    ([b"\tgzip\t,", b",Chunked"], b"gzip, Chunked"),
    ([b"gzip;q=1 , chunked"], b"gzip;q=1, chunked"),
])
def test_response_transfer_encoding_forwarded_canonically(parser_impl, codings, canonical):
    data = b"HTTP/1.1 200 OK\r\n" + b"".join(
        b"Transfer-Encoding: " + c + b"\r\n" for c in codings) + b"\r\n"
    head = response(parser_impl, data)
    assert head.chunked and head.transfer_encoding == canonical
    assert head.forward(b"", True, False) == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + canonical + b"\r\n\r\n")


def test_close_delimited_response_coding_forwarded_canonically(parser_impl):
    head = response(parser_impl, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: , gzip,\r\n\r\n")
    assert (head.chunked, head.keep_alive, head.transfer_encoding) == (False, False, b"gzip")
    assert head.forward(b"", True, False) == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"


@pytest.mark.parametrize(("fields", "canonical"), [
    ([b"websocket"], b"websocket"),
    ([b", websocket ,"], b"websocket"),
    ([b"foo", b"websocket"], b"foo, websocket"),
    ([b"", b"websocket", b","], b"websocket"),
    ([b"HTTP/1.1 ,\tSHTTP/1.3"], b"HTTP/1.1, SHTTP/1.3"),
])
def test_upgrade_forwarded_canonically(parser_impl, fields, canonical):
    data = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n" + b"".join(
        b"Upgrade: " + f + b"\r\n" for f in fields) + b"\r\n"
    head = request(parser_impl, data)
    assert head.upgrade == canonical
    assert head.forward(TAIL, b"h") == (
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: " + canonical
        + b"\r\n" + FORWARDED_TAIL)
    resp = response(parser_impl, b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                    + b"".join(b"Upgrade: " + f + b"\r\n" for f in fields) + b"\r\n")
    assert resp.upgrade == canonical and resp.kept == b""


@pytest.mark.parametrize(("fields", "canonical"), [
    ([b"h2c"], None),
    ([b"H2C", b"h2c/1.0"], None),
    ([b"h2c", b"websocket"], b"websocket"),
    ([b"websocket, h2c, foo"], b"websocket, foo"),
    ([b"h2, websocket", b"H2/2"], b"websocket"),
    ([b"h2"], None),
    ([b"h2x, h2c2, h3"], b"h2x, h2c2, h3"),
    ([b"HTTP/2.0, websocket", b"http/2"], b"websocket"),
    ([b"HTTP/1.1, HTTP/3, HTTP"], b"HTTP/1.1, HTTP/3, HTTP"),
])
def test_h2c_upgrade_never_forwarded(parser_impl, fields, canonical):
    """h2c and h2 are left out of the Upgrade list (none left: no upgrade), and HTTP2-Settings is
    never forwarded, listed in Connection or not."""
    data = (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            + b"".join(b"Upgrade: " + f + b"\r\n" for f in fields)
            + b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    head = request(parser_impl, data)
    assert head.upgrade == canonical
    upgrading = b"" if canonical is None else b"Connection: upgrade\r\nUpgrade: " + canonical + b"\r\n"
    assert head.forward(TAIL, b"h") == b"GET / HTTP/1.1\r\nHost: h\r\n" + upgrading + FORWARDED_TAIL
    head = request(parser_impl, data.replace(b"Connection: Upgrade, HTTP2-Settings", b"X: 1"))
    assert head.upgrade is None
    assert head.forward(TAIL, b"h") == b"GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n" + FORWARDED_TAIL


def test_forged_forwarding_headers_never_forwarded(parser_impl):
    """The forwarded head carries the gateway's forwarding headers only, in any spelling the
    client sent them, X-Forwarded-For with the received values first."""
    data = (b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\n"
            b"X-Forwarded_Proto: https\r\nX_Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\n"
            b"Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 9.9.9.9\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Other: 1\r\n\r\n")
    for allow in (False, True):
        head = parser_impl.RequestParser(underscores_in_headers=allow).parse(data)
        assert head.forward(TAIL, b"h") == (
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Other: 1\r\n"
            b"X-Forwarded-For: 9.9.9.9, 10.1.2.3\r\nX-Forwarded-Proto: http\r\n"
            b"X-Forwarded-Host: h\r\n\r\n")


def test_empty_upgrade_is_no_upgrade(parser_impl):
    head = request(parser_impl, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
                                b"Upgrade: ,\r\n\r\n")
    assert head.upgrade is None
    assert head.forward(TAIL, b"h") == b"GET / HTTP/1.1\r\nHost: h\r\n" + FORWARDED_TAIL
    assert response(parser_impl, b"HTTP/1.1 200 OK\r\nUpgrade:\r\n\r\n").upgrade is None


@pytest.mark.parametrize("expect", [
    [b"100-continue"], [b"100-Continue"], [b",100-CONTINUE, "], [b"100-continue", b"100-continue"],
    [b"", b"100-continue"],
])
def test_expect_continue_is_answered_not_forwarded(parser_impl, expect):
    data = b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n" + b"".join(
        b"Expect: " + e + b"\r\n" for e in expect) + b"\r\n"
    head = request(parser_impl, data)
    assert head.expect_continue
    assert head.forward(TAIL, b"h") == (
        b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n" + FORWARDED_TAIL)
    # HTTP/1.0: the expectation is ignored (RFC 9110 10.1.1), and not forwarded either
    head = request(parser_impl, data.replace(b"HTTP/1.1", b"HTTP/1.0"))
    assert not head.expect_continue
    assert b"Expect" not in head.forward(TAIL, b"h")


@pytest.mark.parametrize("value", [b"example.com", b"  example.com", b"example.com \t",
                                   b"\t example.com  "])
def test_host_forwarded_without_whitespace(parser_impl, value):
    head = request(parser_impl, b"GET / HTTP/1.1\r\nHost:" + value + b"\r\n\r\n")
    assert head.host == b"example.com"
    assert head.forward(TAIL, head.host).startswith(b"GET / HTTP/1.1\r\nHost: example.com\r\n")


def test_leading_empty_lines_not_forwarded(parser_impl):
    head = request(parser_impl, b"\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n")
    assert head.forward(TAIL, b"h") == b"GET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n" + FORWARDED_TAIL
