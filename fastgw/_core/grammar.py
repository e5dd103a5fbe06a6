"""The HTTP grammar fastgw checks against, as data, written once.

The byte classes of RFC 9110, RFC 9112 and RFC 3986 (tchar, field-value bytes, request-target
and Host characters, ...), the hop-by-hop field names and list parsing. Both parsers, the
versioning extractor and the config checks take them from here, so no two of them can disagree
on what a token is: ``http_parser.pyx`` builds its 256-entry C tables from these sets when it is
imported, ``pure_parser.py`` uses them as they are.

Byte classes are frozensets of ints (``0x41 in TCHAR``); ``as_text`` and ``regex_class`` give
the same class for str checks and config patterns. Plain data and small pure functions: this
module must not know about sockets, config or asyncio.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

# RFC 5234 B.1 core rules (ABNF literals are case-insensitive: HEXDIG has a-f too)
ALPHA = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))
DIGIT = frozenset(range(0x30, 0x3A))
HEXDIG = DIGIT | frozenset(b"ABCDEFabcdef")
VCHAR = frozenset(range(0x21, 0x7F))
SP = 0x20
HTAB = 0x09

# RFC 9110 5.6.3: OWS = *( SP / HTAB ); bytes, so it also serves ``bytes.strip(OWS)``
OWS = b" \t"
# RFC 9110 5.5: obs-text, and the bytes a field value (and a reason phrase) may hold:
# field-vchar (VCHAR / obs-text), SP and HTAB
OBS_TEXT = frozenset(range(0x80, 0x100))
FIELD_VALUE = VCHAR | OBS_TEXT | {SP, HTAB}
# RFC 9110 5.6.2: tchar, the bytes of a token (method, field name, transfer coding, ...)
TCHAR = frozenset(b"!#$%&'*+-.^_`|~") | DIGIT | ALPHA
# RFC 9110 5.6.4: quoted-string text, and what may follow a backslash in one (quoted-pair)
QDTEXT = frozenset({HTAB, SP, 0x21}) | frozenset(range(0x23, 0x5C)) | frozenset(
    range(0x5D, 0x7F)) | OBS_TEXT
QUOTED_PAIR = FIELD_VALUE

# RFC 3986 2.2, 2.3
UNRESERVED = ALPHA | DIGIT | frozenset(b"-._~")
SUB_DELIMS = frozenset(b"!$&'()*+,;=")
# request-target bytes (RFC 3986 path and query, as RFC 9112 3.2 uses them): pchar, "/", "?",
# and "%", which must begin a pct-encoded triplet. No fragment, no brackets.
URI = UNRESERVED | SUB_DELIMS | frozenset(b":@/?%")
# Host (RFC 9110 7.2) = uri-host [ ":" port ]: reg-name, IP-literal and port characters
HOST = UNRESERVED | SUB_DELIMS | frozenset(b":[]%")


def ip_literal_ok(inside: bytes) -> bool:
    """What an IP-literal holds between its brackets (RFC 3986 3.2.2): an IPv6 address, or
    an IPvFuture ("v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ))."""
    if inside[:1] in (b"v", b"V"):
        version, dot, rest = inside[1:].partition(b".")
        return (bool(version) and all(c in HEXDIG for c in version) and bool(dot)
                and bool(rest) and all(c in UNRESERVED or c in SUB_DELIMS or c == 0x3A
                                       for c in rest))
    try:
        ipaddress.IPv6Address(inside.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def host_shape_ok(value: bytes) -> bool:
    """A Host value made of HOST bytes is uri-host [ ":" port ]: an IP-literal in brackets,
    or a reg-name / IPv4 address (no ':', '[' or ']'), then optionally ':' and digits."""
    if value[:1] == b"[":
        close = value.find(b"]")
        if close < 0 or not ip_literal_ok(value[1:close]):
            return False
        rest = value[close + 1:]
    else:
        colon = value.find(b":")
        name, rest = (value, b"") if colon < 0 else (value[:colon], value[colon:])
        if b"[" in name or b"]" in name:
            return False
    return not rest or (rest[:1] == b":" and (len(rest) == 1 or rest[1:].isdigit()))

# RFC 9110 7.6.1: fields that describe one connection, never forwarded by an intermediary
# (Connection, and those it names as known to require removal)
HOP_BY_HOP = frozenset({
    b"connection", b"proxy-connection", b"keep-alive", b"te", b"transfer-encoding", b"upgrade",
})

# RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")

_TCHAR_BYTES = bytes(sorted(TCHAR))


def is_token(value: bytes | str) -> bool:
    """``value`` is a token (RFC 9110 5.6.2): one or more tchar."""
    if isinstance(value, str):
        return bool(value) and set(value) <= TCHAR_TEXT
    return bool(value) and not value.translate(None, _TCHAR_BYTES)


def split_list(value: bytes) -> list[bytes]:
    """The elements of one comma-separated field value (RFC 9110 5.6.1): each without the OWS
    around it, empty elements left out (``"a, ,b,"`` is ``[a, b]``)."""
    return [element for element in (part.strip(OWS) for part in value.split(b",")) if element]


def list_elements(values: Iterable[bytes]) -> list[bytes]:
    """The elements of a list split over several field lines, in order (RFC 9110 5.3)."""
    return [element for value in values for element in split_list(value)]


def as_text(byte_class: frozenset[int]) -> frozenset[str]:
    """The same class as one-character strings (``"a" in as_text(TCHAR)``)."""
    return frozenset(chr(c) for c in byte_class)


def regex_class(byte_class: frozenset[int]) -> str:
    """A regular-expression character class (``[...]``) matching exactly the characters
    U+0000-U+00FF of ``byte_class``, for str patterns."""
    runs: list[str] = []
    codes = sorted(byte_class)
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        first, last = codes[i], codes[j]
        runs.append(f"\\x{first:02x}" if first == last else f"\\x{first:02x}-\\x{last:02x}")
        i = j + 1
    return "[" + "".join(runs) + "]"


TCHAR_TEXT = as_text(TCHAR)
# a token in a str pattern, e.g. for header names and methods in the config
TOKEN_PATTERN = regex_class(TCHAR) + "+"
