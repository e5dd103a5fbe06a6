"""The HTTP/1.1 head parser and chunked reader, run against both implementations.

Every table row runs on the compiled extension and on the pure-Python twin (the
``parser_impl`` fixture). Each input is also fed split at every byte boundary: a head parser
sees a growing buffer, so ``parse(prefix)`` must return None or raise the error the whole input
raises (same status), and never a head; a chunked body is fed in two pieces at every split
point and byte by byte, and the end index it reports must be exact.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from fastgw._core.grammar import host_shape_ok

# --------------------------------------------------------------------------------------------
# helpers

REQUEST_DEFAULTS: dict[str, Any] = {
    "method": b"GET",
    "target": b"/",
    "path": b"/",
    "version": 11,
    "host": b"example.com",
    "content_length": -1,
    "chunked": False,
    "transfer_encoding": None,
    "keep_alive": True,
    "upgrade": None,
    "expect_continue": False,
    "x_forwarded_for": None,
    "kept": b"",
}

RESPONSE_DEFAULTS: dict[str, Any] = {
    "status": 200,
    "version": 11,
    "reason": b"OK",
    "content_length": -1,
    "chunked": False,
    "transfer_encoding": None,
    "keep_alive": True,
    "upgrade": None,
    "kept": b"",
}


def attempt(parser: Any, data: bytes | bytearray, impl: ModuleType) -> Any:
    """parser.parse(data), or the ParseError it raised."""
    try:
        return parser.parse(data)
    except impl.ParseError as exc:
        return exc


def assert_prefixes(parser: Any, impl: ModuleType, data: bytes, status: int | None) -> None:
    """Every proper prefix of ``data`` gives None, or (status given) that error status."""
    for i in range(len(data)):
        for piece in (data[:i], bytearray(data[:i])):
            result = attempt(parser, piece, impl)
            if result is None:
                continue
            assert isinstance(result, impl.ParseError), (
                f"prefix {data[:i]!r} of a head gave a head")
            assert status is not None, f"prefix {data[:i]!r} of a valid head raised {result}"
            assert result.status == status, f"prefix {data[:i]!r}: {result} (whole: {status})"


def assert_head(parser: Any, impl: ModuleType, data: bytes, expected: dict[str, Any]) -> Any:
    assert_prefixes(parser, impl, data, None)
    heads = [parser.parse(data), parser.parse(bytearray(data)), parser.parse(memoryview(data)),
             parser.parse(data + b"BODY")]
    for head in heads:
        assert head is not None
        got = {name: getattr(head, name) for name in expected}
        assert got == expected
        for name, value in expected.items():
            assert type(getattr(head, name)) is type(value), name
        assert head.head_length == len(data)
        assert head.raw == data
        assert type(head.raw) is bytes and type(head.kept) is bytes
    return heads[0]


def assert_error(parser: Any, impl: ModuleType, data: bytes, status: int, reason: str) -> None:
    for whole in (data, bytearray(data)):
        with pytest.raises(impl.ParseError) as info:
            parser.parse(whole)
        assert info.value.status == status
        assert info.value.reason == reason
        assert str(info.value) == f"{status}: {reason}"
    assert_prefixes(parser, impl, data, status)


def head_lines(*lines: str | bytes) -> bytes:
    out = b""
    for line in lines:
        out += (line.encode("latin-1") if isinstance(line, str) else line) + b"\r\n"
    return out + b"\r\n"


# --------------------------------------------------------------------------------------------
# valid requests

VALID_REQUESTS = [
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com"), {}, id="get"),
    pytest.param(
        head_lines("POST /submit?x=1 HTTP/1.1", "Host: example.com", "Content-Length: 5",
                   "Content-Type: text/plain"),
        {"method": b"POST", "target": b"/submit?x=1", "path": b"/submit?x=1",
         "content_length": 5, "kept": b"Content-Type: text/plain\r\n"}, id="post-content-length"),
    pytest.param(
        head_lines("GET /old HTTP/1.0"),
        {"target": b"/old", "path": b"/old", "version": 10, "host": b"", "keep_alive": False},
        id="http10-no-host"),
    pytest.param(
        head_lines("GET / HTTP/1.0", "Host: example.com", "Connection: Keep-Alive"),
        {"version": 10, "keep_alive": True}, id="http10-keep-alive"),
    pytest.param(
        head_lines("GET / HTTP/1.0", "Host: example.com", "Connection: keep-alive, close"),
        {"version": 10, "keep_alive": False}, id="http10-keep-alive-and-close"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: close"),
        {"keep_alive": False}, id="http11-close"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "connection: foo, CLOSE ,bar"),
        {"keep_alive": False}, id="http11-close-among-tokens"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: keep-alive"),
        {}, id="http11-keep-alive"),
    pytest.param(
        head_lines("DELETE /items/7 HTTP/1.1", "HOST: Example.COM:8080"),
        {"method": b"DELETE", "target": b"/items/7", "path": b"/items/7",
         "host": b"Example.COM:8080"}, id="host-case-and-port"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: [::1]:8080"), {"host": b"[::1]:8080"},
        id="host-ip-literal"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host:   example.com \t"), {}, id="host-ows-trimmed"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host:"), {"host": b""}, id="host-empty"),
    pytest.param(
        head_lines("GET http://Upstream.example:8080/a/b?q=1 HTTP/1.1", "Host: other.example"),
        {"target": b"http://Upstream.example:8080/a/b?q=1", "path": b"/a/b?q=1",
         "host": b"Upstream.example:8080"}, id="absolute-form"),
    pytest.param(
        head_lines("GET HTTPS://example.com?x=1 HTTP/1.1", "Host: example.com"),
        {"target": b"HTTPS://example.com?x=1", "path": b"/?x=1"}, id="absolute-form-query-only"),
    pytest.param(
        head_lines("GET http://example.com HTTP/1.0"),
        {"target": b"http://example.com", "path": b"/", "host": b"example.com", "version": 10,
         "keep_alive": False},
        id="absolute-form-http10-no-host-header"),
    pytest.param(
        head_lines("OPTIONS * HTTP/1.1", "Host: example.com"),
        {"method": b"OPTIONS", "target": b"*", "path": b"*"}, id="options-asterisk"),
    pytest.param(
        head_lines("PURGE /cache HTTP/1.1", "Host: example.com"),
        {"method": b"PURGE", "target": b"/cache", "path": b"/cache"}, id="extension-method"),
    pytest.param(
        head_lines("M-SEARCH /%7Euser/a;b=c?d=e&f HTTP/1.1", "Host: example.com"),
        {"method": b"M-SEARCH", "target": b"/%7Euser/a;b=c?d=e&f",
         "path": b"/%7Euser/a;b=c?d=e&f"}, id="target-characters"),
    pytest.param(
        head_lines("GET /AZaz09-._~!$&'()*+,;=:@/?/?%2f%C3%A9%00 HTTP/1.1", "Host: example.com"),
        {"target": b"/AZaz09-._~!$&'()*+,;=:@/?/?%2f%C3%A9%00",
         "path": b"/AZaz09-._~!$&'()*+,;=:@/?/?%2f%C3%A9%00"}, id="target-every-uri-class"),
    pytest.param(
        head_lines("GET http://[::1]:8080/a?b HTTP/1.1", "Host: example.com"),
        {"target": b"http://[::1]:8080/a?b", "path": b"/a?b", "host": b"[::1]:8080"},
        id="absolute-form-ip-literal"),
    pytest.param(
        head_lines("GET http://[fe80::1%25eth0]/ HTTP/1.1", "Host: example.com"),
        {"target": b"http://[fe80::1%25eth0]/", "path": b"/", "host": b"[fe80::1%25eth0]"},
        id="absolute-form-zone-id"),
    pytest.param(
        head_lines("GET http://ex%41mple.com HTTP/1.1", "Host: example.com"),
        {"target": b"http://ex%41mple.com", "path": b"/", "host": b"ex%41mple.com"},
        id="absolute-form-pct-authority"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: ex%2Dample.com"), {"host": b"ex%2Dample.com"},
        id="host-pct-encoded"),
    pytest.param(
        head_lines("PUT /x HTTP/1.1", "Host: example.com", "Content-Length: 7",
                   "content-length: 7", "Content-Length: 7 , 7"),
        {"method": b"PUT", "target": b"/x", "path": b"/x", "content_length": 7},
        id="content-length-repeated-same-value"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Content-Length: 0"),
        {"method": b"POST", "content_length": 0}, id="content-length-zero"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Content-Length: 000123"),
        {"method": b"POST", "content_length": 123}, id="content-length-leading-zeros"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Content-Length: 999999999999999999"),
        {"method": b"POST", "content_length": 999999999999999999}, id="content-length-18-digits"),
    pytest.param(
        head_lines("POST /up HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked"),
        {"method": b"POST", "target": b"/up", "path": b"/up", "chunked": True,
         "transfer_encoding": b"chunked"}, id="chunked"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: CHUNKED"),
        {"method": b"POST", "chunked": True, "transfer_encoding": b"chunked"},
        id="chunked-upper-case"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: ,chunked"),
        {"method": b"POST", "chunked": True, "transfer_encoding": b"chunked"},
        id="chunked-empty-element-before"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked, "),
        {"method": b"POST", "chunked": True, "transfer_encoding": b"chunked"},
        id="chunked-empty-element-after"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked,,"),
        {"method": b"POST", "chunked": True, "transfer_encoding": b"chunked"},
        id="chunked-empty-elements-after"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: \t, ,Chunked ,"),
        {"method": b"POST", "chunked": True, "transfer_encoding": b"chunked"},
        id="chunked-among-empty-elements"),
    pytest.param(
        head_lines("POST / HTTP/1.1", "Host: example.com", "Transfer-Encoding: ,",
                   "Transfer-Encoding:  chunked "),
        {"method": b"POST", "chunked": True, "transfer_encoding": b"chunked"},
        id="chunked-after-an-empty-field"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: keep-alive, X-Secret",
                   "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive", "TE: trailers",
                   "Trailer: Expires", "X-Secret: s", "Upgrade: h2c", "Accept: */*"),
        {"kept": b"Accept: */*\r\n"}, id="hop-by-hop-removed"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: x-secret,, x-other",
                   "x-SECRET: 1", "Accept: */*", "X-Other: 2", "X-Secretive: 3"),
        {"kept": b"Accept: */*\r\nX-Secretive: 3\r\n"}, id="connection-listed-fields-removed"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Connection: close", "Close: x", "Host: example.com"),
        {"keep_alive": False}, id="connection-close-removes-close-field"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: host, content-length",
                   "Content-Length: 3"),
        {"content_length": 3}, id="connection-cannot-unlist-framing"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "X-Forwarded-For: 10.0.0.1",
                   "X-Forwarded-Proto: http", "x-forwarded-for: 10.0.0.2, 10.0.0.3",
                   "X-Forwarded-Host: a.example", "X-Request-Id: 42"),
        {"x_forwarded_for": b"10.0.0.1, 10.0.0.2, 10.0.0.3", "kept": b"X-Request-Id: 42\r\n"},
        id="x-forwarded-removed-and-joined"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "X-Forwarded-For:"),
        {"x_forwarded_for": None}, id="x-forwarded-for-empty"),
    pytest.param(
        head_lines("GET /chat HTTP/1.1", "Host: example.com", "Connection: Upgrade",
                   "Upgrade: websocket", "Sec-WebSocket-Version: 13"),
        {"target": b"/chat", "path": b"/chat", "upgrade": b"websocket",
         "kept": b"Sec-WebSocket-Version: 13\r\n"}, id="upgrade"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Upgrade: websocket"),
        {"upgrade": None}, id="upgrade-without-connection-token"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: keep-alive, upgrade",
                   "Upgrade: foo/2", "Upgrade: websocket"),
        {"upgrade": b"foo/2, websocket"}, id="upgrade-fields-joined"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: upgrade",
                   "Upgrade: , websocket ,,", "Upgrade:"),
        {"upgrade": b"websocket"}, id="upgrade-empty-elements"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: upgrade",
                   "Upgrade: HTTP/1.1,\tSHTTP/1.3 ,websocket"),
        {"upgrade": b"HTTP/1.1, SHTTP/1.3, websocket"}, id="upgrade-protocol-versions"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Connection: upgrade",
                   "Upgrade: , ,"),
        {"upgrade": None}, id="upgrade-empty-list"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "Upgrade: not a / protocol"),
        {"upgrade": None}, id="upgrade-not-listed-not-checked"),
    pytest.param(
        head_lines("PUT /big HTTP/1.1", "Host: example.com", "Content-Length: 10",
                   "Expect: 100-Continue"),
        {"method": b"PUT", "target": b"/big", "path": b"/big", "content_length": 10,
         "expect_continue": True}, id="expect-continue"),
    pytest.param(
        head_lines("PUT / HTTP/1.1", "Host: example.com", "Expect: ,100-continue, ",
                   "Expect: 100-CONTINUE", "Expect:"),
        {"method": b"PUT", "expect_continue": True}, id="expect-continue-list"),
    pytest.param(
        head_lines("PUT / HTTP/1.0", "Host: example.com", "Expect: 100-continue"),
        {"method": b"PUT", "version": 10, "keep_alive": False}, id="expect-continue-http10"),
    pytest.param(
        head_lines("PUT / HTTP/1.1", "Host: example.com", "Expect:", "Expect: , ,"),
        {"method": b"PUT"}, id="expect-empty-dropped"),
    pytest.param(
        head_lines("PUT / HTTP/1.0", "Host: example.com", "Expect: 100-continue",
                   "Expect: 100-CONTINUE"),
        {"method": b"PUT", "version": 10, "keep_alive": False},
        id="expect-continue-repeated-http10"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com", "X-A:  spaced \t", "X-B:",
                   "X-C: caf\xe9\tau lait", "X-D: \"quoted, with comma\""),
        {"kept": b"X-A:  spaced \t\r\nX-B:\r\nX-C: caf\xe9\tau lait\r\n"
                 b"X-D: \"quoted, with comma\"\r\n"}, id="values-kept-verbatim"),
    pytest.param(
        head_lines("GET / HTTP/1.1", "Host: example.com",
                   "!#$%&'*+-.^`|~09azAZ: token-name"),
        {"kept": b"!#$%&'*+-.^`|~09azAZ: token-name\r\n"}, id="all-tchar-name"),
    # (a name with "_", the last tchar, is dropped unless allowed: see UNDERSCORE_NAMES)
]


@pytest.mark.parametrize(("data", "changes"), VALID_REQUESTS)
def test_valid_request(parser_impl: ModuleType, data: bytes, changes: dict[str, Any]) -> None:
    expected = {**REQUEST_DEFAULTS, **changes}
    assert_head(parser_impl.RequestParser(), parser_impl, data, expected)


# --------------------------------------------------------------------------------------------
# request fields that are the gateway's: forwarding headers, names with "_", h2c, Expect

# Names with "_", each spelled as clients forge them. CGI/WSGI backends read "_" as "-", so
# X_Forwarded_For would reach them as X-Forwarded-For. With underscores_in_headers off (the
# default, as nginx) every one is dropped; with it on, only those that read as a field the
# gateway acts on are, and the rest pass verbatim.
UNDERSCORE_NAMES = [
    # (line, passes when underscores are allowed)
    ("X_Forwarded_For: 6.6.6.6", False),
    ("x_forwarded_for: 6.6.6.7", False),
    ("X-Forwarded_For: 6.6.6.8", False),
    ("X_Forwarded-For: 6.6.6.9", False),
    ("X-Forwarded_Proto: https", False),
    ("X_FORWARDED_HOST: evil.example", False),
    ("X_Forwarded-Host: evil.example", False),
    ("x_forwarded_port: 443", False),
    ("X_Forwarded_Prefix: /admin", False),
    ("x_forwarded_: 1", False),
    ("X_Real_IP: 6.6.6.6", False),
    ("X-Real_Ip: 6.6.6.6", False),
    ("Content_Length: 5", False),
    ("Transfer_Encoding: chunked", False),
    ("Keep_Alive: 1", False),
    ("Proxy_Connection: close", False),
    ("HTTP2_Settings: AAMAAABk", False),
    ("X_Custom_Header: 1", True),
    ("_: underscore only", True),
    ("a_: trailing", True),
    ("_x-forwarded-for: leading", True),
    ("Host_: h", True),
    ("Connection_: close", True),
    ("Expect_: x", True),
    ("Forwarded_: for=1", True),
    ("x_forwarded: no dash after", True),
    ("X_Forwarded_For_Real: 1", False),  # x-forwarded-for-real: an X-Forwarded-* name
]


@pytest.mark.parametrize("allow", [False, True])
def test_underscore_names(parser_impl: ModuleType, allow: bool) -> None:
    lines = [line for line, _ in UNDERSCORE_NAMES]
    data = head_lines("GET / HTTP/1.1", "Host: example.com", "X-Forwarded-For: 10.0.0.1",
                      *lines, "X-Kept: 1")
    passed = b"".join(line.encode() + b"\r\n" for line, passes in UNDERSCORE_NAMES
                      if allow and passes)
    head = assert_head(parser_impl.RequestParser(underscores_in_headers=allow), parser_impl,
                       data, {**REQUEST_DEFAULTS, "x_forwarded_for": b"10.0.0.1",
                              "kept": passed + b"X-Kept: 1\r\n"})
    # nothing the gateway acts on is read from them either: no framing, no Expect
    assert (head.content_length, head.chunked, head.expect_continue) == (-1, False, False)


@pytest.mark.parametrize(("line", "passes"), UNDERSCORE_NAMES)
@pytest.mark.parametrize("allow", [False, True])
def test_underscore_name_alone(parser_impl: ModuleType, line: str, passes: bool,
                               allow: bool) -> None:
    for spelled in (line, line.upper(), line.lower()):
        data = head_lines("GET / HTTP/1.1", "Host: example.com", spelled)
        kept = spelled.encode() + b"\r\n" if allow and passes else b""
        assert_head(parser_impl.RequestParser(underscores_in_headers=allow), parser_impl, data,
                    {**REQUEST_DEFAULTS, "kept": kept})


def test_underscore_names_listed_in_connection(parser_impl: ModuleType) -> None:
    data = head_lines("GET / HTTP/1.1", "Host: h", "Connection: x_a", "X_A: 1", "X_B: 2")
    parser = parser_impl.RequestParser(underscores_in_headers=True)
    assert parser.parse(data).kept == b"X_B: 2\r\n"


# The forwarding headers are the gateway's: it writes X-Forwarded-For (the received values, then
# the client), X-Forwarded-Proto and X-Forwarded-Host; every other X-Forwarded-* name, Forwarded
# and X-Real-IP a client sends are dropped (the backend sees none rather than a forged one).
FORWARDING_DROPPED = [
    "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example", "X-Forwarded-Port: 443",
    "X-Forwarded-Prefix: /admin", "X-Forwarded-Server: evil", "X-Forwarded-Ssl: on",
    "X-Forwarded-Uri: /admin", "X-Forwarded-Method: DELETE",
    "X-Forwarded-Tls-Client-Cert: x", "x-forwarded-: empty suffix", "X-FORWARDED-PORT: 1",
    "Forwarded: for=6.6.6.6;proto=https", "FORWARDED: for=1", "X-Real-IP: 6.6.6.6",
    "x-real-ip: 6.6.6.7",
]
FORWARDING_LOOKALIKES_KEPT = [
    "X-Forwarded: 1", "X-Forwardedfor: 1", "X_Forwarded: 1", "Forwarded-For: 1",
    "X-Real-IPs: 1", "X-Real-I: 1", "XX-Forwarded-For: 1", "X-Original-Forwarded-For: 1",
]


@pytest.mark.parametrize("allow", [False, True])
def test_forwarding_headers_are_the_gateways(parser_impl: ModuleType, allow: bool) -> None:
    kept = [line for line in FORWARDING_LOOKALIKES_KEPT if allow or "_" not in line]
    data = head_lines("GET / HTTP/1.1", "Host: example.com", "X-Forwarded-For: 10.0.0.1",
                      *FORWARDING_DROPPED, *FORWARDING_LOOKALIKES_KEPT,
                      "x-forwarded-for: 10.0.0.2")
    assert_head(parser_impl.RequestParser(underscores_in_headers=allow), parser_impl, data,
                {**REQUEST_DEFAULTS, "x_forwarded_for": b"10.0.0.1, 10.0.0.2",
                 "kept": b"".join(line.encode() + b"\r\n" for line in kept)})


@pytest.mark.parametrize("line", FORWARDING_DROPPED)
def test_forwarding_header_alone_is_dropped(parser_impl: ModuleType, line: str) -> None:
    assert_head(parser_impl.RequestParser(), parser_impl,
                head_lines("GET / HTTP/1.1", "Host: example.com", line), REQUEST_DEFAULTS)


def test_forwarding_headers_pass_in_responses(parser_impl: ModuleType) -> None:
    """An upstream's response is not the client's: its X-Forwarded-*, Forwarded, X-Real-IP and
    names with "_" pass (only requests are the gateway's to sanitize)."""
    lines = ["X-Forwarded-Port: 1", "Forwarded: for=1", "X-Real-IP: 1", "X_Custom: 1",
             "X_Forwarded_For: 1", "X-Forwarded-Proto: https"]
    head = parser_impl.ResponseParser().parse(head_lines("HTTP/1.1 200 OK", *lines))
    assert head.kept == b"".join(line.encode() + b"\r\n" for line in lines)


# h2c is never negotiated through the gateway (h2c smuggling): the protocol is left out of the
# Upgrade list (no protocol left: not an upgrade) and HTTP2-Settings is never forwarded.
H2C_REQUESTS = [
    pytest.param(["Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                  "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"], None, id="h2c-alone"),
    pytest.param(["Connection: upgrade", "Upgrade: H2C"], None, id="h2c-upper-case"),
    pytest.param(["Connection: upgrade", "Upgrade: h2c/1.0, , h2c"], None, id="h2c-versions"),
    pytest.param(["Connection: upgrade", "Upgrade: websocket, h2c",
                  "HTTP2-Settings: AAMAAABk"], b"websocket", id="h2c-after-websocket"),
    pytest.param(["Connection: upgrade", "Upgrade: h2c", "Upgrade: websocket"], b"websocket",
                 id="h2c-in-another-field"),
    pytest.param(["Connection: upgrade", "Upgrade: h2cx, xh2c, h2, h2x"], b"h2cx, xh2c, h2x",
                 id="h2c-lookalikes-kept"),
    pytest.param(["Upgrade: h2c", "HTTP2-Settings: AAMAAABk"], None, id="h2c-not-listed"),
    pytest.param(["HTTP2-Settings: AAMAAABk"], None, id="http2-settings-alone"),
    pytest.param(["http2-settings: AAMAAABk", "Connection: keep-alive"], None,
                 id="http2-settings-lower-case"),
]


@pytest.mark.parametrize(("lines", "upgrade"), H2C_REQUESTS)
def test_h2c_is_never_forwarded(parser_impl: ModuleType, lines: list[str],
                                upgrade: bytes | None) -> None:
    data = head_lines("GET / HTTP/1.1", "Host: example.com", *lines, "X-Kept: 1")
    head = assert_head(parser_impl.RequestParser(), parser_impl, data,
                       {**REQUEST_DEFAULTS, "upgrade": upgrade, "kept": b"X-Kept: 1\r\n"})
    forwarded = head.forward(b"1.2.3.4\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ", b"h")
    assert b"http2-settings" not in forwarded.lower()
    assert (b"upgrade" in forwarded.lower()) == (upgrade is not None)
    assert b"h2c" not in (upgrade or b"").lower().replace(b"h2cx", b"").replace(b"xh2c", b"")


def test_h2c_is_still_checked(parser_impl: ModuleType) -> None:
    """h2c is left out after the list is validated: a bad protocol next to it is a 400."""
    data = head_lines("GET / HTTP/1.1", "Host: h", "Connection: upgrade", "Upgrade: h2c, a/b/c")
    assert_error(parser_impl.RequestParser(), parser_impl, data, 400, "invalid Upgrade")
    data = head_lines("GET / HTTP/1.1", "Host: h", "Connection: upgrade", "Upgrade: h2c/")
    assert_error(parser_impl.RequestParser(), parser_impl, data, 400, "invalid Upgrade")


def test_http2_settings_dropped_from_responses(parser_impl: ModuleType) -> None:
    """RFC 9113 3.2.1: a server must not send it; it would describe one connection anyway."""
    head = parser_impl.ResponseParser().parse(
        head_lines("HTTP/1.1 200 OK", "HTTP2-Settings: AAMA", "X-A: 1"))
    assert head.kept == b"X-A: 1\r\n"


@pytest.mark.parametrize("host", [b"a:b:c", b"[::1:80", b":example.com", b"[zz]", b"a]b",
                                  b"x[1]", b"[::1]x", b"[::1]:8o", b"h:80:", b"[v.x]", b"[vq.x]"])
def test_host_must_be_uri_host_and_port(parser_impl: ModuleType, host: bytes) -> None:
    """RFC 9110 7.2: a Host with an invalid value gets 400; the characters alone do not make it
    valid (found by the fuzzer: 'Host: [::1:80' was forwarded)."""
    data = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    assert_error(parser_impl.RequestParser(), parser_impl, data, 400, "invalid Host header")
    data = b"GET http://" + host + b"/ HTTP/1.1\r\nHost: h\r\n\r\n"
    assert_error(parser_impl.RequestParser(), parser_impl, data, 400,
                 "invalid authority in absolute-form target")


@pytest.mark.parametrize("host", [b"example.com", b"example.com:8080", b"[::1]", b"[::1]:80",
                                  b"1.2.3.4:", b"[v1.x]:1", b"a%41b", b"[fe80::1]:0"])
def test_valid_host_shapes(parser_impl: ModuleType, host: bytes) -> None:
    head = parser_impl.RequestParser().parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert head is not None


def test_upgrade_is_ignored_in_http10_requests(parser_impl: ModuleType) -> None:
    """RFC 9110 7.8: a server must ignore Upgrade in an HTTP/1.0 request: no tunnel, and the
    field (hop-by-hop) is not forwarded either."""
    for version, upgrade in (("1.0", None), ("1.1", b"websocket")):
        data = head_lines(f"GET / HTTP/{version}", "Host: h", "Connection: upgrade",
                          "Upgrade: websocket", "X-Kept: 1")
        head = parser_impl.RequestParser().parse(data)
        assert head.upgrade == upgrade, version
        assert head.kept == b"X-Kept: 1\r\n"


@pytest.mark.parametrize("coding", ["chunked", "gzip"])
def test_http10_response_with_transfer_encoding_closes(parser_impl: ModuleType,
                                                         coding: str) -> None:
    """RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing: it is
    read as framed, then the connection is closed, whatever Connection says."""
    head = parser_impl.ResponseParser().parse(head_lines(
        "HTTP/1.0 200 OK", f"Transfer-Encoding: {coding}", "Connection: keep-alive"))
    assert head.chunked == (coding == "chunked")
    assert not head.keep_alive
    head = parser_impl.ResponseParser().parse(head_lines(
        "HTTP/1.0 200 OK", "Content-Length: 2", "Connection: keep-alive"))
    assert head.keep_alive


def test_path_is_target_in_origin_form(parser_impl: ModuleType) -> None:
    head = parser_impl.RequestParser().parse(head_lines("GET /a HTTP/1.1", "Host: h"))
    assert head.path == head.target == b"/a"


def test_header_lookup(parser_impl: ModuleType) -> None:
    data = head_lines("GET / HTTP/1.1", "Host: example.com", "X-Api-Version:  2 ",
                      "x-api-version: 3", "Connection: close", "X-Empty:")
    head = parser_impl.RequestParser().parse(data)
    assert head.header(b"x-api-version") == b"2"
    assert head.header(b"X-API-VERSION") == b"2"
    assert head.header(bytearray(b"x-api-version")) == b"2"
    assert head.header(b"connection") == b"close"  # from the raw head, dropped or not
    assert head.header(b"x-empty") == b""
    assert head.header(b"x-api") is None
    assert head.header(b"missing") is None
    assert head.header(b"") is None
    assert head.header(b"GET / HTTP/1.1") is None
    with pytest.raises(TypeError):
        head.header("x-api-version")


def test_limits_exactly_at_the_maximum(parser_impl: ModuleType) -> None:
    line = b"GET /" + b"a" * 95 + b" HTTP/1.1"
    assert len(line) == 109
    headers = b"Host: h\r\nX-A: " + b"b" * 31 + b"\r\n"
    data = line + b"\r\n" + headers + b"\r\n"
    parser = parser_impl.RequestParser(max_request_line=109, max_header_bytes=len(headers),
                                       max_headers=2)
    head = assert_head(parser, parser_impl, data,
                       {"target": line[4:-9], "kept": headers[9:]})
    assert head.host == b"h"


def test_parser_is_reusable(parser_impl: ModuleType) -> None:
    parser = parser_impl.RequestParser()
    first = head_lines("GET /1 HTTP/1.1", "Host: a", "X-A: 1")
    second = head_lines("GET /2 HTTP/1.1", "Host: b")
    with pytest.raises(parser_impl.ParseError):
        parser.parse(head_lines("GET / HTTP/1.1"))
    assert parser.parse(first).kept == b"X-A: 1\r\n"
    assert parser.parse(second).host == b"b"
    assert parser.parse(first + second).path == b"/1"


def test_many_headers(parser_impl: ModuleType) -> None:
    lines = ["GET / HTTP/1.1", "Host: h"] + [f"X-H{i}: {i}" for i in range(99)]
    head = parser_impl.RequestParser().parse(head_lines(*lines))
    assert head.kept == b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(99))
    with pytest.raises(parser_impl.ParseError) as info:
        parser_impl.RequestParser().parse(head_lines(*lines, "X-Last: 1"))
    assert info.value.status == 431


# --------------------------------------------------------------------------------------------
# malformed requests

GET = "GET / HTTP/1.1"
HOST = "Host: example.com"

MALFORMED_REQUESTS = [
    # framing
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: 5",
                            "Transfer-Encoding: chunked"),
                 400, "both Content-Length and Transfer-Encoding", {}, id="cl-and-te"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                            "Content-Length: 5"),
                 400, "both Content-Length and Transfer-Encoding", {}, id="te-and-cl"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: 5", "Content-Length: 6"),
                 400, "conflicting Content-Length values", {}, id="cl-two-fields-differ"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: 5, 6"),
                 400, "conflicting Content-Length values", {}, id="cl-list-differs"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: abc"),
                 400, "invalid Content-Length", {}, id="cl-not-a-number"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: -1"),
                 400, "invalid Content-Length", {}, id="cl-negative"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: +1"),
                 400, "invalid Content-Length", {}, id="cl-plus-sign"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length:"),
                 400, "invalid Content-Length", {}, id="cl-empty"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: 5,,5"),
                 400, "invalid Content-Length", {}, id="cl-empty-list-member"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: 1 2"),
                 400, "invalid Content-Length", {}, id="cl-inner-space"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: 0x10"),
                 400, "invalid Content-Length", {}, id="cl-hex"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: 1234567890123456789"),
                 400, "invalid Content-Length", {}, id="cl-19-digits"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Content-Length: \xd9\xa3"),
                 400, "invalid Content-Length", {}, id="cl-non-ascii-digit"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: gzip"),
                 400, "Transfer-Encoding does not end in chunked", {}, id="te-not-chunked"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked, gzip"),
                 400, "Transfer-Encoding does not end in chunked", {}, id="te-chunked-not-last"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                            "Transfer-Encoding: chunked"),
                 400, "Transfer-Encoding does not end in chunked", {}, id="te-chunked-twice"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked",
                            "Transfer-Encoding: identity"),
                 400, "Transfer-Encoding does not end in chunked", {}, id="te-chunked-then-other"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding:  , "),
                 400, "empty Transfer-Encoding", {}, id="te-empty"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: chun ked"),
                 400, "invalid Transfer-Encoding", {}, id="te-invalid-token"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: ;q=1, chunked"),
                 400, "invalid Transfer-Encoding", {}, id="te-parameter-without-name"),
    pytest.param(head_lines("POST / HTTP/1.0", HOST, "Transfer-Encoding: chunked"),
                 400, "Transfer-Encoding in an HTTP/1.0 request", {}, id="te-in-http10"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: ,gzip"),
                 400, "Transfer-Encoding does not end in chunked", {}, id="te-gzip-empty-element"),
    # only chunked is implemented (RFC 9112 6.1: 501); chunked takes no parameters (7: 400)
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: gzip, CHUNKED"),
                 501, "unsupported transfer coding", {}, id="te-gzip-chunked"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: gzip",
                            "Transfer-Encoding:  chunked "),
                 501, "unsupported transfer coding", {}, id="te-gzip-then-chunked-field"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: identity, chunked"),
                 501, "unsupported transfer coding", {}, id="te-identity-chunked"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: GZIP , ,chunked"),
                 501, "unsupported transfer coding", {}, id="te-gzip-empty-chunked"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: x;q=1, chunked"),
                 501, "unsupported transfer coding", {}, id="te-parameters-on-other"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked;x=1"),
                 400, "parameters on the chunked transfer coding", {}, id="te-chunked-parameter"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked ; x=1"),
                 400, "parameters on the chunked transfer coding", {},
                 id="te-chunked-parameter-ows"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: Chunked;"),
                 400, "parameters on the chunked transfer coding", {},
                 id="te-chunked-empty-parameter"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Transfer-Encoding: gzip, chunked;x"),
                 400, "parameters on the chunked transfer coding", {},
                 id="te-chunked-parameter-before-501"),
    # Upgrade, when Connection lists it, holds protocols: token ["/" token]
    pytest.param(head_lines(GET, HOST, "Connection: upgrade", "Upgrade: web socket"),
                 400, "invalid Upgrade", {}, id="upgrade-space"),
    pytest.param(head_lines(GET, HOST, "Connection: upgrade", "Upgrade: websocket/"),
                 400, "invalid Upgrade", {}, id="upgrade-empty-version"),
    pytest.param(head_lines(GET, HOST, "Connection: upgrade", "Upgrade: /13"),
                 400, "invalid Upgrade", {}, id="upgrade-empty-name"),
    pytest.param(head_lines(GET, HOST, "Connection: upgrade", "Upgrade: h2c", "Upgrade: a/b/c"),
                 400, "invalid Upgrade", {}, id="upgrade-two-slashes"),
    pytest.param(head_lines(GET, HOST, "Connection: upgrade", "Upgrade: websocket;v=1"),
                 400, "invalid Upgrade", {}, id="upgrade-parameter"),
    pytest.param(head_lines(GET, HOST, "Connection: upgrade", "Upgrade: caf\xe9"),
                 400, "invalid Upgrade", {}, id="upgrade-obs-text"),
    # 100-continue is answered by the gateway; any other expectation is one it cannot meet
    # (RFC 9110 10.1.1), alone or not, in HTTP/1.0 too
    pytest.param(head_lines("GET / HTTP/1.1", HOST, "Expect: something"),
                 417, "unsupported expectation", {}, id="expect-other"),
    pytest.param(head_lines("GET / HTTP/1.1", HOST, "Expect: a, b", "Expect: ,"),
                 417, "unsupported expectation", {}, id="expect-others"),
    pytest.param(head_lines("GET / HTTP/1.1", HOST, "Expect: 100-continue", "Expect: x=1"),
                 417, "unsupported expectation", {}, id="expect-continue-then-other"),
    pytest.param(head_lines("GET / HTTP/1.1", HOST, "Expect: ,", "expect: 100-continuee"),
                 417, "unsupported expectation", {}, id="expect-continue-misspelt"),
    pytest.param(head_lines("GET / HTTP/1.0", HOST, "Expect: something"),
                 417, "unsupported expectation", {}, id="expect-other-http10"),
    pytest.param(head_lines("PUT / HTTP/1.1", HOST, "Expect: 100-continue, x"),
                 417, "unsupported expectation", {}, id="expect-continue-and-other"),
    pytest.param(head_lines("PUT / HTTP/1.1", HOST, "Expect: x", "Expect: 100-Continue"),
                 417, "unsupported expectation", {}, id="expect-other-then-continue"),
    pytest.param(head_lines("PUT / HTTP/1.0", HOST, "Expect: 100-continue,x"),
                 417, "unsupported expectation", {}, id="expect-mixed-http10"),
    pytest.param(head_lines("PUT / HTTP/1.1", HOST, "Expect: 100-continue, 100-continue=1"),
                 417, "unsupported expectation", {}, id="expect-continue-with-value"),
    pytest.param(head_lines("POST / HTTP/1.1", HOST, "Expect: 100-continue, x",
                            "Transfer-Encoding: gzip, chunked"),
                 501, "unsupported transfer coding", {}, id="framing-before-expect"),
    # line endings and characters
    pytest.param(b"GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\rb\r\n\r\n",
                 400, "bare CR in head", {}, id="bare-cr-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: example.com\r\r\n\r\n",
                 400, "bare CR in head", {}, id="bare-cr-before-crlf"),
    pytest.param(b"GET /\r HTTP/1.1\r\nHost: example.com\r\n\r\n",
                 400, "bare CR in head", {}, id="bare-cr-in-request-line"),
    pytest.param(b"GET / HTTP/1.2\r\nHost: example.com\rX: y\r\n\r\n",
                 400, "bare CR in head", {}, id="bare-cr-before-bad-version"),
    pytest.param(b"GET / HTTP/1.1\nHost: example.com\n\n",
                 400, "bare LF line ending", {}, id="bare-lf-everywhere"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: example.com\n\r\n",
                 400, "bare LF line ending", {}, id="bare-lf-once"),
    pytest.param(b"GET / HTTP/1.1\r\nX-A: a\nb\r\nHost: example.com\r\n\r\n",
                 400, "bare LF line ending", {}, id="bare-lf-in-value"),
    pytest.param(b"\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
                 400, "bare LF line ending", {}, id="bare-lf-first-byte"),
    pytest.param(head_lines(GET, "Host : example.com"),
                 400, "invalid character in header name", {}, id="space-before-colon"),
    pytest.param(head_lines(GET, HOST, "X-A\t: 1"),
                 400, "invalid character in header name", {}, id="tab-before-colon"),
    pytest.param(head_lines(GET, HOST, "X@A: 1"),
                 400, "invalid character in header name", {}, id="invalid-name-char"),
    pytest.param(head_lines(GET, HOST, b"X-\xe9: 1"),
                 400, "invalid character in header name", {}, id="non-ascii-name"),
    pytest.param(head_lines(GET, HOST, "X-A: 1", " folded"),
                 400, "obsolete line folding in header", {}, id="obs-fold-space"),
    pytest.param(head_lines(GET, HOST, "X-A: 1", "\tfolded"),
                 400, "obsolete line folding in header", {}, id="obs-fold-tab"),
    pytest.param(head_lines(GET, " Host: example.com"),
                 400, "obsolete line folding in header", {}, id="leading-space-first-field"),
    pytest.param(head_lines(GET, HOST, "no colon here"),
                 400, "header line without a name and colon", {}, id="no-colon"),
    pytest.param(head_lines(GET, HOST, ": no name"),
                 400, "header line without a name and colon", {}, id="empty-name"),
    pytest.param(head_lines(GET, HOST, "X-A: a\x00b"),
                 400, "invalid character in header value", {}, id="nul-in-value"),
    pytest.param(head_lines(GET, HOST, "X-A: \x01"),
                 400, "invalid character in header value", {}, id="soh-in-value"),
    pytest.param(head_lines(GET, HOST, "X-A: a\x1bb"),
                 400, "invalid character in header value", {}, id="esc-in-value"),
    pytest.param(head_lines(GET, HOST, "X-A: a\x7f"),
                 400, "invalid character in header value", {}, id="del-in-value"),
    pytest.param(head_lines(GET, HOST, "X-A: a\x0bb"),
                 400, "invalid character in header value", {}, id="vt-in-value"),
    # request line
    pytest.param(head_lines("G@T / HTTP/1.1", HOST), 400, "invalid method", {}, id="bad-method"),
    pytest.param(head_lines("GET\x00 / HTTP/1.1", HOST), 400, "invalid method", {},
                 id="nul-in-method"),
    pytest.param(head_lines("GE(T / HTTP/1.1", HOST), 400, "invalid method", {},
                 id="separator-in-method"),
    pytest.param(head_lines(" / HTTP/1.1", HOST), 400, "invalid method", {}, id="empty-method"),
    pytest.param(head_lines("GET  / HTTP/1.1", HOST), 400, "malformed request line", {},
                 id="double-space"),
    pytest.param(head_lines("GET / HTTP/1.1 ", HOST), 400, "malformed request line", {},
                 id="trailing-space"),
    pytest.param(head_lines("GET /", HOST), 400, "malformed request line", {},
                 id="no-version"),
    pytest.param(head_lines("GET\t/\tHTTP/1.1", HOST), 400, "malformed request line", {},
                 id="tabs-as-separators"),
    # empty lines before the request line: CRLF only, a request line's worth at most
    pytest.param(b"\r\n\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
                 400, "bare LF line ending", {}, id="bare-lf-after-empty-line"),
    pytest.param(b"\r\n\r\rGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
                 400, "bare CR in head", {}, id="bare-cr-after-empty-lines"),
    pytest.param(b"\r\n \r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
                 400, "malformed request line", {}, id="whitespace-line-before-request"),
    pytest.param(b"\r\n" * 51 + head_lines(GET, HOST), 400,
                 "too many empty lines before the request line", {"max_request_line": 100},
                 id="too-many-empty-lines"),
    pytest.param(b"\r\n" * 51 + b"G@T / HTTP/1.1\r\n\r\n", 400,
                 "too many empty lines before the request line", {"max_request_line": 100},
                 id="too-many-empty-lines-first"),
    pytest.param(b"\r\n\r\n" + head_lines("GET /caf\xc3\xa9 HTTP/1.1", HOST), 400,
                 "invalid request target", {}, id="empty-lines-then-bad-target"),
    pytest.param(head_lines("GET /a\x7f HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="del-in-target"),
    pytest.param(head_lines("GET /a\x00 HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="nul-in-target"),
    pytest.param(head_lines("GET /caf\xc3\xa9 HTTP/1.1", HOST), 400, "invalid request target",
                 {}, id="utf8-in-target"),
    pytest.param(head_lines("GET /a?q=\xff HTTP/1.1", HOST), 400, "invalid request target",
                 {}, id="obs-text-in-query"),
    pytest.param(head_lines("GET /a#frag HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="fragment"),
    pytest.param(head_lines("GET /%zz HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="pct-not-hex"),
    pytest.param(head_lines("GET /a%2 HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="pct-truncated"),
    pytest.param(head_lines("GET /a% HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="pct-at-end"),
    pytest.param(head_lines("GET /%41%4 HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="pct-valid-then-truncated"),
    pytest.param(head_lines("GET /%%41 HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="pct-percent"),
    pytest.param(head_lines("GET http://a/caf\xe9 HTTP/1.1", HOST), 400,
                 "invalid request target", {}, id="absolute-form-non-ascii-path"),
    pytest.param(head_lines("GET http://a/x{y} HTTP/1.1", HOST), 400,
                 "invalid request target", {}, id="absolute-form-brace-in-path"),
    pytest.param(head_lines("GET http://a/[x] HTTP/1.1", HOST), 400,
                 "invalid request target", {}, id="absolute-form-bracket-in-path"),
    pytest.param(head_lines("GET http://a#f HTTP/1.1", HOST), 400,
                 "invalid request target", {}, id="absolute-form-fragment"),
    pytest.param(head_lines("GET http://e%zzample/ HTTP/1.1", HOST), 400,
                 "invalid request target", {}, id="absolute-form-bad-pct-authority"),
    pytest.param(head_lines("GET ftp://[::1]/ HTTP/1.1", HOST), 400,
                 "invalid request target", {}, id="brackets-outside-absolute-form"),
    pytest.param(head_lines("GET http://ex\xe9mple/ HTTP/1.1", HOST),
                 400, "invalid authority in absolute-form target", {}, id="non-ascii-authority"),
    pytest.param(head_lines("GET * HTTP/1.1", HOST), 400, "invalid request target", {},
                 id="asterisk-not-options"),
    pytest.param(head_lines("GET example.com/x HTTP/1.1", HOST), 400, "invalid request target",
                 {}, id="target-without-slash"),
    pytest.param(head_lines("GET ftp://example.com/ HTTP/1.1", HOST),
                 400, "invalid request target", {}, id="absolute-form-other-scheme"),
    pytest.param(head_lines("GET http://user@example.com/ HTTP/1.1", HOST),
                 400, "invalid authority in absolute-form target", {}, id="userinfo"),
    pytest.param(head_lines("GET http:///x HTTP/1.1", HOST),
                 400, "invalid authority in absolute-form target", {}, id="empty-authority"),
    pytest.param(head_lines("GET http://ex\"ample/ HTTP/1.1", HOST),
                 400, "invalid authority in absolute-form target", {}, id="bad-authority-char"),
    pytest.param(head_lines("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"),
                 405, "CONNECT is not supported by a reverse proxy", {}, id="connect"),
    pytest.param(head_lines("GET / HTTP/2.0", HOST), 505, "HTTP version not supported", {},
                 id="http20"),
    pytest.param(head_lines("GET / HTTP/1.2", HOST), 505, "HTTP version not supported", {},
                 id="http12"),
    pytest.param(head_lines("GET / HTTP/0.9", HOST), 505, "HTTP version not supported", {},
                 id="http09"),
    pytest.param(head_lines("GET / HTTP/1.10", HOST), 400, "malformed HTTP version", {},
                 id="version-too-long"),
    pytest.param(head_lines("GET / http/1.1", HOST), 400, "malformed HTTP version", {},
                 id="version-lowercase"),
    pytest.param(head_lines("GET / HTTP/1.x", HOST), 400, "malformed HTTP version", {},
                 id="version-not-digit"),
    # Host
    pytest.param(head_lines(GET), 400, "missing Host header", {}, id="missing-host"),
    pytest.param(head_lines("GET http://example.com/ HTTP/1.1"), 400, "missing Host header", {},
                 id="missing-host-absolute-form"),
    pytest.param(head_lines(GET, "X-Host: example.com"), 400, "missing Host header", {},
                 id="missing-host-similar-name"),
    pytest.param(head_lines(GET, HOST, "Host: example.com"), 400, "more than one Host header",
                 {}, id="repeated-host-same"),
    pytest.param(head_lines(GET, HOST, "host: other.example"), 400, "more than one Host header",
                 {}, id="repeated-host-differs"),
    pytest.param(head_lines("GET / HTTP/1.0", HOST, HOST), 400, "more than one Host header",
                 {}, id="repeated-host-http10"),
    pytest.param(head_lines(GET, "Host: exa mple.com"), 400, "invalid Host header", {},
                 id="host-with-space"),
    pytest.param(head_lines(GET, "Host: example.com/path"), 400, "invalid Host header", {},
                 id="host-with-slash"),
    pytest.param(head_lines(GET, "Host: user@example.com"), 400, "invalid Host header", {},
                 id="host-with-userinfo"),
    pytest.param(head_lines(GET, "Host: ex%zzample.com"), 400, "invalid Host header", {},
                 id="host-bad-pct"),
    pytest.param(head_lines(GET, "Host: example.com%4"), 400, "invalid Host header", {},
                 id="host-truncated-pct"),
    # limits
    pytest.param(head_lines("GET /" + "a" * 100 + " HTTP/1.1", HOST), 414,
                 "first line too long", {"max_request_line": 100}, id="request-line-too-long"),
    pytest.param(head_lines("GET /" + "a" * 100), 414, "first line too long",
                 {"max_request_line": 100}, id="request-line-too-long-and-malformed"),
    pytest.param(head_lines(GET, HOST, "X-A: " + "b" * 100), 431, "header section too large",
                 {"max_header_bytes": 100}, id="header-section-too-large"),
    pytest.param(head_lines(GET, HOST, "X-A: 1", "X-B: 2"), 431, "too many headers",
                 {"max_headers": 2}, id="too-many-headers"),
    pytest.param(head_lines("G@T / HTTP/1.1", HOST, "X-A: 1", "X-B: 2"), 400, "invalid method",
                 {"max_headers": 2}, id="bad-request-line-before-header-count"),
]


@pytest.mark.parametrize(("data", "status", "reason", "limits"), MALFORMED_REQUESTS)
def test_malformed_request(parser_impl: ModuleType, data: bytes, status: int, reason: str,
                           limits: dict[str, int]) -> None:
    assert_error(parser_impl.RequestParser(**limits), parser_impl, data, status, reason)


@pytest.mark.parametrize(
    ("data", "status", "limits"),
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\nX", 400, {}, id="bare-lf"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\rX", 400, {}, id="bare-cr"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"x" * 8200, 414, {},
                     id="tls-client-hello"),
        pytest.param(b"GET /" + b"a" * 200, 414, {"max_request_line": 100},
                     id="request-line-without-end"),
        pytest.param(b"GET / HTTP/1.1\r\nX-A: " + b"a" * 200, 431, {"max_header_bytes": 100},
                     id="header-section-without-end"),
    ],
)
def test_request_rejected_before_the_head_is_complete(
        parser_impl: ModuleType, data: bytes, status: int, limits: dict[str, int]) -> None:
    with pytest.raises(parser_impl.ParseError) as info:
        parser_impl.RequestParser(**limits).parse(data)
    assert info.value.status == status


def test_incomplete_request_waits(parser_impl: ModuleType) -> None:
    parser = parser_impl.RequestParser(max_request_line=16, max_header_bytes=16)
    assert parser.parse(b"") is None
    assert parser.parse(b"GET /0123456789A") is None  # 16 bytes: at the limit
    assert parser.parse(b"GET /0123456789A\r") is None  # the CR may start the line's CRLF
    assert parser.parse(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 12\r") is None  # 16 bytes


def test_every_byte_at_every_position_of_a_value(parser_impl: ModuleType) -> None:
    """Field values are checked in words of eight bytes: try each byte in each position."""
    parser = parser_impl.RequestParser()
    for byte in range(256):
        for at in range(18):
            value = bytearray(b"v" * 18)
            value[at] = byte
            data = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: " + bytes(value) + b"\r\n\r\n"
            result = attempt(parser, data, parser_impl)
            if byte == 0x0D:
                assert result.reason == "bare CR in head"
            elif byte == 0x0A:
                assert result.reason == "bare LF line ending"
            elif byte == 0x09 or 0x20 <= byte != 0x7F:
                assert result.kept == b"X-A: " + bytes(value) + b"\r\n", (byte, at)
            else:
                assert result.reason == "invalid character in header value", (byte, at)


URI_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                      b"-._~!$&'()*+,;=:@/?")  # and '%', only as an escape


def test_every_byte_at_every_position_of_a_target(parser_impl: ModuleType) -> None:
    """Targets are checked eight bytes at a time: try each byte in each position, of an
    origin-form target and of the path of an absolute-form one."""
    parser = parser_impl.RequestParser()
    for prefix in (b"/", b"http://h/"):
        for byte in range(256):
            for at in range(len(prefix), 18):
                target = bytearray(prefix + b"t" * (18 - len(prefix)))
                target[at] = byte
                data = b"GET " + bytes(target) + b" HTTP/1.1\r\nHost: h\r\n\r\n"
                result = attempt(parser, data, parser_impl)
                if byte == 0x0D:
                    assert result.reason == "bare CR in head"
                elif byte == 0x0A:
                    assert result.reason == "bare LF line ending"
                elif byte == 0x20:
                    assert result.reason == "malformed request line"
                elif byte in URI_BYTES:
                    assert result.target == bytes(target), (byte, at)
                else:  # '%' here is followed by "t" or ends the target: not an escape
                    assert result.reason == "invalid request target", (byte, at)


@pytest.mark.parametrize("length", [2, 8, 15, 16, 17, 31, 32, 33, 47])
def test_every_byte_at_every_position_of_targets_of_many_lengths(
        parser_impl: ModuleType, length: int) -> None:
    """The compiled parser checks targets sixteen bytes at a time, the last block overlapping
    (or eight with the table): every length around those steps, every byte, every position."""
    parser = parser_impl.RequestParser()
    for byte in range(0x21, 0x100):
        for at in range(1, length):
            target = bytearray(b"/" + b"t" * (length - 1))  # "%tt" is no escape
            target[at] = byte
            data = b"GET " + bytes(target) + b" HTTP/1.1\r\nHost: h\r\n\r\n"
            result = attempt(parser, data, parser_impl)
            if byte in URI_BYTES:
                assert result.target == bytes(target), (byte, at)
            else:
                assert result.reason == "invalid request target", (byte, at)


def test_every_byte_in_the_authority_of_an_absolute_target(parser_impl: ModuleType) -> None:
    """An authority may hold '[' and ']' (IP-literal) and is judged by the Host rules: its
    bytes, then its shape, uri-host [":" port], with a host that is not empty."""
    parser = parser_impl.RequestParser()
    host_bytes = URI_BYTES - frozenset(b"/?@") | frozenset(b"[]")
    for byte in range(256):
        for at in range(7, 18):
            target = bytearray(b"http://" + b"h" * 11)
            target[at] = byte
            data = b"GET " + bytes(target) + b" HTTP/1.1\r\nHost: h\r\n\r\n"
            result = attempt(parser, data, parser_impl)
            authority = bytes(target[7:])
            if byte in (0x0D, 0x0A, 0x20):
                assert isinstance(result, parser_impl.ParseError)
            elif byte in host_bytes and not (host_shape_ok(authority) and authority[0] != 0x3A):
                assert result.reason == "invalid authority in absolute-form target", (byte, at)
            elif byte in host_bytes or (byte in b"/?" and at > 7):
                assert result.target == bytes(target), (byte, at)
            elif byte in b"/?@#" or 0x21 <= byte < 0x7F or byte >= 0x80:
                assert result.reason in ("invalid authority in absolute-form target",
                                         "invalid request target"), (byte, at)
                if byte in b"\"<>\\^`{|}" or byte >= 0x80:  # VCHAR/obs-text, not in a Host
                    assert result.reason == "invalid authority in absolute-form target"
            else:
                assert result.reason == "invalid request target", (byte, at)


@pytest.mark.parametrize("at", range(1, 14))
def test_percent_escapes_at_every_position(parser_impl: ModuleType, at: int) -> None:
    """'%' must begin "%" HEXDIG HEXDIG wherever it falls (inside or across eight-byte words)."""
    parser = parser_impl.RequestParser()
    hexdigits = b"0123456789abcdefABCDEF"
    for first in range(0x21, 0x7F):
        for second in (0x30, 0x61, 0x46, 0x67, 0x25, 0x2F):
            target = bytearray(b"/" + b"t" * 15)
            target[at:at + 3] = bytes([0x25, first, second])
            target = bytes(target[:16])
            data = b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n"
            result = attempt(parser, data, parser_impl)
            escape = target[at:at + 3]
            valid = (len(escape) == 3 and escape[1] in hexdigits and escape[2] in hexdigits
                     and all(c in URI_BYTES or c == 0x25 for c in target))
            # a valid escape followed by another "%..." triplet is judged on that one too
            if valid and b"%" in target[at + 3:]:
                rest = target.index(b"%", at + 3)
                valid = rest + 2 < len(target) and all(
                    c in hexdigits for c in target[rest + 1:rest + 3])
            if valid:
                assert result.target == target, target
            else:
                assert result.reason == "invalid request target", target


# --------------------------------------------------------------------------------------------
# empty lines before a request line (RFC 9112 2.2)

LEADING = [
    pytest.param(b"\r\n", id="one"),
    pytest.param(b"\r\n\r\n", id="two"),
    pytest.param(b"\r\n" * 7, id="seven"),
]


@pytest.mark.parametrize("leading", LEADING)
@pytest.mark.parametrize("head", [
    head_lines("GET /a HTTP/1.1", "Host: example.com", "X-A: 1"),
    head_lines("POST /b HTTP/1.1", "Host: example.com", "Content-Length: 3"),
    head_lines("GET /c HTTP/1.0"),
])
def test_empty_lines_before_the_request_line_are_skipped(
        parser_impl: ModuleType, leading: bytes, head: bytes) -> None:
    parser = parser_impl.RequestParser()
    data = leading + head
    assert_prefixes(parser, parser_impl, data, None)
    alone = parser.parse(head)
    for buf in (data, bytearray(data), memoryview(data), data + b"abc\r\n\r\n"):
        got = parser.parse(buf)
        assert got.head_length == len(data)  # the caller slices its buffer here
        assert got.raw == head and type(got.raw) is bytes  # raw starts at the request line
        for name in ("method", "target", "path", "host", "version", "content_length", "kept",
                     "keep_alive"):
            assert getattr(got, name) == getattr(alone, name), name
        assert got.header(b"x-a") == alone.header(b"x-a")
        assert got.header(b"host") == alone.header(b"host")
        assert got.forward(b"ip\r\n", b"h") == alone.forward(b"ip\r\n", b"h")


def test_only_empty_lines_wait_up_to_the_limit(parser_impl: ModuleType) -> None:
    parser = parser_impl.RequestParser(max_request_line=100)
    for n in range(51):
        assert parser.parse(b"\r\n" * n) is None
        assert parser.parse(b"\r\n" * n + b"\r") is None
        assert parser.parse(b"\r\n" * n + b"GET") is None
    head = head_lines(GET, HOST)
    assert parser.parse(b"\r\n" * 50 + head).head_length == 100 + len(head)
    with pytest.raises(parser_impl.ParseError) as info:
        parser.parse(b"\r\n" * 51)
    assert (info.value.status, info.value.reason) == (
        400, "too many empty lines before the request line")


def test_empty_lines_limit_is_the_request_line_limit(parser_impl: ModuleType) -> None:
    parser = parser_impl.RequestParser()  # max_request_line 8192
    head = head_lines(GET, HOST)
    assert parser.parse(b"\r\n" * 4096 + head).head_length == 8192 + len(head)
    assert parser.parse(b"\r\n" * 4096) is None
    for data in (b"\r\n" * 4097, b"\r\n" * 4097 + head, b"\r\n" * 5000):
        with pytest.raises(parser_impl.ParseError) as info:
            parser.parse(data)
        assert (info.value.status, info.value.reason) == (
            400, "too many empty lines before the request line")


@pytest.mark.parametrize("data", [
    b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\n\r\n\n",
])
def test_bare_lf_is_no_empty_line(parser_impl: ModuleType, data: bytes) -> None:
    with pytest.raises(parser_impl.ParseError) as info:
        parser_impl.RequestParser().parse(data)
    assert (info.value.status, info.value.reason) == (400, "bare LF line ending")


def test_pipelined_request_after_a_stray_crlf(parser_impl: ModuleType) -> None:
    """A stray CRLF after a body, before the next request, as a caller slices its buffer."""
    parser = parser_impl.RequestParser()
    first = head_lines("POST /1 HTTP/1.1", "Host: h", "Content-Length: 5") + b"hello"
    second = head_lines("GET /2 HTTP/1.1", "Host: h")
    buf = first + b"\r\n" + second + b"\r\n\r\n"
    head = parser.parse(buf)
    buf = buf[head.head_length + head.content_length:]
    head = parser.parse(buf)
    assert (head.path, head.raw, head.head_length) == (b"/2", second, len(second) + 2)
    buf = buf[head.head_length:]
    assert buf == b"\r\n\r\n" and parser.parse(buf) is None


def test_responses_do_not_skip_empty_lines(parser_impl: ModuleType) -> None:
    with pytest.raises(parser_impl.ParseError) as info:
        parser_impl.ResponseParser().parse(b"\r\nHTTP/1.1 200 OK\r\n\r\n")
    assert (info.value.status, info.value.reason) == (502, "malformed status line")


# --------------------------------------------------------------------------------------------
# responses

VALID_RESPONSES = [
    pytest.param(head_lines("HTTP/1.1 200 OK", "Content-Length: 12", "Content-Type: text/plain"),
                 {"content_length": 12, "kept": b"Content-Type: text/plain\r\n"}, id="200-length"),
    pytest.param(head_lines("HTTP/1.1 404 Not Found", "content-length: 0"),
                 {"status": 404, "reason": b"Not Found", "content_length": 0}, id="404"),
    pytest.param(head_lines("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"),
                 {"chunked": True, "transfer_encoding": b"chunked"}, id="chunked"),
    pytest.param(head_lines("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked"),
                 {"chunked": True, "transfer_encoding": b"gzip, chunked"}, id="gzip-chunked"),
    pytest.param(head_lines("HTTP/1.1 200 OK", "Transfer-Encoding: gzip"),
                 {"transfer_encoding": b"gzip", "keep_alive": False}, id="close-delimited-te"),
    pytest.param(head_lines("HTTP/1.0 200 OK", "Transfer-Encoding: chunked",
                            "Connection: keep-alive"),
                 {"version": 10, "chunked": True, "transfer_encoding": b"chunked",
                  "keep_alive": False},  # RFC 9112 6.1: faulty framing, close after it
                 id="http10-chunked"),
    pytest.param(head_lines("HTTP/1.1 200 OK"), {}, id="no-framing"),
    pytest.param(head_lines("HTTP/1.1 200 OK", "Content-Length: 3, 3", "Content-Length: 3"),
                 {"content_length": 3}, id="repeated-length"),
    pytest.param(head_lines("HTTP/1.0 200 OK"), {"version": 10, "keep_alive": False},
                 id="http10"),
    pytest.param(head_lines("HTTP/1.0 200 OK", "Connection: keep-alive"),
                 {"version": 10}, id="http10-keep-alive"),
    pytest.param(head_lines("HTTP/1.1 204 No Content", "Connection: close"),
                 {"status": 204, "reason": b"No Content", "keep_alive": False}, id="close"),
    pytest.param(head_lines("HTTP/1.1 200"), {"reason": b""}, id="no-reason"),
    pytest.param(head_lines("HTTP/1.1 200 "), {"reason": b""}, id="empty-reason"),
    pytest.param(head_lines("HTTP/1.1 599 Odd\tReason \xe9"),
                 {"status": 599, "reason": b"Odd\tReason \xe9"}, id="reason-characters"),
    pytest.param(head_lines("HTTP/1.1 100 Continue"), {"status": 100, "reason": b"Continue"},
                 id="100"),
    pytest.param(head_lines("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade",
                            "Upgrade: websocket", "Sec-WebSocket-Accept: abc="),
                 {"status": 101, "reason": b"Switching Protocols", "upgrade": b"websocket",
                  "kept": b"Sec-WebSocket-Accept: abc=\r\n"}, id="101-upgrade"),
    pytest.param(head_lines("HTTP/1.1 200 OK", "Connection: keep-alive, X-Internal",
                            "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
                            "TE: trailers", "Trailer: Expires", "X-Internal: 1",
                            "Host: backend", "X-Forwarded-For: 1.2.3.4", "Expect: 100-continue",
                            "Content-Length: 1"),
                 {"content_length": 1,
                  "kept": b"Host: backend\r\nX-Forwarded-For: 1.2.3.4\r\n"
                          b"Expect: 100-continue\r\n"}, id="hop-by-hop-removed"),
    pytest.param(head_lines("HTTP/1.1 200 OK", "Connection: host", "Host: backend"),
                 {"kept": b"Host: backend\r\n"}, id="host-not-listable"),
]


@pytest.mark.parametrize(("data", "changes"), VALID_RESPONSES)
def test_valid_response(parser_impl: ModuleType, data: bytes, changes: dict[str, Any]) -> None:
    expected = {**RESPONSE_DEFAULTS, **changes}
    head = assert_head(parser_impl.ResponseParser(), parser_impl, data, expected)
    assert head.header(b"content-type") == (b"text/plain" if b"Content-Type" in data else None)


STATUS_OK = "HTTP/1.1 200 OK"

MALFORMED_RESPONSES = [
    pytest.param(head_lines("HTTP/1.1 20 OK"), "malformed status line", {}, id="two-digits"),
    pytest.param(head_lines("HTTP/1.1 2000 OK"), "malformed status line", {}, id="four-digits"),
    pytest.param(head_lines("HTTP/1.1 099 Low"), "malformed status line", {}, id="leading-zero"),
    pytest.param(head_lines("HTTP/1.1 600 High"), "status code out of range", {},
                 id="status-600"),
    pytest.param(head_lines("HTTP/1.1 2x0 OK"), "malformed status line", {}, id="not-digits"),
    pytest.param(head_lines("HTTP/1.1  200 OK"), "malformed status line", {}, id="two-spaces"),
    pytest.param(head_lines("HTTP/1.1"), "malformed status line", {}, id="no-status"),
    pytest.param(head_lines("HTTP/2 200 OK"), "malformed status line", {}, id="http2"),
    pytest.param(head_lines("HTTP/1.2 200 OK"), "malformed status line", {}, id="http12"),
    pytest.param(head_lines("ICY 200 OK"), "malformed status line", {}, id="not-http"),
    pytest.param(head_lines("HTTP/1.1 200 O\x00K"), "invalid character in reason phrase", {},
                 id="nul-in-reason"),
    pytest.param(head_lines(STATUS_OK, "Content-Length: 1", "Transfer-Encoding: chunked"),
                 "both Content-Length and Transfer-Encoding in response", {}, id="cl-and-te"),
    pytest.param(head_lines(STATUS_OK, "Content-Length: 1", "Content-Length: 2"),
                 "conflicting Content-Length values", {}, id="cl-conflict"),
    pytest.param(head_lines(STATUS_OK, "Content-Length: one"), "invalid Content-Length", {},
                 id="cl-invalid"),
    pytest.param(head_lines(STATUS_OK, "Transfer-Encoding: chunked, chunked"),
                 "chunked applied twice", {}, id="chunked-twice"),
    pytest.param(head_lines(STATUS_OK, "Transfer-Encoding: ,"), "empty Transfer-Encoding", {},
                 id="te-empty"),
    pytest.param(head_lines(STATUS_OK, "Transfer-Encoding: gz/ip"), "invalid Transfer-Encoding",
                 {}, id="te-invalid"),
    pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 1\n\n", "bare LF line ending", {},
                 id="bare-lf"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\r2\r\n\r\n", "bare CR in head", {}, id="bare-cr"),
    pytest.param(head_lines(STATUS_OK, "X-A: 1", " folded"), "obsolete line folding in header",
                 {}, id="obs-fold"),
    pytest.param(head_lines(STATUS_OK, "X-A 1"), "header line without a name and colon", {},
                 id="no-colon"),
    pytest.param(head_lines(STATUS_OK, "X A: 1"), "invalid character in header name", {},
                 id="bad-name"),
    pytest.param(head_lines(STATUS_OK, "X-A: \x00"), "invalid character in header value", {},
                 id="nul-in-value"),
    pytest.param(head_lines(STATUS_OK, "X-A: 1", "X-B: 2"), "too many headers",
                 {"max_headers": 1}, id="too-many-headers"),
    pytest.param(head_lines(STATUS_OK, "X-A: " + "b" * 100), "response header section too large",
                 {"max_header_bytes": 100}, id="header-section-too-large"),
    pytest.param(head_lines("HTTP/1.1 200 " + "x" * 8180), "first line too long", {},
                 id="status-line-too-long"),
]


@pytest.mark.parametrize(("data", "reason", "limits"), MALFORMED_RESPONSES)
def test_malformed_response(parser_impl: ModuleType, data: bytes, reason: str,
                            limits: dict[str, int]) -> None:
    assert_error(parser_impl.ResponseParser(**limits), parser_impl, data, 502, reason)


def test_status_line_at_the_limit(parser_impl: ModuleType) -> None:
    line = "HTTP/1.1 200 " + "x" * 8179
    assert len(line) == 8192
    data = head_lines(line)
    assert_head(parser_impl.ResponseParser(), parser_impl, data,
                {**RESPONSE_DEFAULTS, "reason": line[13:].encode()})


# --------------------------------------------------------------------------------------------
# chunked bodies

VALID_CHUNKED = [
    pytest.param(b"5\r\nhello\r\n0\r\n\r\n", id="one-chunk"),
    pytest.param(b"0\r\n\r\n", id="empty-body"),
    pytest.param(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", id="two-chunks"),
    pytest.param(b"a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", id="hex-case"),
    pytest.param(b"0005\r\nhello\r\n000\r\n\r\n", id="leading-zeros"),
    pytest.param(b"5;name=value;flag\r\nhello\r\n0;last\r\n\r\n", id="extensions"),
    pytest.param(b"5;q=\"a b\"\r\nhello\r\n0\r\n\r\n", id="extension-quoted"),
    # RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
    pytest.param(b"5 ;a\r\nhello\r\n0\t;b\r\n\r\n", id="extension-bws-before-semicolon"),
    pytest.param(b"5; \ta \t= \tb\t ;c\r\nhello\r\n0\r\n\r\n", id="extension-bws-everywhere"),
    pytest.param(b"5;a=\"\"\r\nhello\r\n0\r\n\r\n", id="extension-empty-quoted"),
    pytest.param(b"5;a=\"q\\\"d \\\\ \\x\\\t\\\xe9\"\r\nhello\r\n0\r\n\r\n",
                 id="extension-quoted-pairs"),
    pytest.param(b"5;a=\"\t !#[]~\x80\xff\";b=\";=,\"\r\nhello\r\n0\r\n\r\n",
                 id="extension-qdtext"),
    pytest.param(b"5;a=\"x\" ;b\r\nhello\r\n0\r\n\r\n", id="extension-bws-after-quoted"),
    pytest.param(b"5;!#$%&'*+-.^_`|~09aZ=!#$%&'*+-.^_`|~09aZ\r\nhello\r\n0\r\n\r\n",
                 id="extension-all-tchar"),
    pytest.param(b"5;a;b;c=d;e=\"f\"\r\nhello\r\n0;z=1\r\n\r\n", id="extension-many"),
    pytest.param(b"5;" + b"e" * 4093 + b"\r\nhello\r\n0\r\n\r\n", id="extension-at-limit"),
    pytest.param(b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n", id="trailers"),
    pytest.param(b"0\r\nX-Empty:\r\nX-B:a:b\t\xe9\r\n\r\n", id="trailer-values"),
    pytest.param(b"3\r\n\r\n\r\r\n0\r\n\r\n", id="crlf-inside-data"),
    pytest.param(b"10\r\n" + bytes(range(16)) + b"\r\n0\r\n\r\n", id="binary-data"),
]


def feed_pieces(reader: Any, pieces: list[bytes]) -> list[int]:
    return [reader.feed(piece) for piece in pieces]


@pytest.mark.parametrize("body", VALID_CHUNKED)
def test_chunked_valid(parser_impl: ModuleType, body: bytes) -> None:
    after = b"GET /next HTTP/1.1\r\n"
    whole = parser_impl.ChunkedReader()
    assert whole.feed(body + after) == len(body)
    assert whole.done
    # two pieces, split at every byte
    for split in range(len(body) + 1):
        reader = parser_impl.ChunkedReader()
        first = reader.feed(body[:split])
        if split < len(body):
            assert first == -1 and not reader.done, split
            assert reader.feed(body[split:] + after) == len(body) - split
        else:
            assert first == len(body)
        assert reader.done
    # byte by byte, and from an offset into a larger buffer
    reader = parser_impl.ChunkedReader()
    results = feed_pieces(reader, [body[i:i + 1] for i in range(len(body))])
    assert results == [-1] * (len(body) - 1) + [1]
    head = b"POST / HTTP/1.1\r\n\r\n"
    reader = parser_impl.ChunkedReader()
    assert reader.feed(head + body + after, len(head)) == len(head) + len(body)
    assert reader.feed(bytearray(b"")) == -1  # nothing more to read is not an error
    reader = parser_impl.ChunkedReader()
    assert reader.feed(memoryview(bytearray(body))) == len(body)


def test_chunked_large_chunk_skips_data(parser_impl: ModuleType) -> None:
    reader = parser_impl.ChunkedReader()
    assert reader.feed(b"100000\r\n") == -1
    data = b"x" * 0x40000
    for _ in range(4):
        assert reader.feed(data) == -1
    assert reader.feed(b"\r\n0\r\n\r\n") == 7
    assert reader.done


def test_chunked_start_past_the_end(parser_impl: ModuleType) -> None:
    reader = parser_impl.ChunkedReader()
    assert reader.feed(b"0\r\n", 3) == -1
    assert reader.feed(b"0\r\n", 10) == -1
    with pytest.raises(ValueError):
        reader.feed(b"0\r\n", -1)


MALFORMED_CHUNKED = [
    pytest.param(b"g\r\n", "invalid chunk size", id="non-hex"),
    pytest.param(b"\r\n", "invalid chunk size", id="empty-size"),
    pytest.param(b";ext\r\n", "invalid chunk size", id="extension-without-size"),
    pytest.param(b"-1\r\n", "invalid chunk size", id="negative"),
    pytest.param(b"0x5\r\n", "invalid chunk size", id="hex-prefix"),
    pytest.param(b"5 \r\nhello\r\n", "invalid chunk size", id="space-after-size"),
    pytest.param(b" 5\r\nhello\r\n", "invalid chunk size", id="space-before-size"),
    pytest.param(b"5\nhello\r\n", "invalid chunk size", id="bare-lf-after-size"),
    pytest.param(b"5\r\rhello\r\n", "invalid chunk size line ending", id="cr-cr"),
    pytest.param(b"5;a\nhello", "invalid character in chunk extension", id="bare-lf-in-ext"),
    pytest.param(b"5;a\x00\r\nhello", "invalid character in chunk extension", id="nul-in-ext"),
    # chunk extensions (RFC 9112 7.1.1)
    pytest.param(b"5\t\r\nhello", "invalid chunk size", id="tab-after-size"),
    pytest.param(b"5 x\r\nhello", "invalid chunk size", id="space-then-garbage"),
    pytest.param(b"5 5\r\nhello", "invalid chunk size", id="space-inside-size"),
    pytest.param(b"5;\r\nhello", "empty chunk extension name", id="bare-semicolon"),
    pytest.param(b"5 ; \r\nhello", "empty chunk extension name", id="bare-semicolon-bws"),
    pytest.param(b"5;;a\r\nhello", "empty chunk extension name", id="two-semicolons"),
    pytest.param(b"5;a;\r\nhello", "empty chunk extension name", id="trailing-semicolon"),
    pytest.param(b"5;=b\r\nhello", "empty chunk extension name", id="value-without-name"),
    pytest.param(b"5;a=\r\nhello", "empty chunk extension value", id="empty-value"),
    pytest.param(b"5;a = ;b\r\nhello", "empty chunk extension value", id="empty-value-bws"),
    pytest.param(b"5;a\xe9\r\nhello", "invalid character in chunk extension",
                 id="obs-text-in-name"),
    pytest.param(b"5;\xe9\r\nhello", "invalid character in chunk extension",
                 id="obs-text-for-name"),
    pytest.param(b"5;a@b\r\nhello", "invalid character in chunk extension", id="at-in-name"),
    pytest.param(b"5;a b\r\nhello", "invalid character in chunk extension", id="space-in-name"),
    pytest.param(b"5;a \r\nhello", "invalid character in chunk extension",
                 id="whitespace-after-name"),
    pytest.param(b"5;a=b c\r\nhello", "invalid character in chunk extension",
                 id="space-in-value"),
    pytest.param(b"5;a=b\t\r\nhello", "invalid character in chunk extension",
                 id="whitespace-after-value"),
    pytest.param(b"5;a=\"b\"\t\r\nhello", "invalid character in chunk extension",
                 id="whitespace-after-quoted"),
    pytest.param(b"5;a=b=c\r\nhello", "invalid character in chunk extension", id="two-equals"),
    pytest.param(b"5;a==b\r\nhello", "invalid character in chunk extension",
                 id="equals-for-value"),
    pytest.param(b"5;a=b\"\r\nhello", "invalid character in chunk extension",
                 id="quote-in-token"),
    pytest.param(b"5;a=\"b\"c\r\nhello", "invalid character in chunk extension",
                 id="token-after-quoted"),
    pytest.param(b"5;a=\xe9\r\nhello", "invalid character in chunk extension",
                 id="obs-text-value"),
    pytest.param(b"5;a=(b)\r\nhello", "invalid character in chunk extension",
                 id="separator-value"),
    pytest.param(b"5;a=\"b\r\nhello\r\n0\r\n\r\n", "invalid quoted string in chunk extension",
                 id="unterminated-quoted"),
    pytest.param(b"5;a=\"b\\\r\nhello", "invalid quoted string in chunk extension",
                 id="unterminated-quoted-pair"),
    pytest.param(b"5;a=\"b\x00\"\r\nhello", "invalid quoted string in chunk extension",
                 id="nul-in-quoted"),
    pytest.param(b"5;a=\"b\x7f\"\r\nhello", "invalid quoted string in chunk extension",
                 id="del-in-quoted"),
    pytest.param(b"5;a=\"b\\\x01\"\r\nhello", "invalid quoted string in chunk extension",
                 id="control-in-quoted-pair"),
    pytest.param(b"5;a=\"b\nc\"\r\nhello", "invalid quoted string in chunk extension",
                 id="bare-lf-in-quoted"),
    pytest.param(b"5;\"a\"\r\nhello", "invalid character in chunk extension",
                 id="quoted-name"),
    pytest.param(b"5;" + b"e" * 4094 + b"\r\n", "chunk extension too long",
                 id="extension-one-over-limit"),
    pytest.param(b"5;a=b;" + b" " * 4100 + b"\r\n", "chunk extension too long",
                 id="ext-whitespace-too-long"),
    pytest.param(b"5" + b" " * 4100 + b";a\r\n", "chunk extension too long",
                 id="bws-after-size-too-long"),
    pytest.param(b"5;a=\"" + b"q" * 4100 + b"\"\r\n", "chunk extension too long",
                 id="quoted-too-long"),
    pytest.param(b"5;" + b"e" * 4100 + b"\r\n", "chunk extension too long", id="ext-too-long"),
    pytest.param(b"1000000000000000\r\n", "chunk size too large", id="sixteen-digits"),
    pytest.param(b"5\r\nhelloX\r\n0\r\n\r\n", "chunk data longer than its size",
                 id="data-too-long"),
    pytest.param(b"5\r\nhello\n0\r\n\r\n", "chunk data longer than its size",
                 id="bare-lf-after-data"),
    pytest.param(b"5\r\nhello\r0\r\n\r\n", "chunk data not followed by CRLF",
                 id="bare-cr-after-data"),
    pytest.param(b"0\r\nX-A: 1\n\r\n", "invalid character in chunked trailer",
                 id="bare-lf-in-trailer"),
    pytest.param(b"0\r\nX-A: \x01\r\n\r\n", "invalid character in chunked trailer",
                 id="control-in-trailer"),
    pytest.param(b"0\r\nX-A: 1\rX\r\n\r\n", "bare CR in chunked trailer",
                 id="bare-cr-in-trailer"),
    pytest.param(b"0\r\n" + b"X-A: aaaaaaaaaaa\r\n" * 2000 + b"\r\n", "chunked trailer too large",
                 id="trailer-too-large"),
    pytest.param(b"0\r\nno colon\r\n\r\n", "invalid chunked trailer field name",
                 id="trailer-space-in-name"),
    pytest.param(b"0\r\nnocolon\r\n\r\n", "chunked trailer line without a colon",
                 id="trailer-without-colon"),
    pytest.param(b"0\r\n: value\r\n\r\n", "invalid chunked trailer field name",
                 id="trailer-empty-name"),
    pytest.param(b"0\r\nX-A : 1\r\n\r\n", "invalid chunked trailer field name",
                 id="trailer-space-before-colon"),
    pytest.param(b"0\r\nX-A: 1\r\n folded\r\n\r\n", "invalid chunked trailer field name",
                 id="trailer-obs-fold"),
]


@pytest.mark.parametrize(("body", "reason"), MALFORMED_CHUNKED)
def test_chunked_malformed(parser_impl: ModuleType, body: bytes, reason: str) -> None:
    splits = range(len(body) + 1) if len(body) < 200 else [0, 1, len(body) // 2, len(body)]
    for split in splits:
        reader = parser_impl.ChunkedReader()
        with pytest.raises(parser_impl.ParseError) as info:
            reader.feed(body[:split])
            reader.feed(body[split:])
        assert (info.value.status, info.value.reason) == (400, reason), split


def test_chunked_data_after_the_end(parser_impl: ModuleType) -> None:
    reader = parser_impl.ChunkedReader()
    assert reader.feed(b"0\r\n\r\n") == 5
    assert reader.feed(b"") == -1
    with pytest.raises(parser_impl.ParseError) as info:
        reader.feed(b"x")
    assert info.value.reason == "data after the end of a chunked body"


# --------------------------------------------------------------------------------------------
# the API both implementations share


def test_parse_error(parser_impl: ModuleType) -> None:
    exc = parser_impl.ParseError(431, "too many headers")
    assert isinstance(exc, Exception)
    assert (exc.status, exc.reason, exc.args) == (431, "too many headers", (431, "too many headers"))
    assert str(exc) == "431: too many headers"


def test_limits_are_attributes(parser_impl: ModuleType) -> None:
    parser = parser_impl.RequestParser(1, 2, 3, True)
    assert (parser.max_request_line, parser.max_header_bytes, parser.max_headers,
            parser.underscores_in_headers) == (1, 2, 3, True)
    defaults = parser_impl.RequestParser()
    assert (defaults.max_request_line, defaults.max_header_bytes, defaults.max_headers,
            defaults.underscores_in_headers) == (8192, 32768, 100, False)
    response = parser_impl.ResponseParser()
    assert (response.max_header_bytes, response.max_headers) == (65536, 200)


def test_any_buffer_is_accepted(parser_impl: ModuleType) -> None:
    request = head_lines("GET /a HTTP/1.1", "Host: h")
    response = head_lines("HTTP/1.1 200 OK", "Content-Length: 0")
    body = b"1\r\nx\r\n0\r\n\r\n"

    def strided(data: bytes) -> memoryview:  # a view that is not contiguous
        return memoryview(bytes(b for c in data for b in (c, 0)))[::2]

    assert parser_impl.RequestParser().parse(strided(request)).raw == request
    assert parser_impl.ResponseParser().parse(strided(response)).raw == response
    assert parser_impl.ChunkedReader().feed(strided(body)) == len(body)
    assert parser_impl.ChunkedReader().feed(bytearray(body), 0) == len(body)


def test_parse_rejects_text(parser_impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        parser_impl.RequestParser().parse("GET / HTTP/1.1\r\n\r\n")
