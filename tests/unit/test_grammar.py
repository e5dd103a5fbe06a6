"""grammar.py against the RFCs, and everything that checks HTTP syntax against grammar.py.

The ABNF below is copied from the RFCs (RFC 5234 B.1, RFC 9110, RFC 3986), not derived from
grammar.py: ``chars(rule)`` is the set of bytes that can occur in a string matching the rule
(each rule here is built from alternatives, concatenations and repetitions of literals, byte
ranges and other rules, so that set is the union of its parts). Then both parser
implementations, the versioning extractor and the config checks are run on every byte 0..255
and must draw the line exactly where grammar.py does.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from fastgw._core import grammar
from fastgw.config import routes, schema
from fastgw.versioning import Versioning, VersioningSpec, parse_accept

ABNF = r'''
ALPHA = %x41-5A / %x61-7A
DIGIT = %x30-39
HEXDIG = DIGIT / "A" / "B" / "C" / "D" / "E" / "F"
HTAB = %x09
SP = %x20
VCHAR = %x21-7E

tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
token = 1*tchar
OWS = *( SP / HTAB )
obs-text = %x80-FF
field-value = *field-content
field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]
field-vchar = VCHAR / obs-text
qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )

origin-form = absolute-path [ "?" query ]
absolute-path = 1*( "/" segment )
segment = *pchar
query = *( pchar / "/" / "?" )
pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
pct-encoded = "%" HEXDIG HEXDIG
unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="

Host = uri-host [ ":" port ]
uri-host = host
port = *DIGIT
host = IP-literal / IPv4address / reg-name
IP-literal = "[" ( IPv6address / IPvFuture ) "]"
IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
IPv6address = 6( h16 ":" ) ls32 / "::" 5( h16 ":" ) ls32 / [ h16 ] "::" 4( h16 ":" ) ls32 / [ *1( h16 ":" ) h16 ] "::" 3( h16 ":" ) ls32 / [ *2( h16 ":" ) h16 ] "::" 2( h16 ":" ) ls32 / [ *3( h16 ":" ) h16 ] "::" h16 ":" ls32 / [ *4( h16 ":" ) h16 ] "::" ls32 / [ *5( h16 ":" ) h16 ] "::" h16 / [ *6( h16 ":" ) h16 ] "::"
h16 = 1*4HEXDIG
ls32 = ( h16 ":" h16 ) / IPv4address
IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet
dec-octet = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "2" %x30-34 DIGIT / "25" %x30-35
reg-name = *( unreserved / pct-encoded / sub-delims )
'''
RULES = dict(line.split(" = ", 1) for line in ABNF.strip().splitlines() if line)
# literals ("..."), byte values (%xNN or %xNN-NN), rule names; the rest is ABNF operators
ELEMENT = re.compile(r'"([^"]*)"|%x([0-9A-F]+)(?:-([0-9A-F]+))?|([A-Za-z][A-Za-z0-9-]*)')

# RFC 9110 7.6.1: Connection, and the fields it names as known to require removal
RFC9110_HOP_BY_HOP = ["Connection", "Proxy-Connection", "Keep-Alive", "TE", "Transfer-Encoding",
                      "Upgrade"]


@cache
def chars(rule: str) -> frozenset[int]:
    out: set[int] = set()
    for literal, low, high, name in ELEMENT.findall(RULES[rule]):
        if name:
            out |= chars(name)
        elif low:
            out |= set(range(int(low, 16), int(high or low, 16) + 1))
        else:  # ABNF literals are case-insensitive
            out |= set(literal.lower().encode()) | set(literal.upper().encode())
    return frozenset(out)


BYTES = range(256)


# --------------------------------------------------------------------------------------------
# the tables against the RFCs


@pytest.mark.parametrize(("table", "rule"), [
    ("ALPHA", "ALPHA"), ("DIGIT", "DIGIT"), ("HEXDIG", "HEXDIG"), ("VCHAR", "VCHAR"),
    ("TCHAR", "tchar"), ("OBS_TEXT", "obs-text"), ("FIELD_VALUE", "field-value"),
    ("QDTEXT", "qdtext"), ("QUOTED_PAIR", "quoted-pair"), ("UNRESERVED", "unreserved"),
    ("SUB_DELIMS", "sub-delims"), ("URI", "origin-form"), ("HOST", "Host"),
])
def test_table_is_the_rfc_rule(table: str, rule: str) -> None:
    assert getattr(grammar, table) == chars(rule)


def test_ows_and_its_parts() -> None:
    assert set(grammar.OWS) == chars("OWS")
    assert {grammar.SP} == chars("SP") and {grammar.HTAB} == chars("HTAB")


def test_the_abnf_reader_sees_what_the_rfc_says() -> None:
    assert chars("HEXDIG") == frozenset(b"0123456789abcdefABCDEF")
    assert len(chars("tchar")) == 15 + 10 + 52
    assert b"#"[0] not in chars("origin-form") and b"["[0] in chars("Host")


def test_hop_by_hop_is_rfc_9110() -> None:
    assert {name.lower().encode() for name in RFC9110_HOP_BY_HOP} == grammar.HOP_BY_HOP


def test_qvalue() -> None:
    valid = ["0", "0.", "0.5", "0.123", "1", "1.", "1.0", "1.000"]
    invalid = ["", "2", "0.1234", "1.001", "1.5", ".5", "01", "0,5", " 1"]
    for value in valid:
        assert grammar.QVALUE.fullmatch(value), value
    for value in invalid:
        assert not grammar.QVALUE.fullmatch(value), value
    assert {ord(c) for c in "".join(valid)} <= chars("qvalue")


# --------------------------------------------------------------------------------------------
# the functions


@pytest.mark.parametrize(("value", "elements"), [
    # RFC 9110 5.6.1.2: valid lists, and lists with no element at all
    (b"foo,bar", [b"foo", b"bar"]),
    (b"foo ,bar,", [b"foo", b"bar"]),
    (b"foo , ,bar,charlie", [b"foo", b"bar", b"charlie"]),
    (b"", []),
    (b",", []),
    (b",   ,", []),
    (b"\tfoo\t,\t bar \t", [b"foo", b"bar"]),
    (b"a b , c", [b"a b", b"c"]),  # only the OWS around an element goes
])
def test_split_list(value: bytes, elements: list[bytes]) -> None:
    assert grammar.split_list(value) == elements


def test_list_elements_over_several_lines() -> None:
    assert grammar.list_elements([b"a, b", b"", b" ,c"]) == [b"a", b"b", b"c"]
    assert grammar.list_elements([]) == []


def test_is_token() -> None:
    for c in BYTES:
        assert grammar.is_token(bytes([c])) == (c in chars("tchar")), c
        assert grammar.is_token(chr(c)) == (c in chars("tchar")), c
        assert grammar.is_token(b"a" + bytes([c]) + b"z") == (c in chars("tchar")), c
    for empty in (b"", ""):
        assert not grammar.is_token(empty)
    assert grammar.is_token(bytearray(b"x-y"))
    assert not grammar.is_token("x\u0100")


@pytest.mark.parametrize("table", ["TCHAR", "FIELD_VALUE", "URI", "HOST", "QDTEXT", "HEXDIG"])
def test_regex_class_and_as_text(table: str) -> None:
    members = getattr(grammar, table)
    pattern = re.compile(grammar.regex_class(members))
    text = grammar.as_text(members)
    for c in [*BYTES, 0x100, 0x2028, 0x1F600]:
        assert bool(pattern.fullmatch(chr(c))) == (c in members), (table, c)
        assert (chr(c) in text) == (c in members), (table, c)
    assert grammar.regex_class(frozenset(b"-]\\^")) == r"[\x2d\x5c-\x5e]"


def test_grammar_knows_no_sockets_config_or_asyncio() -> None:
    tree = ast.parse(Path(grammar.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "re", "ipaddress", "collections.abc"}  # pure modules


# --------------------------------------------------------------------------------------------
# the parsers agree with grammar.py on every byte


def accepted(impl: ModuleType, parser, data: bytes) -> bool:
    """A head parser takes ``data`` (a whole head) or raises ParseError."""
    try:
        head = parser.parse(data)
    except impl.ParseError:
        return False
    assert head is not None, data
    return True


def read(impl: ModuleType, body: bytes) -> bool:
    """A ChunkedReader takes ``body`` (a whole chunked body) or raises ParseError."""
    try:
        end = impl.ChunkedReader().feed(body)
    except impl.ParseError:
        return False
    assert end == len(body), body
    return True


def test_method_and_field_name_bytes(parser_impl: ModuleType) -> None:
    parser = parser_impl.RequestParser()
    for c in BYTES:
        b = bytes([c])
        method = b"G" + b + b"T / HTTP/1.1\r\nHost: h\r\n\r\n"
        assert accepted(parser_impl, parser, method) == (c in grammar.TCHAR), c
        if b != b":":  # "X:Y: v" is the field X with the value "Y: v"
            name = b"GET / HTTP/1.1\r\nHost: h\r\nX" + b + b"Y: v\r\n\r\n"
            assert accepted(parser_impl, parser, name) == (c in grammar.TCHAR), c


def test_field_value_target_and_host_bytes(parser_impl: ModuleType) -> None:
    parser = parser_impl.RequestParser()
    for c in BYTES:
        b = bytes([c])
        value = b"GET / HTTP/1.1\r\nHost: h\r\nX: a" + b + b"z\r\n\r\n"
        assert accepted(parser_impl, parser, value) == (c in grammar.FIELD_VALUE), c
        if b == b"%":  # it must begin an escape: checked elsewhere
            continue
        for path in (b"/a" + b + b"z", b"/" + b"a" * 20 + b + b"z"):  # short, and SIMD-long
            target = b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n"
            assert accepted(parser_impl, parser, target) == (c in grammar.URI), c
        host = b"GET / HTTP/1.1\r\nHost: a" + b + b"z\r\n\r\n"
        # the byte is a Host byte, and "a?z" has the shape uri-host [":" port]
        shaped = c in grammar.HOST and grammar.host_shape_ok(b"a" + b + b"z")
        assert accepted(parser_impl, parser, host) == shaped, c
    response = parser_impl.ResponseParser()
    for c in BYTES:
        reason = b"HTTP/1.1 200 O" + bytes([c]) + b"K\r\nContent-Length: 0\r\n\r\n"
        assert accepted(parser_impl, response, reason) == (c in grammar.FIELD_VALUE), c


def test_chunk_extension_and_trailer_name_bytes(parser_impl: ModuleType) -> None:
    for c in BYTES:
        b = bytes([c])
        if b not in b"=;":  # "a=z", "a;z": two legal extension shapes
            body = b"5;a" + b + b"z\r\nhello\r\n0\r\n\r\n"
            assert read(parser_impl, body) == (c in grammar.TCHAR), c
        if b != b":":
            body = b"0\r\nX" + b + b"Y: v\r\n\r\n"
            assert read(parser_impl, body) == (c in grammar.TCHAR), c


@pytest.mark.parametrize("name", sorted(grammar.HOP_BY_HOP))
def test_hop_by_hop_fields_are_not_forwarded(parser_impl: ModuleType, name: bytes) -> None:
    # Transfer-Encoding frames the message itself; the others come with a Content-Length
    field = b"Transfer-Encoding: chunked" if name == b"transfer-encoding" else \
        b"Content-Length: 0\r\n" + name.title() + b": x"
    response = parser_impl.ResponseParser().parse(
        b"HTTP/1.1 200 OK\r\nX-Kept: 1\r\n" + field + b"\r\n\r\n")
    assert response.kept == b"X-Kept: 1\r\n"
    request = parser_impl.RequestParser().parse(
        b"POST / HTTP/1.1\r\nHost: h\r\nX-Kept: 1\r\n" + field + b"\r\n\r\n")
    assert request.kept == b"X-Kept: 1\r\n"


# --------------------------------------------------------------------------------------------
# versioning and the config agree with grammar.py on every character 0..255


def rejected(spec: VersioningSpec) -> bool:
    try:
        Versioning(spec)
    except ValueError:
        return True
    return False


def test_versioning_header_name_and_media_type() -> None:
    for c in BYTES:
        ch = chr(c)
        assert rejected(VersioningSpec(header="X" + ch + "Y")) == (c not in grammar.TCHAR), c
        accept = "application/vnd.a" + ch + "b.v{version}+json"
        assert rejected(VersioningSpec(accept=accept)) == (c not in grammar.TCHAR), c


def test_versioning_accept_parsing() -> None:
    for c in BYTES:
        ch = chr(c)
        if ch in ",;":  # list and parameter separators
            continue
        media = f"a{ch}b/json"
        found = [m for m, _q in parse_accept(media)] == [media]
        assert found == (c in grammar.TCHAR), c
        found = [m for m, _q in parse_accept(f"a/json;p{ch}q=1")] == ["a/json"]
        assert found == (c in grammar.TCHAR), c


def test_config_tokens_and_values() -> None:
    for c in BYTES:
        ch = chr(c)
        token = c in grammar.TCHAR
        assert bool(routes.TOKEN.fullmatch("X" + ch)) == token, c
        assert bool(routes.STICKY_ON.fullmatch("header:" + ch)) == token, c
        assert bool(schema.HASH_ON.fullmatch("cookie:" + ch)) == token, c
        assert bool(routes.HEADER_VALUE.fullmatch("a" + ch)) == (c in grammar.FIELD_VALUE), c
    assert not routes.TOKEN.fullmatch("X\u0100")
