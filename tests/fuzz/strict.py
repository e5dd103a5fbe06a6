"""A strict HTTP/1.1 framer (RFC 9110/9112): the fuzzer's reference for what bytes mean.

It answers, for a byte stream, where each message starts and ends and what it says (method,
target, header fields, body), or that the bytes are not a valid message (``Violation``). It is
written from the RFCs, independently of fastgw (it imports nothing from it), so that the gateway
and the reference cannot share a mistake. Two sets of rules use it:

- ``CLIENT``: what a server must accept from a client, with the leniencies the RFCs allow (empty
  lines before a request line, absolute-form targets, HTTP/1.0, list forms of Content-Length and
  Transfer-Encoding, other transfer codings before chunked). Anything else is a Violation.
  Going over a size limit is not a violation: the message is framed anyway and carries the limit
  in ``Message.limits``, so the gateway may refuse it (414, 431, 413) or forward it as framed.
- ``FORWARDED``: what fastgw may send upstream: HTTP/1.1 only, origin-form (or ``*``), exactly one
  valid Host, framing re-spelled as one ``Content-Length: N`` or ``Transfer-Encoding: chunked``
  line, no stray empty lines between requests.

Responses are framed by ``frame_response`` (status line, fields, Content-Length / chunked / close
framing, no body for HEAD, 1xx, 204 and 304).

Sans-IO: bytes in, messages out; no sockets, no clock.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

# RFC 9110 5.6.2 tchar; 5.5 field-value bytes (VCHAR, obs-text, SP, HTAB)
_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
TOKEN = re.compile(rb"[" + _TCHAR + rb"]+")
FIELD_VALUE = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")
_OWS = b" \t"
# RFC 9110 5.6.4 quoted-string
_QSTRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# RFC 9112 7.1.1: chunk-size [ chunk-ext ], chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS val ] )
_EXT = (rb"[ \t]*;[ \t]*[" + _TCHAR + rb"]+(?:[ \t]*=[ \t]*(?:[" + _TCHAR + rb"]+|"
        + _QSTRING + rb"))?")
CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]+)((?:" + _EXT + rb")*)")
# RFC 9110 8.6: Content-Length = 1*DIGIT
DIGITS = re.compile(rb"[0-9]+")
# RFC 9112 6.1: transfer-coding = token *( OWS ";" OWS transfer-parameter )
_PARAM = rb"[ \t]*;[ \t]*[" + _TCHAR + rb"]+[ \t]*=[ \t]*(?:[" + _TCHAR + rb"]+|" + _QSTRING + rb")"
CODING = re.compile(rb"([" + _TCHAR + rb"]+)((?:" + _PARAM + rb")*)")
# RFC 3986: pchar, and the request-target of origin-form (RFC 9112 3.2.1)
_UNRESERVED = rb"A-Za-z0-9\-._~"
_SUB_DELIMS = rb"!$&'()*+,;="
_PCT = rb"%[0-9A-Fa-f]{2}"
ORIGIN_FORM = re.compile(rb"/(?:[" + _UNRESERVED + _SUB_DELIMS + rb":@/?]|" + _PCT + rb")*")
_PATH_QUERY = re.compile(rb"(?:/(?:[" + _UNRESERVED + _SUB_DELIMS + rb":@/]|" + _PCT + rb")*)?"
                         rb"(?:\?(?:[" + _UNRESERVED + _SUB_DELIMS + rb":@/?]|" + _PCT + rb")*)?")
REG_NAME = re.compile(rb"(?:[" + _UNRESERVED + _SUB_DELIMS + rb"]|" + _PCT + rb")*")
HOST_CHARS = re.compile(rb"[" + _UNRESERVED + _SUB_DELIMS + rb":\[\]%]*")
IPV_FUTURE = re.compile(rb"v[0-9A-Fa-f]+\.[" + _UNRESERVED + _SUB_DELIMS + rb":]+")
ABSOLUTE_FORM = re.compile(rb"(?i:https?)://([^/?#]*)(.*)", re.S)

HOP_BY_HOP = frozenset({b"connection", b"proxy-connection", b"keep-alive", b"te",
                        b"transfer-encoding", b"upgrade", b"trailer"})


class Violation(Exception):
    """The bytes are not a valid message under the rules in use. ``at`` is the stream offset
    of the message; ``head`` is the message whose head was valid when its body is not."""

    def __init__(self, reason: str, at: int = 0, head: Message | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at = at
        self.head = head

    def __str__(self) -> str:
        return f"{self.reason} (message at offset {self.at})"


@dataclass(frozen=True)
class Rules:
    """Which side of the gateway the bytes come from, and the limits a server may enforce."""

    name: str
    client: bool  # True: bytes from a client; False: bytes fastgw forwarded upstream
    max_request_line: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    max_body: int = 64 << 20
    max_chunk_line: int = 4096
    max_trailer: int = 32768
    limit_margin: int = 16  # a limit counts as reached this close to it (how it is counted)


CLIENT = Rules("client", client=True)
FORWARDED = Rules("forwarded", client=False, max_request_line=1 << 30,
                  max_header_bytes=1 << 30, max_headers=1 << 20, max_body=1 << 40,
                  max_chunk_line=1 << 20, max_trailer=1 << 30)


@dataclass
class Message:
    """One request (or response) as framed by the reference."""

    start: int  # stream offset of the first byte (empty lines before it included)
    head_end: int  # stream offset just past the CRLF CRLF
    method: bytes = b""
    target: bytes = b""
    version: bytes = b""
    status: int = 0  # responses
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # name as sent, value
    framing: str = "none"  # "none", "length", "chunked", "close"
    body: bytes = b""  # the payload (chunked: decoded)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    end: int = -1  # stream offset just past the message; -1 while its body is incomplete
    limits: list[str] = field(default_factory=list)  # size limits reached (may be refused)
    # RFC violations that leave the framing alone (an invalid Host): a server must refuse
    # the message, but what follows it is framed the same either way
    soft: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.end >= 0

    def values(self, name: bytes) -> list[bytes]:
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def elements(self, name: bytes) -> list[bytes]:
        """The comma-list elements of every field ``name`` (RFC 9110 5.6.1), lowercased."""
        return [e.strip(_OWS).lower() for v in self.values(name) for e in v.split(b",")
                if e.strip(_OWS)]

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this one (RFC 9112 9.3)."""
        options = self.elements(b"connection")
        if b"close" in options:
            return False
        return self.version == b"HTTP/1.1" or b"keep-alive" in options

    @property
    def host(self) -> bytes | None:
        """The Host a server must use: absolute-form authority first (RFC 9112 3.2.2)."""
        found = ABSOLUTE_FORM.fullmatch(self.target)
        if found:
            return found.group(1)
        hosts = self.values(b"host")
        return hosts[0] if hosts else None

    @property
    def origin_target(self) -> bytes:
        """The target in origin-form, as a gateway forwards it (RFC 9112 3.2.1, 3.2.2)."""
        found = ABSOLUTE_FORM.fullmatch(self.target)
        if not found:
            return self.target
        rest = found.group(2)
        return rest if rest.startswith(b"/") else b"/" + rest


# -- requests ------------------------------------------------------------------------------


def frame_request(data: bytes, pos: int, rules: Rules) -> Message | None:
    """The request starting at ``pos``: None while its head is incomplete, a Message with
    ``end == -1`` while its body is, else the whole Message. Raises Violation."""
    start = pos
    if rules.client:  # RFC 9112 2.2: empty lines before a request line are ignored
        while data.startswith(b"\r\n", pos):
            pos += 2
    head_end = data.find(b"\r\n\r\n", pos)
    if head_end < 0:
        if rules.client and pos - start > rules.max_request_line + rules.limit_margin:
            raise Violation("too many empty lines before a request line", start)
        return None
    lines = data[pos:head_end].split(b"\r\n")
    msg = Message(start=start, head_end=head_end + 4)
    if rules.client and pos - start >= rules.max_request_line - rules.limit_margin:
        msg.limits.append("empty lines before the request line")
    _request_line(msg, lines[0], rules)
    _fields(msg, lines[1:], rules, start)
    if rules.client:
        if len(lines[0]) >= rules.max_request_line - rules.limit_margin:
            msg.limits.append("request line")
        if head_end - pos - len(lines[0]) >= rules.max_header_bytes - rules.limit_margin:
            msg.limits.append("header section")
        if len(lines) - 1 >= rules.max_headers:
            msg.limits.append("header count")
    _request_semantics(msg, rules)
    _body(msg, data, rules)
    return msg


def _request_line(msg: Message, line: bytes, rules: Rules) -> None:
    if b"\r" in line or b"\n" in line:
        raise Violation("bare CR or LF in the request line", msg.start)
    parts = line.split(b" ")
    if len(parts) != 3:
        raise Violation("request line is not method SP target SP version", msg.start)
    msg.method, msg.target, msg.version = parts
    if not TOKEN.fullmatch(msg.method):
        raise Violation("method is not a token", msg.start)
    versions = (b"HTTP/1.1", b"HTTP/1.0") if rules.client else (b"HTTP/1.1",)
    if msg.version not in versions:
        raise Violation(f"version {msg.version!r}", msg.start)
    if msg.method == b"CONNECT":
        raise Violation("CONNECT (authority-form) is not for a reverse proxy", msg.start)
    if msg.target == b"*":
        if msg.method != b"OPTIONS":
            raise Violation("asterisk-form without OPTIONS", msg.start)
    elif ORIGIN_FORM.fullmatch(msg.target):
        pass
    elif rules.client and ABSOLUTE_FORM.fullmatch(msg.target):
        authority, rest = ABSOLUTE_FORM.fullmatch(msg.target).groups()
        if b"@" in authority:  # RFC 9110 4.2.4: userinfo is an error
            raise Violation("userinfo in absolute-form", msg.start)
        _check_host(msg, authority, "authority in absolute-form")
        if not authority or authority.startswith(b":"):  # RFC 9110 4.2.1: no empty host
            msg.soft.append(f"empty host in absolute-form {msg.target[:60]!r}")
        if not _PATH_QUERY.fullmatch(rest):
            raise Violation("invalid path in absolute-form", msg.start)
    else:
        raise Violation("invalid request-target", msg.start)


def _fields(msg: Message, lines: list[bytes], rules: Rules, at: int) -> None:
    """Field lines (RFC 9112 5): name ":" OWS value OWS; no obs-fold, no bare CR/LF."""
    for line in lines:
        msg.headers.append(field_line(line, at))


def field_line(line: bytes, at: int) -> tuple[bytes, bytes]:
    if b"\r" in line or b"\n" in line:
        raise Violation("bare CR or LF in a field line", at)
    if line[:1] in (b" ", b"\t"):
        raise Violation("obs-fold (a field line starting with whitespace)", at)
    name, colon, value = line.partition(b":")
    if not colon or not TOKEN.fullmatch(name):
        raise Violation(f"invalid field line {line[:60]!r}", at)
    value = value.strip(_OWS)
    if not FIELD_VALUE.fullmatch(value):
        raise Violation(f"invalid byte in field value {line[:60]!r}", at)
    return name, value


def _check_host(msg: Message, value: bytes, what: str) -> None:
    """A Host (or absolute-form authority) made of host characters but not shaped as
    uri-host [":" port] leaves the framing alone: a soft violation. Any other byte in it is a
    Violation: it could mean something else to another parser."""
    if not HOST_CHARS.fullmatch(value):
        raise Violation(f"invalid byte in {what} {value[:60]!r}", msg.start)
    if not valid_host(value):
        msg.soft.append(f"invalid {what} {value[:60]!r}")


def valid_host(value: bytes) -> bool:
    """Host = uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2); no userinfo."""
    if value.startswith(b"["):
        close = value.find(b"]")
        if close < 0:
            return False
        literal, rest = value[1:close], value[close + 1:]
        if not IPV_FUTURE.fullmatch(literal):
            try:
                ipaddress.IPv6Address(literal.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return False
    else:
        colon = value.find(b":")
        literal, rest = (value, b"") if colon < 0 else (value[:colon], value[colon:])
        if not REG_NAME.fullmatch(literal):
            return False
    return rest == b"" or (rest[:1] == b":" and (rest == b":" or rest[1:].isdigit()))


def _request_semantics(msg: Message, rules: Rules) -> None:
    hosts = msg.values(b"host")
    if len(hosts) > 1 or (not hosts and (msg.version == b"HTTP/1.1" or not rules.client)):
        raise Violation(f"{len(hosts)} Host fields", msg.start)  # RFC 9112 3.2
    if hosts:  # RFC 9110 7.2: an invalid Host must be refused (400)
        _check_host(msg, hosts[0], "Host")
    lengths = msg.values(b"content-length")
    codings = msg.values(b"transfer-encoding")
    if rules.client:
        _client_framing(msg, lengths, codings, rules)
    else:
        _forwarded_framing(msg, lengths, codings)


def _client_framing(msg: Message, lengths: list[bytes], codings: list[bytes],
                    rules: Rules) -> None:
    if codings:
        if lengths:  # RFC 9112 6.1: a server MAY reject; fastgw documents that it does
            raise Violation("both Content-Length and Transfer-Encoding", msg.start)
        if msg.version == b"HTTP/1.0":  # RFC 9112 6.1: the framing is faulty
            raise Violation("Transfer-Encoding in HTTP/1.0", msg.start)
        names = []
        for element in (e.strip(_OWS) for v in codings for e in v.split(b",")):
            if not element:
                continue  # RFC 9110 5.6.1: empty list elements are ignored
            found = CODING.fullmatch(element)
            if not found:
                raise Violation(f"invalid transfer coding {element[:40]!r}", msg.start)
            names.append((found.group(1).lower(), bool(found.group(2))))
        if not names or names[-1][0] != b"chunked":  # RFC 9112 6.3 (4)
            raise Violation("Transfer-Encoding does not end in chunked", msg.start)
        if [n for n, _ in names].count(b"chunked") != 1 or names[-1][1]:
            raise Violation("chunked twice, or with parameters", msg.start)  # RFC 9112 7
        msg.framing = "chunked"
    elif lengths:
        elements = [e.strip(_OWS) for v in lengths for e in v.split(b",") if e.strip(_OWS)]
        # RFC 9110 8.6: 1*DIGIT; a list of the same decimal value may be taken as that value
        if not elements or not all(DIGITS.fullmatch(e) for e in elements) or len(
                {int(e) for e in elements}) != 1:
            raise Violation(f"invalid Content-Length {lengths!r}", msg.start)
        msg.framing = "length"


def _forwarded_framing(msg: Message, lengths: list[bytes], codings: list[bytes]) -> None:
    """fastgw re-spells framing: exactly one canonical line, or none."""
    if codings and lengths:
        raise Violation("both Content-Length and Transfer-Encoding forwarded", msg.start)
    if codings:
        if codings != [b"chunked"]:
            raise Violation(f"Transfer-Encoding forwarded as {codings!r}", msg.start)
        msg.framing = "chunked"
    elif lengths:
        if len(lengths) != 1 or not re.fullmatch(rb"0|[1-9][0-9]*", lengths[0]):
            raise Violation(f"Content-Length forwarded as {lengths!r}", msg.start)
        msg.framing = "length"


def _body(msg: Message, data: bytes, rules: Rules) -> None:
    pos = msg.head_end
    if msg.framing == "length":
        n = int(next(e.strip(_OWS) for v in msg.values(b"content-length") for e in v.split(b",")
                      if e.strip(_OWS)))
        if n >= rules.max_body - rules.limit_margin:
            msg.limits.append("body size")
            if len(data) - pos < n:  # never wait for a body this large
                return
        if len(data) - pos >= n:
            msg.body = data[pos:pos + n]
            msg.end = pos + n
    elif msg.framing == "chunked":
        found = frame_chunked(data, pos, rules, msg)
        if found is not None:
            msg.body, msg.trailers, msg.end = found
    else:
        msg.end = pos


def frame_chunked(data: bytes, pos: int, rules: Rules, msg: Message):
    """A chunked body (RFC 9112 7.1) from ``pos``: (payload, trailers, end), or None while
    incomplete. Raises Violation (with ``head=msg``) on bad framing."""
    payload = []
    start = pos
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            _check_partial_line(data, pos, rules, msg)
            return None
        line = data[pos:eol]
        found = CHUNK_LINE.fullmatch(line)
        if not found:
            raise Violation(f"invalid chunk-size line {line[:60]!r}", msg.start, msg)
        if len(line) >= rules.max_chunk_line - rules.limit_margin or len(found.group(1)) > 15:
            _limit(msg, "chunk-size line")
        size = int(found.group(1), 16)
        pos = eol + 2
        if size == 0:
            break
        if pos + size - start >= rules.max_body - rules.limit_margin:
            _limit(msg, "body size")
            return None  # never wait for a chunk this large
        if len(data) < pos + size + 2:
            tail = data[pos + size:]
            if tail and not b"\r\n".startswith(tail):
                raise Violation("chunk data longer than its size", msg.start, msg)
            return None
        if data[pos + size:pos + size + 2] != b"\r\n":
            raise Violation("chunk data not followed by CRLF", msg.start, msg)
        payload.append(data[pos:pos + size])
        pos += size + 2
    trailers = []
    trailer_start = pos
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        line = data[pos:eol]
        pos = eol + 2
        if not line:
            break
        try:
            trailers.append(field_line(line, msg.start))
        except Violation as exc:
            raise Violation(f"trailer: {exc.reason}", msg.start, msg) from None
    if pos - trailer_start >= rules.max_trailer - rules.limit_margin:
        _limit(msg, "trailer section")
    if pos - start >= rules.max_body - rules.limit_margin:
        _limit(msg, "body size")
    return b"".join(payload), trailers, pos


def _check_partial_line(data: bytes, pos: int, rules: Rules, msg: Message) -> None:
    if len(data) - pos >= rules.max_chunk_line - rules.limit_margin:
        _limit(msg, "chunk-size line")


def _limit(msg: Message, what: str) -> None:
    if what not in msg.limits:
        msg.limits.append(what)


@dataclass
class Stream:
    """A client's bytes framed as requests: the valid ones, then how the stream ended."""

    messages: list[Message]
    end: str  # "clean" (nothing left), "closed" (a request closed the connection; the rest
    #           is never read), "partial" (a request cut short), "invalid"
    violation: Violation | None = None
    partial: Message | None = None  # the request whose head was framed but not its body
    rest: bytes = b""  # the bytes from the first one not framed

    @property
    def next_method(self) -> bytes | None:
        """The method of the request after the framed ones, when its request line can tell."""
        head = self.partial or (self.violation.head if self.violation else None)
        if head is not None:
            return head.method
        if self.violation is not None:
            return None  # the gateway may or may not have read the method
        first = self.rest.lstrip(b"\r\n").split(b" ", 1)[0]
        return first if TOKEN.fullmatch(first or b"-") else None


def frame_stream(data: bytes, rules: Rules = CLIENT) -> Stream:
    """Frame a whole client byte stream (as sent) into requests."""
    messages: list[Message] = []
    pos = 0
    while True:
        rest = data[pos:]
        if not rest or (rules.client and not rest.replace(b"\r\n", b"")):
            return Stream(messages, "clean", rest=rest)  # nothing, or only empty lines
        try:
            msg = frame_request(data, pos, rules)
        except Violation as violation:
            return Stream(messages, "invalid", violation=violation, rest=data[pos:])
        if msg is None:
            return Stream(messages, "partial", rest=data[pos:])
        if not msg.complete:
            return Stream(messages, "partial", partial=msg, rest=data[pos:])
        messages.append(msg)
        pos = msg.end
        if not msg.keep_alive:
            return Stream(messages, "closed", rest=data[pos:])


# -- responses -----------------------------------------------------------------------------

STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9]{2}) [\t \x21-\x7e\x80-\xff]*")


def frame_response(data: bytes, pos: int, method: bytes | None, eof: bool) -> Message | None:
    """The response starting at ``pos`` to a request with ``method`` (None: unknown, then a
    Content-Length body may be missing at the close, as for HEAD). None while incomplete
    (``eof``: no more bytes will come). Raises Violation."""
    head_end = data.find(b"\r\n\r\n", pos)
    if head_end < 0:
        if eof and data[pos:]:
            raise Violation("response head cut short", pos)
        return None
    lines = data[pos:head_end].split(b"\r\n")
    msg = Message(start=pos, head_end=head_end + 4)
    found = STATUS_LINE.fullmatch(lines[0])
    if not found:
        raise Violation(f"invalid status line {lines[0][:60]!r}", pos)
    msg.version = lines[0][:8]
    msg.status = int(found.group(1))
    _fields(msg, lines[1:], CLIENT, pos)
    body_start = head_end + 4
    lengths = msg.values(b"content-length")
    codings = msg.elements(b"transfer-encoding")
    if msg.status < 200 or msg.status in (204, 304) or method == b"HEAD":
        msg.end = body_start
    elif codings:
        if lengths or codings[-1] != b"chunked":
            raise Violation(f"response framing: {lengths!r} {codings!r}", pos)
        msg.framing = "chunked"
        found_body = frame_chunked(data, body_start, FORWARDED, msg)
        if found_body is None:
            if eof:
                raise Violation("chunked response body cut short", pos)
            return None
        msg.body, msg.trailers, msg.end = found_body
    elif lengths:
        if len(set(lengths)) != 1 or not DIGITS.fullmatch(lengths[0]):
            raise Violation(f"response Content-Length {lengths!r}", pos)
        msg.framing = "length"
        n = int(lengths[0])
        if len(data) - body_start >= n:
            msg.body, msg.end = data[body_start:body_start + n], body_start + n
        elif eof and method is None and len(data) == body_start:
            msg.end = body_start  # perhaps a HEAD request the reference could not frame
        elif eof:
            raise Violation("response body cut short", pos)
        else:
            return None
    else:
        msg.framing = "close"
        if not eof:
            return None
        msg.body, msg.end = data[body_start:], len(data)
    return msg


def hop_by_hop(msg: Message) -> frozenset[bytes]:
    """The fields of ``msg`` that describe only its connection (RFC 9110 7.6.1)."""
    return HOP_BY_HOP | frozenset(msg.elements(b"connection"))
