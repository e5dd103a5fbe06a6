"""Property tests: the request parser against h11, and the compiled parser against its twin.

h11 (``h11.Connection(h11.SERVER)``) is an independent, careful reading of RFC 9110/9112. On
requests built from the valid grammar both must accept and agree on method, target, headers and
framing. On mutated and garbage heads, whenever fastgw accepts, h11 must accept too, except in
the cases below where fastgw is deliberately looser; each is a named predicate with its reason.
(fastgw is stricter than h11 in many places: bare LF line endings, control characters in field
values, Transfer-Encoding with Content-Length, HTTP/1.0 with Transfer-Encoding, HTTP versions
other than 1.0 and 1.1, Host syntax, request-target bytes outside RFC 3986 (h11 allows any
VCHAR), chunk extensions. Those are not exceptions: they only make fastgw reject.)

The compiled extension must match the pure twin exactly: same head attributes, or the same
error status and reason, on any bytes, whole or cut short.
"""

from __future__ import annotations

import itertools
import re
from types import ModuleType
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgw._core import pure_parser

SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHAR = bytes(range(0x21, 0x7F))
OBS_TEXT = bytes(range(0x80, 0x100))
# request-target characters (RFC 3986 path and query); '%' only in an escape (below)
URI_CHARS = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
             b"-._~!$&'()*+,;=:@/?")
# names whose fields the generator adds itself, with valid values (and Expect, which it leaves
# out: any expectation but 100-continue is a 417)
FRAMING = {b"host", b"content-length", b"transfer-encoding", b"expect"}
# names the gateway owns in a request, spelled as clients forge them: dropped, or (names with
# "_", when underscores_in_headers allows them) kept only if they read as no field it acts on
GATEWAY_NAMES = [
    b"X-Forwarded-For", b"x-forwarded-for", b"X_Forwarded_For", b"X-Forwarded_For",
    b"X_Forwarded-For", b"X-Forwarded-Proto", b"X_Forwarded_Proto", b"x-forwarded_host",
    b"X-Forwarded-Port", b"X-Forwarded-Prefix", b"X-FORWARDED-SERVER", b"x-forwarded-",
    b"x_forwarded_", b"X-Forwarded", b"Forwarded", b"forwarded", b"Forwarded_", b"X-Real-IP",
    b"X_Real_Ip", b"x-real-ips", b"HTTP2-Settings", b"http2_settings", b"Content_Length",
    b"Transfer_Encoding", b"Keep_Alive", b"X_Custom_Header", b"_", b"a_b", b"Host_",
]

# --------------------------------------------------------------------------------------------
# generators


def tokens(max_size: int = 12) -> st.SearchStrategy[bytes]:
    return st.text(alphabet=TCHAR, min_size=1, max_size=max_size).map(str.encode)


methods = st.one_of(
    st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"]),
    tokens(),
)
uri_pieces = st.one_of(
    st.binary(min_size=1, max_size=8).map(lambda raw: bytes(URI_CHARS[b % len(URI_CHARS)]
                                                             for b in raw)),
    st.tuples(st.sampled_from(list(b"0123456789abcdefABCDEF")),
              st.sampled_from(list(b"0123456789abcdefABCDEF"))).map(
        lambda pair: b"%" + bytes(pair)),
)
origin_targets = st.builds(lambda rest: b"/" + b"".join(rest), st.lists(uri_pieces, max_size=6))
absolute_targets = st.builds(
    lambda scheme, host, path: scheme + host + path,
    st.sampled_from([b"http://", b"https://", b"HTTP://"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=15).map(
        str.encode),
    st.one_of(st.just(b""), origin_targets),
)
field_vchar = st.sampled_from(list(VCHAR + OBS_TEXT)).map(lambda c: bytes([c]))
ows = st.text(alphabet=" \t", max_size=2).map(str.encode)
rarely = st.sampled_from([False] * 9 + [True])


@st.composite
def field_values(draw: st.DrawFn) -> bytes:
    """field-value: field-vchars with single SP/HTAB runs inside, OWS around."""
    words = draw(st.lists(st.lists(field_vchar, min_size=1, max_size=8).map(b"".join),
                          max_size=4))
    inner = b"".join(w + draw(st.sampled_from([b" ", b"\t", b"  "])) for w in words).rstrip(b" \t")
    return draw(ows) + inner + draw(ows)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request, as bytes plus what it holds. Now and then it uses what fastgw accepts
    and h11 does not (see DELIBERATELY_LOOSER), so those exceptions are exercised too."""
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    method = draw(methods)
    target = draw(st.one_of(origin_targets, origin_targets, absolute_targets))
    fields: list[tuple[bytes, bytes]] = []
    for name in draw(st.lists(tokens(20), max_size=12)):
        if name.lower() not in FRAMING:
            fields.append((name, draw(field_values())))
    for name in draw(st.lists(st.sampled_from(GATEWAY_NAMES), max_size=3)):
        fields.insert(draw(st.integers(0, len(fields))), (name, draw(field_values())))
    if version == b"1.1" or draw(st.booleans()):
        # uri-host [":" port] (RFC 9110 7.2): a valid Host; h11 checks only its characters
        host = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", max_size=20))
        host += draw(st.sampled_from(["", ":", ":80", ":8080"]))
        fields.insert(draw(st.integers(0, len(fields))), (b"Host", host.encode()))
    body = b""
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    if framing == "chunked" and version == b"1.1":
        codings = draw(st.sampled_from([[b"chunked"]] * 6 + [[b"Chunked"], [b",chunked"],
                                                             [b"chunked, "], [b"", b"chunked"],
                                                             [b" ,CHUNKED,,"]]))
        fields.extend((b"Transfer-Encoding", coding) for coding in codings)
        body = b"0\r\n\r\n"
    elif framing == "length":
        body = draw(st.binary(max_size=20))
        fields.append((draw(st.sampled_from([b"Content-Length", b"content-length"])),
                       str(len(body)).encode()))
    head = method + b" " + target + b" HTTP/" + version + b"\r\n"
    head += b"".join(name + b":" + value + b"\r\n" for name, value in fields) + b"\r\n"
    if draw(rarely):
        head = b"\r\n" * draw(st.integers(1, 3)) + head
    return {"head": head, "body": body, "method": method, "target": target, "fields": fields}


INTERESTING = [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b",", b";", b"\x00", b"\x01", b"\x0b",
               b"\x0c", b"\x7f", b"\x80", b"\xff", b"/", b"@", b"?", b"#", b"*", b"\r\n ",
               b"\r\n\r\n", b"HTTP/1.0", b"HTTP/2.0", b"chunked", b"close", b"upgrade", b"%",
               b"%4", b"%41", b"\"", b"[", b"="]
EXTRA_LINES = [b"Host: other.example", b"Host: a b", b"Content-Length: 5", b"Content-Length: x",
               b"Content-Length: 1, 2", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
               b"Transfer-Encoding: gzip, chunked", b"Connection: close, upgrade",
               b"Upgrade: websocket", b"Expect: 100-continue", b"X-A : b", b" folded",
               b"X-A: \x00", b"X-A: \x01", b"nocolon", b": empty", b"X-Forwarded-For: 1.2.3.4",
               b"Transfer-Encoding: ,chunked", b"Transfer-Encoding: chunked;x=1",
               b"Upgrade: , h2c", b"Upgrade: a b", b"Expect: 100-continue, x", b"Expect: ,",
               b"Connection: upgrade", b"Upgrade: h2c", b"Upgrade: websocket, H2C",
               b"Upgrade: h2c/1", b"Upgrade: h2cx", b"Connection: Upgrade, HTTP2-Settings",
               b"HTTP2-Settings: AAMAAABk", b"Expect: foo", b"Expect: 100-CONTINUE",
               b"Expect:", b"X_Forwarded_For: 6.6.6.6", b"X-Forwarded_Proto: https",
               b"X_Forwarded-Host: evil", b"X-Forwarded-Port: 1", b"X-Forwarded-Prefix: /a",
               b"Forwarded: for=1", b"X-Real-IP: 1", b"X_Real_IP: 1", b"X_Custom_Header: 1",
               b"Content_Length: 5", b"Transfer_Encoding: chunked", b"Connection: x_a",
               b"X_A: 1"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request head with one to three edits: bytes inserted, deleted, replaced, or
    whole header lines added or duplicated."""
    data = bytearray(draw(requests())["head"])
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "line", "line", "duplicate"]))
        at = draw(st.integers(0, len(data)))
        if op == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(INTERESTING), st.binary(max_size=2)))
        elif op == "delete" and data:
            del data[at:at + draw(st.integers(1, 3))]
        elif op == "replace" and at < len(data):
            data[at] = draw(st.sampled_from(INTERESTING + [bytes([draw(st.integers(0, 255))])]))[0]
        elif op == "line":
            line_at = data.find(b"\r\n") + 2
            data[line_at:line_at] = draw(st.sampled_from(EXTRA_LINES)) + b"\r\n"
        elif op == "duplicate":
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 2:
                line = lines[draw(st.integers(0, len(lines) - 1))]
                data[at:at] = line + b"\r\n"
    return bytes(data)


# --------------------------------------------------------------------------------------------
# running both parsers


def h11_request(data: bytes) -> h11.Request | None:
    """The Request h11 reads from data, or None if it rejects it or wants more."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    return event if isinstance(event, h11.Request) else None


def fastgw_head(impl: ModuleType, data: bytes) -> Any:
    try:
        return impl.RequestParser().parse(data)
    except impl.ParseError:
        return None


def kept_fields(kept: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for line in kept.split(b"\r\n")[:-1]:
        name, _, value = line.partition(b":")
        out.append((name.lower(), value.strip(b" \t")))
    return out


# --------------------------------------------------------------------------------------------
# fastgw accepts, h11 rejects: the deliberate differences

def leading_empty_lines(head: Any, data: bytes) -> bool:
    """CRLFs before the request line. RFC 9112 2.2: a server SHOULD ignore at least one empty
    line received before the request-line; fastgw ignores up to a request line's worth (and
    head_length counts them). h11 answers "no request line received"."""
    return data.startswith(b"\r\n")


def transfer_coding_list(head: Any, data: bytes) -> bool:
    """A Transfer-Encoding other than one field that says exactly "chunked", that is chunked
    with empty list elements (",chunked") or over several fields (one of them empty). RFC 9110
    5.6.1 has recipients ignore empty elements; fastgw does and forwards "chunked". h11 accepts
    only one field spelled chunked. (Other codings, or chunked with parameters, fastgw rejects
    too: 501 and 400.)"""
    if not head.chunked:
        return False
    values = re.findall(rb"(?im)^transfer-encoding:[ \t]*(.*?)[ \t]*\r$", data)
    return len(values) != 1 or values[0].lower() != b"chunked"


DELIBERATELY_LOOSER = [leading_empty_lines, transfer_coding_list]


def check_against_h11(head: Any, data: bytes) -> None:
    """fastgw accepted data: h11 must too, unless a documented difference explains it."""
    request = h11_request(data)
    if request is None:
        reasons = [rule.__name__ for rule in DELIBERATELY_LOOSER if rule(head, data)]
        assert reasons, f"fastgw accepts a head h11 rejects: {data!r}"
        return
    assert request.method == head.method
    assert request.target == head.target
    values: dict[bytes, list[bytes]] = {}
    for name, value in request.headers.raw_items():
        values.setdefault(name.lower(), []).append(value)
    for name, found in values.items():
        if name not in (b"content-length", b"transfer-encoding"):  # h11 normalizes these
            assert head.header(name) == found[0], name
    for name, value in kept_fields(head.kept):
        assert value in values[name]
    if b"content-length" in values:
        assert head.content_length == int(values[b"content-length"][0])


# --------------------------------------------------------------------------------------------
# the properties


@SETTINGS
@given(request=requests())
def test_valid_requests_agree_with_h11(parser_impl: ModuleType, request: dict[str, Any]) -> None:
    data = request["head"] + request["body"]
    head = parser_impl.RequestParser().parse(data)
    assert head is not None, data
    assert head.method == request["method"]
    assert head.target == request["target"]
    assert head.head_length == len(request["head"])
    first_values: dict[bytes, bytes] = {}
    for name, value in request["fields"]:
        first_values.setdefault(name.lower(), value.strip(b" \t"))
    for name, value in first_values.items():
        assert head.header(name) == value
    check_against_h11(head, data)


@SETTINGS
@given(data=mutated())
def test_mutated_requests_accepted_only_if_h11_accepts(parser_impl: ModuleType,
                                                      data: bytes) -> None:
    head = fastgw_head(parser_impl, data)
    if head is not None:
        check_against_h11(head, data)


@SETTINGS
@given(data=st.one_of(mutated(), st.binary(max_size=200)))
def test_prefixes_never_decide_differently(parser_impl: ModuleType, data: bytes) -> None:
    """A head that is accepted whole is never rejected in pieces; a rejected one is never
    accepted in pieces, and pieces fail with the same status (a head with two faults may name
    either, so only the status is compared, and only when the whole has a single status)."""
    parser = parser_impl.RequestParser()
    try:
        whole = parser.parse(data)
        status = None
    except parser_impl.ParseError as exc:
        whole, status = None, exc.status
    end = whole.head_length if whole is not None else len(data)
    for i in range(end):
        try:
            assert parser.parse(data[:i]) is None, f"prefix {data[:i]!r} gave a head"
        except parser_impl.ParseError as exc:
            assert status is not None, f"prefix {data[:i]!r} of an accepted head: {exc}"
            assert exc.status == status or {exc.status, status} <= {400, 414, 431}, (
                f"prefix {data[:i]!r}: {exc}; whole: {status}")


# compiled == pure, exactly

def outcome(impl: ModuleType, kind: str, data: bytes, limits: dict[str, int]) -> Any:
    parser = (impl.RequestParser if kind == "request" else impl.ResponseParser)(**limits)
    try:
        head = parser.parse(data)
    except impl.ParseError as exc:
        return ("error", exc.status, exc.reason)
    if head is None:
        return None
    names = (pure_parser.RequestHead if kind == "request" else pure_parser.ResponseHead).__slots__
    fields = {name: getattr(head, name) for name in names}
    return ("head", fields, head.header(b"host"), head.header(b"X-a"))


@pytest.mark.parametrize("line", EXTRA_LINES)
@pytest.mark.parametrize("underscores", [False, True])
def test_compiled_matches_pure_on_each_extra_line(compiled_parser: ModuleType, line: bytes,
                                                  underscores: bool) -> None:
    """Every special line alone and next to its underscore twin, in both HTTP versions."""
    twin = line.replace(b"-", b"_", 1)
    for version in (b"1.1", b"1.0"):
        for lines in ([line], [twin, line], [line, b"Connection: upgrade"]):
            data = (b"GET / HTTP/" + version + b"\r\nHost: h\r\n"
                    + b"".join(x + b"\r\n" for x in lines) + b"X-A: 1\r\n\r\n")
            limits = {"underscores_in_headers": underscores}
            assert outcome(compiled_parser, "request", data, limits) == outcome(
                pure_parser, "request", data, limits), data


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([b"200 OK", b"101 Switching Protocols", b"204", b"404 Not Found",
                                   b"599 ", b"302 Found"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    request = draw(requests())
    # reuse the request's fields behind a status line, then edit like mutated()
    fields_part = request["head"].split(b"\r\n", 1)[1]
    data = bytearray(version + b" " + status + b"\r\n" + fields_part)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data[at:at] = draw(st.sampled_from(INTERESTING + EXTRA_LINES))
        else:
            del data[at:at + 1]
    return bytes(data)


LIMITS = st.sampled_from([{}, {}, {"max_headers": 2}, {"max_header_bytes": 40}])


@SETTINGS
@given(data=st.one_of(mutated(), requests().map(lambda r: r["head"]), st.binary(max_size=100)),
       limits=LIMITS, request_line=st.sampled_from([None, 10, 30]), cut=st.integers(0, 10**6),
       underscores=st.booleans())
def test_compiled_matches_pure_on_requests(compiled_parser: ModuleType, data: bytes,
                                           limits: dict[str, int], request_line: int | None,
                                           cut: int, underscores: bool) -> None:
    if request_line is not None:
        limits = {**limits, "max_request_line": request_line}
    limits = {**limits, "underscores_in_headers": underscores}
    for piece in (data, data[:cut % (len(data) + 1)]):
        assert outcome(compiled_parser, "request", piece, limits) == outcome(
            pure_parser, "request", piece, limits), piece


@SETTINGS
@given(data=st.one_of(responses(), st.binary(max_size=100)), limits=LIMITS,
       cut=st.integers(0, 10**6))
def test_compiled_matches_pure_on_responses(compiled_parser: ModuleType, data: bytes,
                                            limits: dict[str, int], cut: int) -> None:
    for piece in (data, data[:cut % (len(data) + 1)]):
        assert outcome(compiled_parser, "response", piece, limits) == outcome(
            pure_parser, "response", piece, limits), piece


@st.composite
def chunked_streams(draw: st.DrawFn) -> bytes:
    out = b""
    extensions = [b"", b";a=b", b";x", b" ;x", b"; a = \"q\\\"\"", b";a=\"\";b", b";", b";a=",
                  b";a ", b" ", b";a=\"x", b";a=b c", b";a=\"\x00\"", b";\xe9"]
    for chunk in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
        out += b"%x" % len(chunk) + draw(st.sampled_from(extensions)) + b"\r\n"
        out += chunk + b"\r\n"
    out += b"0\r\n" + draw(st.sampled_from([b"", b"X-T: 1\r\n", b"X-T: 1\r\nX-U:\r\n",
                                            b"no colon\r\n", b"X:a:b\r\n"])) + b"\r\n"
    data = bytearray(out + b"after")
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.sampled_from(INTERESTING))
    return bytes(data)


def chunked_outcome(impl: ModuleType, pieces: list[bytes]) -> list[Any]:
    reader = impl.ChunkedReader()
    results: list[Any] = []
    try:
        for piece in pieces:
            results.append(reader.feed(piece))
            if reader.done:
                break
    except impl.ParseError as exc:
        results.append((exc.status, exc.reason))
    return results


@SETTINGS
@given(data=chunked_streams(), cuts=st.lists(st.integers(0, 200), max_size=3))
def test_compiled_matches_pure_on_chunked(compiled_parser: ModuleType, data: bytes,
                                          cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert chunked_outcome(compiled_parser, pieces) == chunked_outcome(pure_parser, pieces)


@pytest.mark.parametrize(
    "data",
    [
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n",
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n"),
    ],
)
def test_documented_differences_are_real(parser_impl: ModuleType, data: bytes) -> None:
    """Each exception above is needed: fastgw accepts these and h11 does not."""
    head = parser_impl.RequestParser().parse(data)
    assert head is not None
    assert h11_request(data) is None
    assert any(rule(head, data) for rule in DELIBERATELY_LOOSER)
