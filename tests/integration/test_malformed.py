"""End to end: bad requests get a clear error, nothing is forwarded, nothing is lost.

Every case is sent raw to fastgw (a real process). It must answer the expected status with
``Connection: close`` and a JSON error body, close the connection, and the backend must have
received nothing: no byte and not even a connection. To be sure a late forward would have been
seen, a sentinel request follows each case and the backend's records must hold only that.
"""

from __future__ import annotations

import threading

import pytest

from tests.support.backend import MIB
from tests.support.client import Client, ConnectionClosed, build_request

GATEWAY_OVERRIDES = {"limits": {"max_body_bytes": "1MiB"}}

H = b"Host: test.local"


def get(*headers: bytes, line: bytes = b"GET /nope HTTP/1.1") -> bytes:
    return line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def post_chunked(body: bytes) -> bytes:
    return get(H, b"Transfer-Encoding: chunked", line=b"POST /nope HTTP/1.1") + body


CASES = {
    # framing
    "cl_and_te": (get(H, b"Content-Length: 5", b"Transfer-Encoding: chunked",
                      line=b"POST /nope HTTP/1.1") + b"5\r\nhello\r\n0\r\n\r\n", {400}),
    "te_and_cl": (get(H, b"Transfer-Encoding: chunked", b"Content-Length: 5",
                      line=b"POST /nope HTTP/1.1") + b"5\r\nhello\r\n0\r\n\r\n", {400}),
    "cl_differing_lines": (get(H, b"Content-Length: 5", b"Content-Length: 6",
                               line=b"POST /nope HTTP/1.1") + b"hello!", {400}),
    "cl_differing_list": (get(H, b"Content-Length: 5, 6", line=b"POST /nope HTTP/1.1")
                          + b"hello!", {400}),
    "cl_not_a_number": (get(H, b"Content-Length: abc", line=b"POST /nope HTTP/1.1"), {400}),
    "cl_negative": (get(H, b"Content-Length: -1", line=b"POST /nope HTTP/1.1"), {400}),
    "cl_plus_sign": (get(H, b"Content-Length: +5", line=b"POST /nope HTTP/1.1") + b"hello", {400}),
    "cl_hex": (get(H, b"Content-Length: 0x5", line=b"POST /nope HTTP/1.1") + b"hello", {400}),
    "cl_empty": (get(H, b"Content-Length: ", line=b"POST /nope HTTP/1.1"), {400}),
    "cl_inner_space": (get(H, b"Content-Length: 1 2", line=b"POST /nope HTTP/1.1"), {400}),
    "cl_overflow": (get(H, b"Content-Length: 99999999999999999999999999999",
                        line=b"POST /nope HTTP/1.1"), {400, 413}),
    "te_gzip": (get(H, b"Transfer-Encoding: gzip", line=b"POST /nope HTTP/1.1") + b"hello", {400}),
    "te_chunked_then_gzip": (get(H, b"Transfer-Encoding: chunked, gzip", line=b"POST /nope HTTP/1.1")
                             + b"0\r\n\r\n", {400}),
    "te_unknown": (get(H, b"Transfer-Encoding: bogus", line=b"POST /nope HTTP/1.1"), {400}),
    "te_chunked_twice": (get(H, b"Transfer-Encoding: chunked, chunked", line=b"POST /nope HTTP/1.1")
                         + b"0\r\n\r\n", {400}),
    "te_lines_chunked_then_gzip": (get(H, b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
                                       line=b"POST /nope HTTP/1.1") + b"0\r\n\r\n", {400}),
    # only chunked is implemented: another coding is 501 (RFC 9112 6.1), chunked;x is 400
    "te_gzip_then_chunked": (get(H, b"Transfer-Encoding: gzip, chunked", line=b"POST /nope HTTP/1.1")
                             + b"0\r\n\r\n", {501}),
    "te_gzip_line_then_chunked_line": (get(H, b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked",
                                           line=b"POST /nope HTTP/1.1") + b"0\r\n\r\n", {501}),
    "te_chunked_with_parameter": (get(H, b"Transfer-Encoding: chunked;x=1", line=b"POST /nope HTTP/1.1")
                                  + b"0\r\n\r\n", {400}),
    # chunked bodies (small: validated before an upstream is chosen)
    "chunk_size_not_hex": (post_chunked(b"zz\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_size_negative": (post_chunked(b"-5\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_size_0x": (post_chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_size_empty": (post_chunked(b"\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_size_overflow": (post_chunked(b"fffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
                            {400, 413}),
    "chunk_data_longer_than_size": (post_chunked(b"5\r\nhelloXX\r\n0\r\n\r\n"), {400}),
    "chunk_missing_crlf": (post_chunked(b"5\r\nhello0\r\n\r\n"), {400}),
    "chunk_size_bare_lf": (post_chunked(b"5\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_data_bare_lf": (post_chunked(b"5\r\nhello\n0\r\n\r\n"), {400}),
    "chunk_bad_trailer": (post_chunked(b"5\r\nhello\r\n0\r\nno colon\r\n\r\n"), {400}),
    "chunk_after_valid_chunks": (post_chunked(b"5\r\nhello\r\n6\r\n world\r\nq\r\n\r\n"), {400}),
    # chunk extensions (RFC 9112 7.1.1): ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ]
    "chunk_ext_bare_semicolon": (post_chunked(b"5;\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_ext_empty_value": (post_chunked(b"5;a=\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_ext_bad_name": (post_chunked(b"5;a@b=c\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_ext_space_in_value": (post_chunked(b"5;a=b c\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_ext_unterminated_quote": (post_chunked(b"5;a=\"b\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_ext_space_after_size": (post_chunked(b"5 \r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_ext_on_last_chunk": (post_chunked(b"5\r\nhello\r\n0;\"x\"\r\n\r\n"), {400}),
    # line endings
    "bare_cr_request_line": (b"GET /nope HTTP/1.1\rHost: test.local\r\n\r\n", {400}),
    "bare_cr_in_value": (get(H, b"X-A: a\rb"), {400}),
    "bare_cr_end_of_head": (b"GET /nope HTTP/1.1\r\nHost: test.local\r\n\r\r\n\r\n", {400}),
    "bare_lf_everywhere": (b"GET /nope HTTP/1.1\nHost: test.local\n\n", {400}),
    "bare_lf_one_line": (b"GET /nope HTTP/1.1\r\nHost: test.local\nX-A: b\r\n\r\n", {400}),
    "bare_lf_request_line": (b"GET /nope HTTP/1.1\nHost: test.local\r\n\r\n", {400}),
    "bare_lf_end_of_head": (b"GET /nope HTTP/1.1\r\nHost: test.local\r\n\n", {400}),
    # header syntax
    "space_before_colon": (get(b"Host : test.local"), {400}),
    "space_before_colon_other": (get(H, b"X-A : b"), {400}),
    "tab_before_colon": (get(H, b"X-A\t: b"), {400}),
    "obs_fold_space": (get(H, b"X-A: a", b" b"), {400}),
    "obs_fold_tab": (get(H, b"X-A: a", b"\tb"), {400}),
    "whitespace_before_first_header": (get(b" X-A: b", H), {400}),
    "nul_in_value": (get(H, b"X-A: a\x00b"), {400}),
    "soh_in_value": (get(H, b"X-A: a\x01b"), {400}),
    "esc_in_value": (get(H, b"X-A: a\x1bb"), {400}),
    "del_in_value": (get(H, b"X-A: a\x7fb"), {400}),
    "nul_in_host": (get(b"Host: test\x00.local"), {400}),
    "name_bad_char": (get(H, b"X(A): b"), {400}),
    "name_with_space": (get(H, b"X A: b"), {400}),
    "name_empty": (get(H, b": b"), {400}),
    "name_non_ascii": (get(H, b"X\xffA: b"), {400}),
    "name_with_slash": (get(H, b"X/A: b"), {400}),
    "line_without_colon": (get(H, b"X-A b"), {400}),
    # method and request line
    "method_bad_char": (get(H, line=b"GE(T /nope HTTP/1.1"), {400}),
    "method_at_sign": (get(H, line=b"G@T /nope HTTP/1.1"), {400}),
    "method_non_ascii": (get(H, line=b"G\xc3\x89T /nope HTTP/1.1"), {400}),
    "method_ctl": (get(H, line=b"G\x01T /nope HTTP/1.1"), {400}),
    "method_empty": (get(H, line=b" /nope HTTP/1.1"), {400}),
    "request_line_double_space": (get(H, line=b"GET  /nope HTTP/1.1"), {400}),
    "request_line_trailing_space": (get(H, line=b"GET /nope HTTP/1.1 "), {400}),
    "request_line_extra_token": (get(H, line=b"GET /nope HTTP/1.1 extra"), {400}),
    "request_line_no_version": (get(H, line=b"GET /nope"), {400, 505}),
    "version_lowercase": (get(H, line=b"GET /nope http/1.1"), {400}),
    "version_without_minor": (get(H, line=b"GET /nope HTTP/1"), {400}),
    "version_garbage": (get(H, line=b"GET /nope HTTP/x.y"), {400}),
    "nul_in_target": (get(H, line=b"GET /n\x00pe HTTP/1.1"), {400}),
    "ctl_in_target": (get(H, line=b"GET /n\x7fpe HTTP/1.1"), {400}),
    # request-target bytes outside RFC 3986
    "utf8_in_target": (get(H, line=b"GET /caf\xc3\xa9 HTTP/1.1"), {400}),
    "obs_text_in_query": (get(H, line=b"GET /nope?q=\xff HTTP/1.1"), {400}),
    "fragment_in_target": (get(H, line=b"GET /nope#x HTTP/1.1"), {400}),
    "bad_escape_in_target": (get(H, line=b"GET /n%zzpe HTTP/1.1"), {400}),
    "brace_in_target": (get(H, line=b"GET /n{o}pe HTTP/1.1"), {400}),
    "backslash_in_target": (get(H, line=b"GET /n\\ope HTTP/1.1"), {400}),
    "utf8_in_absolute_path": (get(H, line=b"GET http://test.local/caf\xc3\xa9 HTTP/1.1"), {400}),
    # empty lines before a request line: a request line's worth at most
    "too_many_empty_lines": (b"\r\n" * 4097 + get(H), {400}),
    # framing/routing headers the gateway would have to re-spell
    "upgrade_invalid_protocol": (get(H, b"Connection: upgrade", b"Upgrade: web socket"), {400}),
    "expect_continue_and_other": (get(H, b"Content-Length: 5", b"Expect: 100-continue, x",
                                      line=b"POST /nope HTTP/1.1") + b"hello", {417}),
    # Host
    "host_missing": (get(b"X-A: b"), {400}),
    "host_repeated": (get(H, b"Host: other.local"), {400}),
    "host_repeated_same_value": (get(H, H), {400}),
    "host_invalid_value": (get(b"Host: bad host"), {400}),
    # versions
    "http_2_0": (get(H, line=b"GET /nope HTTP/2.0"), {505}),
    "http_1_2": (get(H, line=b"GET /nope HTTP/1.2"), {505}),
    "http_0_9": (get(H, line=b"GET /nope HTTP/0.9"), {505}),
    "http_3_0": (get(H, line=b"GET /nope HTTP/3.0"), {505}),
    # limits (defaults: request line 8192, header section 32768 bytes, 100 headers; body 1 MiB)
    "request_line_too_long": (get(H, line=b"GET /" + b"a" * 9000 + b" HTTP/1.1"), {414}),
    "header_section_too_big": (get(H, b"X-Big: " + b"b" * 40000), {431}),
    "header_section_too_big_many_lines": (get(H, *[b"X-H%d: %s" % (i, b"v" * 500)
                                                   for i in range(80)]), {431}),
    "too_many_headers": (get(H, *[b"X-H%d: v" % i for i in range(150)]), {431}),
    "too_many_headers_by_one": (get(H, *[b"X-H%d: v" % i for i in range(100)]), {431}),
    "body_over_max_body_bytes": (get(H, b"Content-Length: %d" % (2 * MIB),
                                     line=b"POST /nope HTTP/1.1"), {413}),
}


def send_ignoring_close(c: Client, data: bytes) -> None:
    """Send; the proxy may answer and close before it read everything."""
    try:
        c.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def assert_rejected(resp, statuses: set[int]) -> None:
    assert resp.status in statuses, f"expected {sorted(statuses)}, got {resp.status}: {resp.body!r}"
    assert "close" in resp.connection_tokens(), f"no Connection: close in {resp.headers}"
    body = resp.json()
    assert body.get("status") == resp.status and isinstance(body.get("error"), str), body


def assert_nothing_reached_backend(shared, allowed: list[str] = ()) -> None:
    """Send a sentinel request; after it, the backend holds only ``allowed`` + the sentinel."""
    with shared.client() as c:
        resp = c.request("GET", "/sentinel")
        assert resp.status == 200, resp
    backend = shared.backend
    backend.wait_for(lambda: any(r.target == "/sentinel" and r.complete for r in backend.requests),
                     5, "the sentinel request at the backend")
    with backend._cond:
        targets = [r.target for r in backend.requests]
        expected_bytes = sum(len(r.raw_head) + len(r.raw_body or b"") for r in backend.requests)
        conns = dict(backend.connections)
        sentinel_conns = {r.conn_id for r in backend.requests}
        received = backend.bytes_received
    assert targets == [*allowed, "/sentinel"], f"the backend received {targets}\n{backend.summary()}"
    assert received == expected_bytes, (
        f"the backend received {received} bytes, the allowed requests are {expected_bytes}\n"
        f"{backend.summary()}")
    assert set(conns) <= sentinel_conns, (
        f"the backend accepted a connection no allowed request used\n{backend.summary()}")


@pytest.mark.parametrize("name", list(CASES))
def test_rejected_and_not_forwarded(shared, name):
    raw, statuses = CASES[name]
    with shared.client() as c:
        send_ignoring_close(c, raw)
        try:
            resp = c.read_response(timeout=5)
        except ConnectionClosed as exc:
            pytest.fail(f"connection closed without an error response: {exc}")
        assert_rejected(resp, statuses)
        c.assert_closed(timeout=5)
    assert_nothing_reached_backend(shared)


def test_pipelined_good_then_bad(shared):
    """The good request before a bad one is answered; nothing of the bad one is forwarded."""
    good = build_request("POST", "/echo", body=b"good body")
    bad = CASES["cl_and_te"][0]
    with shared.client() as c:
        c.send(good + bad + build_request("GET", "/never"))
        first = c.read_response()
        assert (first.status, first.body) == (200, b"good body"), first
        second = c.read_response()
        assert_rejected(second, {400})
        c.assert_closed(timeout=5)
    assert_nothing_reached_backend(shared, allowed=["/echo"])


def test_bad_after_good_on_keep_alive_connection(shared):
    with shared.client() as c:
        assert c.request("GET", "/good").status == 200
        c.send(CASES["obs_fold_space"][0])
        assert_rejected(c.read_response(), {400})
        c.assert_closed(timeout=5)
    assert_nothing_reached_backend(shared, allowed=["/good"])


def test_chunked_body_over_max_body_bytes(shared):
    """A streamed chunked body that grows past max_body_bytes: 413, and the backend never gets a
    complete request (it may have seen the start of the stream)."""
    with shared.client(timeout=10) as c:
        def upload() -> None:
            try:
                c.send(build_request("POST", "/stream-in", [("Transfer-Encoding", "chunked")]))
                for _ in range(4):  # 2 MiB in 512 KiB chunks
                    c.send(b"80000\r\n" + b"z" * 0x80000 + b"\r\n")
                c.send(b"0\r\n\r\n")
            except OSError:
                pass

        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        try:
            resp = c.read_response(timeout=10)
        except ConnectionClosed as exc:
            pytest.fail(f"connection closed without a 413: {exc}")
        assert resp.status == 413, resp
        assert "close" in resp.connection_tokens(), resp.headers
        sender.join(timeout=10)
    with shared.client() as c:
        assert c.request("GET", "/sentinel").status == 200
    backend = shared.backend
    backend.wait_for(lambda: any(r.target == "/sentinel" for r in backend.requests), 5,
                     "the sentinel request")
    assert not any(r.target == "/stream-in" and r.complete for r in backend.complete_requests()), \
        backend.summary()

    # The next test counts bytes at the backend from zero: let this upload's connection finish.
    def upload_connections_closed() -> bool:
        ids = {r.conn_id for r in backend.requests if r.target == "/stream-in"}
        return not ids & backend.open_connection_ids()

    backend.wait_for(upload_connections_closed, 10, "the cut upload's backend connection to close")


def test_expect_continue_with_body_over_limit_gets_413_not_100(shared):
    """The proxy answers Expect: 100-continue itself, so it must refuse a declared body that is
    over max_body_bytes instead of inviting it."""
    with shared.client() as c:
        c.send(get(H, b"Content-Length: %d" % (2 * MIB), b"Expect: 100-continue",
                   line=b"POST /nope HTTP/1.1"))
        resp = c.read_response(timeout=5)
        assert_rejected(resp, {413})
        c.assert_closed(timeout=5)
    assert_nothing_reached_backend(shared)


# -- the limits are limits, not lower: just-valid requests pass --------------------------------

ACCEPTED = {
    "tab_in_value": get(H, b"X-A: a\tb"),
    "obs_text_in_value": get(H, b"X-A: caf\xc3\xa9"),
    "ows_around_value": get(b"Host:   test.local  ", b"X-A:\tb\t"),
    "te_chunked_any_case": get(H, b"Transfer-Encoding: Chunked", line=b"POST /echo HTTP/1.1")
    + b"2\r\nok\r\n0\r\n\r\n",
    "request_line_under_limit": get(H, line=b"GET /" + b"a" * 8000 + b" HTTP/1.1"),
    "header_section_under_limit": get(H, b"X-Big: " + b"b" * 30000),
    "one_hundred_headers": get(H, *[b"X-H%d: v" % i for i in range(99)]),
    "http_1_0": get(H, line=b"GET /ok HTTP/1.0"),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_valid_edge_requests_accepted(shared, name):
    with shared.client() as c:
        c.send(ACCEPTED[name])
        method = ACCEPTED[name].split(b" ", 1)[0].decode()
        resp = c.read_response(method)
    assert resp.status == 200, f"{name}: {resp.status} {resp.body!r}"
    assert len(shared.backend.wait_requests(1)) == 1


def test_body_of_exactly_max_body_bytes_accepted(shared):
    with shared.client(timeout=30) as c:
        resp = c.request("POST", "/stream-in", body=b"m" * MIB)
    assert resp.status == 200, resp
    assert resp.json()["length"] == MIB


# -- RFC 9110/9112 strictness: what is accepted reaches the backend in the gateway's spelling ---


def served_and_forwarded(shared, raw: bytes, responses: int) -> list:
    """Send raw, read ``responses`` 200s; return the backend's records of them."""
    with shared.client() as c:
        c.send(raw)
        for _ in range(responses):
            resp = c.read_response()
            assert resp.status == 200, resp
    return shared.backend.wait_requests(responses)


def test_leading_empty_lines_are_ignored(shared):
    """RFC 9112 2.2: CRLFs before the request line, at the start of a connection."""
    rec, = served_and_forwarded(shared, b"\r\n\r\n" + get(H, line=b"GET /first HTTP/1.1"), 1)
    assert rec.target == "/first"
    assert rec.raw_head.startswith(b"GET /first HTTP/1.1\r\nHost: test.local\r\n")


def test_stray_crlf_after_a_body_before_a_pipelined_request(shared):
    """A client that ends a Content-Length body with an extra CRLF: the next request is served,
    and the backend never sees the stray bytes."""
    first = get(H, b"Content-Length: 5", line=b"POST /echo HTTP/1.1") + b"hello"
    second = get(H, line=b"GET /second HTTP/1.1")
    one, two = served_and_forwarded(shared, first + b"\r\n" + second, 2)
    assert (one.target, one.body, two.target) == ("/echo", b"hello", "/second")
    assert one.raw_body == b"hello"
    assert two.raw_head.startswith(b"GET /second HTTP/1.1\r\n")
    with shared.backend._cond:
        total = sum(len(r.raw_head) + len(r.raw_body or b"") for r in shared.backend.requests)
        assert shared.backend.bytes_received == total


def test_stray_crlf_between_requests_on_a_kept_connection(shared):
    with shared.client() as c:
        assert c.request("GET", "/one").status == 200
        c.send(b"\r\n")
        c.send(b"\r\n" + get(H, line=b"GET /two HTTP/1.1"))
        assert c.read_response().status == 200
    assert [r.target for r in shared.backend.wait_requests(2)] == ["/one", "/two"]


def test_transfer_encoding_with_empty_elements_forwarded_as_chunked(shared):
    body = b"5\r\nhello\r\n0\r\n\r\n"
    for n, codings in enumerate(([b",chunked"], [b"chunked, "], [b"chunked,,"],
                                  [b"", b" Chunked "])):
        lines = [b"Transfer-Encoding: " + v for v in codings]
        raw = get(H, *lines, line=b"POST /echo/%d HTTP/1.1" % n) + body
        with shared.client() as c:
            c.send(raw)
            resp = c.read_response()
            assert (resp.status, resp.body) == (200, b"hello"), resp
        rec = shared.backend.wait_requests(n + 1)[n]
        assert rec.values("Transfer-Encoding") == ["chunked"], rec.raw_head
        assert b"\r\nTransfer-Encoding: chunked\r\n" in rec.raw_head, rec.raw_head
        assert rec.raw_body == body


def test_valid_chunk_extensions_pass_unchanged(shared):
    """Chunk bytes (extensions included) are forwarded as received once they are valid."""
    body = b"5;name=value;flag\r\nhello\r\n6;q=\"a b\"\r\n world\r\n0\r\n\r\n"
    rec, = served_and_forwarded(
        shared, get(H, b"Transfer-Encoding: chunked", line=b"POST /echo HTTP/1.1") + body, 1)
    assert (rec.body, rec.raw_body) == (b"hello world", body)


def test_expect_continue_in_another_spelling_is_answered_not_forwarded(shared):
    with shared.client() as c:
        c.send(get(H, b"Content-Length: 5", b"Expect: , 100-Continue",
                   line=b"POST /echo HTTP/1.1"))
        interim = c.read_response()
        assert interim.status == 100, interim
        c.send(b"hello")
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"hello"), resp
    rec, = shared.backend.wait_requests(1)
    assert rec.values("Expect") == [], rec.raw_head


def test_non_ascii_target_gets_400_and_nothing_reaches_the_backend(shared):
    with shared.client() as c:
        send_ignoring_close(c, get(H, line=b"GET /\xe2\x82\xac HTTP/1.1"))
        resp = c.read_response(timeout=5)
        assert_rejected(resp, {400})
        assert resp.json()["error"] == "invalid request target"
        c.assert_closed(timeout=5)
    assert_nothing_reached_backend(shared)
