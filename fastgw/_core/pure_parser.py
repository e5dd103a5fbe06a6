"""Pure-Python twin of the HTTP/1.1 head parser (RFC 9112), sans-IO.

It is the reference for ``http_parser.pyx`` and runs when the extension is missing or
``FASTGW_PURE=1``. Both implementations expose the same API and pass the same tests:

- ``RequestParser(max_request_line, max_header_bytes, max_headers,
  underscores_in_headers).parse(buf)`` returns a
  ``RequestHead`` once ``buf`` holds a whole head, ``None`` while it is incomplete, and raises
  ``ParseError`` (with the HTTP status to answer) as soon as the bytes are known to be bad.
- ``ResponseParser(max_header_bytes, max_headers).parse(buf)`` does the same for responses.
- ``ChunkedReader`` validates a chunked body as it streams past, without copying it (or, given
  an ``out`` bytearray, appends its payload there in the same pass).

Only the headers the gateway acts on become Python objects. Every other header line is
forwarded as a verbatim slice, collected in ``head.kept``. The character classes, hop-by-hop
names and list rule are ``grammar.py``'s, as in the compiled parser.
"""

from __future__ import annotations

from .grammar import (
    FIELD_VALUE, HEXDIG, HOP_BY_HOP, HOST, OBS_TEXT, OWS, QDTEXT, QUOTED_PAIR, TCHAR, URI, VCHAR,
    host_shape_ok, is_token, list_elements, split_list,
)

# The byte classes are grammar.py's (TCHAR, FIELD_VALUE, URI, HOST, HEXDIG, ...). What an
# absolute-form authority may hold before its own check (the Host rules below) names the fault:
_TARGET_OK = VCHAR | OBS_TEXT

# Never forwarded: the hop-by-hop fields (RFC 9110 7.6.1, with the framing, which the gateway
# writes itself), Trailer (hop-by-hop since RFC 2616 13.5.1), HTTP2-Settings (RFC 9113 3.2.1:
# it belongs to one connection), and in requests the fields the gateway rewrites or owns: Host,
# Expect (hop-by-hop, RFC 9110 10.1.1) and the forwarding headers, X-Forwarded-For (which it
# appends to) and every other X-Forwarded-* name, Forwarded and X-Real-IP (_FORWARDING_PREFIX).
_RESPONSE_DROPPED = HOP_BY_HOP | {b"trailer", b"content-length", b"http2-settings"}
_REQUEST_DROPPED = _RESPONSE_DROPPED | {
    b"host", b"expect", b"x-forwarded-for", b"forwarded", b"x-real-ip",
}
_FORWARDING_PREFIX = b"x-forwarded-"
# Connection may not be used to strip the headers that frame or address the message.
_NOT_LISTABLE = frozenset({b"host", b"content-length", b"transfer-encoding"})

MAX_CHUNK_LINE = 4096


class ParseError(Exception):
    """The bytes are not a valid HTTP/1.1 message; ``status`` is the response to send."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


class RequestHead:
    """A parsed request head. ``kept`` holds the header lines forwarded unchanged."""

    __slots__ = (
        "method", "target", "path", "version", "host", "content_length", "chunked",
        "transfer_encoding", "keep_alive", "upgrade", "expect_continue", "x_forwarded_for",
        "head_length", "kept", "raw",
    )

    def header(self, name: bytes) -> bytes | None:
        """First value of header ``name`` (case-insensitive), for routing; None if absent."""
        return _find_header(self.raw, name)

    def forward(self, tail: bytes, host: bytes, path: bytes | None = None,
                kept: bytes | None = None, forwarded_host: bytes | None = None) -> bytes:
        """The head to send upstream, in one piece: request line, Host, the kept lines,
        framing, Upgrade when upgrading, X-Forwarded-For (received values, then ``tail``, which
        starts with the client address and ends with "X-Forwarded-Host: "), then the forwarded
        host (``host`` unless given). A route's rewrites pass another ``path`` and ``kept``."""
        if self.chunked:
            framing = b"Transfer-Encoding: " + self.transfer_encoding + b"\r\n"
        elif self.content_length >= 0:
            framing = b"Content-Length: %d\r\n" % self.content_length
        else:
            framing = b""
        if self.upgrade is not None:
            framing += b"Connection: upgrade\r\nUpgrade: " + self.upgrade + b"\r\n"
        xff = self.x_forwarded_for
        return b"".join((
            self.method, b" ", self.path if path is None else path, b" HTTP/1.1\r\nHost: ",
            host, b"\r\n", self.kept if kept is None else kept, framing, b"X-Forwarded-For: ",
            xff + b", " if xff else b"", tail, host if forwarded_host is None else forwarded_host,
            b"\r\n\r\n",
        ))


class ResponseHead:
    """A parsed response head. ``kept`` holds the header lines forwarded unchanged."""

    __slots__ = (
        "status", "version", "reason", "content_length", "chunked", "transfer_encoding",
        "keep_alive", "upgrade", "head_length", "kept", "raw",
    )

    def header(self, name: bytes) -> bytes | None:
        return _find_header(self.raw, name)

    def forward(self, extra: bytes, te_allowed: bool, no_body: bool,
                kept: bytes | None = None) -> bytes:
        """The head to send the client: status line (as HTTP/1.1), the kept lines (or
        ``kept``, when a route rewrites them), framing, then ``extra`` (e.g. a Connection
        line). ``te_allowed`` is False for HTTP/1.0 clients: they never get Transfer-Encoding."""
        te = self.transfer_encoding
        if (te is not None and not te_allowed) or self.status == 204:
            framing = b""  # a 204 has neither (RFC 9110 8.6, RFC 9112 6.1), whatever it said
        elif self.chunked or (te is not None and not no_body):
            framing = b"Transfer-Encoding: " + te + b"\r\n"
        elif self.content_length >= 0:
            framing = b"Content-Length: %d\r\n" % self.content_length
        else:
            framing = b""
        return b"HTTP/1.1 %d %s\r\n%s%s%s\r\n" % (
            self.status, self.reason, self.kept if kept is None else kept, framing, extra)


def _find_header(raw: bytes, name: bytes) -> bytes | None:
    if isinstance(name, str):
        raise TypeError("header name must be bytes")
    wanted = name.lower()
    for line in raw.split(b"\r\n")[1:]:
        colon = line.find(b":")
        if colon > 0 and line[:colon].lower() == wanted:
            return line[colon + 1 :].strip(OWS)
    return None


def _check_line_endings(buf: bytes, end: int) -> None:
    """Reject bare CR and bare LF anywhere in buf[:end]."""
    piece = buf[:end]
    crlf = piece.count(b"\r\n")
    if piece.count(b"\n") != crlf:
        raise ParseError(400, "bare LF line ending")
    if piece.count(b"\r") != crlf:
        raise ParseError(400, "bare CR in head")


def _split_head(buf: bytes, max_first_line: int, first_line_status: int, max_section: int):
    """Find the end of a head. Returns (end_of_head_index, lines) or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        # Fail early on what can already be judged, so a bad client is not left waiting.
        tail = len(buf) - 1 if buf.endswith(b"\r") else len(buf)
        _check_line_endings(buf, tail)
        # A trailing CR may be the start of the CRLF that ends a line, so it is not counted:
        # a head that is accepted whole is never rejected when it arrives in pieces.
        first = buf.find(b"\r\n")
        if first < 0 and tail > max_first_line:
            raise ParseError(first_line_status, "first line too long")
        if first > max_first_line:
            raise ParseError(first_line_status, "first line too long")
        if first >= 0 and tail - first - 2 > max_section:
            raise ParseError(431, "header section too large")
        return None
    _check_line_endings(buf, end + 4)
    return end, buf[:end].split(b"\r\n")


def _parse_fields(lines, max_headers: int, dropped: frozenset, error_status: int):
    """Validate header lines; return (fields, connection_tokens).

    fields is a list of (lowercase name, value, line) for every header line.
    """
    if len(lines) - 1 > max_headers:
        raise ParseError(431 if error_status == 400 else error_status, "too many headers")
    fields = []
    connection: list[bytes] = []
    for line in lines[1:]:
        if not line:
            raise ParseError(error_status, "empty header line")
        if line[0] in (0x20, 0x09):
            raise ParseError(error_status, "obsolete line folding in header")
        colon = line.find(b":")
        if colon <= 0:
            raise ParseError(error_status, "header line without a name and colon")
        name = line[:colon]
        if not is_token(name):
            raise ParseError(error_status, "invalid character in header name")
        value = line[colon + 1 :].strip(OWS)
        for c in value:
            if c not in FIELD_VALUE:
                raise ParseError(error_status, "invalid character in header value")
        lname = name.lower()
        if lname == b"connection":
            connection.extend(t.lower() for t in split_list(value))
        fields.append((lname, value, line))
    return fields, connection


def _kept_lines(fields, dropped, connection: list[bytes]) -> bytes:
    """The header lines to forward verbatim: all but those ``dropped(lname)`` names (hop-by-hop
    and rewritten ones) and those Connection lists."""
    listed = {t for t in connection if t and t not in _NOT_LISTABLE}
    out = []
    for lname, _value, line in fields:
        if dropped(lname) or lname in listed:
            continue
        out.append(line)
        out.append(b"\r\n")
    return b"".join(out)


def _response_dropped(lname: bytes) -> bool:
    return lname in _RESPONSE_DROPPED


def _request_dropped(lname: bytes) -> bool:
    """A request field the gateway never forwards as received."""
    return lname in _REQUEST_DROPPED or lname.startswith(_FORWARDING_PREFIX)


def _dropped_underscores_allowed(lname: bytes) -> bool:
    """With ``underscores_in_headers``: a name is dropped if, read as CGI/WSGI backends read it
    ("_" as "-"), it names a field the gateway acts on (X_Forwarded_For, Content_Length, ...)."""
    return _request_dropped(lname.replace(b"_", b"-"))


def _dropped_underscores_not_allowed(lname: bytes) -> bool:
    """The default, as nginx's ``underscores_in_headers off``: every name with "_" is dropped."""
    return b"_" in lname or _request_dropped(lname)


def _content_length(values: list[bytes], error_status: int) -> int:
    result = -1
    for value in values:
        for part in value.split(b","):
            part = part.strip(OWS)
            if not part or not part.isdigit() or len(part) > 18:
                raise ParseError(error_status, "invalid Content-Length")
            n = int(part)
            if result >= 0 and n != result:
                raise ParseError(error_status, "conflicting Content-Length values")
            result = n
    return result


def _codings(values: list[bytes], error_status: int) -> list[tuple[bytes, bool, bytes]]:
    """The transfer codings: (lowercase name, has parameters, the element as sent)."""
    codings = []
    for part in list_elements(values):
        # a coding may carry parameters; its name is a token
        name = part.split(b";", 1)[0].strip(OWS)
        if not is_token(name):
            raise ParseError(error_status, "invalid Transfer-Encoding")
        codings.append((name.lower(), b";" in part, part))
    if not codings:
        raise ParseError(error_status, "empty Transfer-Encoding")
    return codings


def _pct_ok(data: bytes) -> bool:
    """Every "%" in data begins a pct-encoded triplet: "%" HEXDIG HEXDIG."""
    i = data.find(b"%")
    while i >= 0:
        if i + 2 >= len(data) or data[i + 1] not in HEXDIG or data[i + 2] not in HEXDIG:
            return False
        i = data.find(b"%", i + 3)
    return True


def _authority_end(target: bytes, rest: int) -> int:
    """Where the authority of an absolute-form target that starts at ``rest`` ends."""
    cut = len(target)
    for sep in (b"/", b"?", b"#"):
        i = target.find(sep, rest)
        if 0 <= i < cut:
            cut = i
    return cut


def _target_ok(target: bytes) -> bool:
    """The bytes of a request-target are those of a URI (RFC 3986; RFC 9112 3.2): path and
    query characters, each "%" an escape. An absolute-form authority is only held to VCHAR here;
    its own check (the Host rules) comes later and names the fault."""
    if any(c not in URI for c in target):
        lower = target[:8].lower()
        if lower.startswith(b"http://"):
            rest = 7
        elif lower.startswith(b"https://"):
            rest = 8
        else:
            return False
        cut = _authority_end(target, rest)
        if (any(c not in _TARGET_OK for c in target[rest:cut])
                or any(c not in URI for c in target[cut:])):
            return False
    return b"%" not in target or _pct_ok(target)


def _protocols(values: list[bytes]) -> bytes | None:
    """A request's Upgrade list (RFC 9110 7.8), validated (protocol-name ["/" protocol-version],
    both tokens) and spelled canonically: the elements joined by ", "; None if it is empty.
    h2c, h2 (any case, any version) and HTTP/2 (HTTP/2.0, ...) are left out: HTTP/2 is never
    negotiated through the gateway (an HTTP/2 connection to the upstream would carry requests
    the gateway never sees: h2c smuggling)."""
    protocols = list_elements(values)
    kept = []
    for proto in protocols:
        name, slash, version = proto.partition(b"/")
        if not is_token(name) or (slash and not is_token(version)):
            raise ParseError(400, "invalid Upgrade")
        if name.lower() not in (b"h2c", b"h2") and not (
                name.lower() == b"http" and version.startswith(b"2")):
            kept.append(proto)
    return b", ".join(kept) or None


class RequestParser:
    """Parses request heads under the configured limits. ``underscores_in_headers``: header
    names holding "_" are forwarded (False, the default: dropped, as nginx does)."""

    def __init__(self, max_request_line: int = 8192, max_header_bytes: int = 32768,
                 max_headers: int = 100, underscores_in_headers: bool = False) -> None:
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.underscores_in_headers = bool(underscores_in_headers)

    def parse(self, buf) -> RequestHead | None:
        buf = bytes(buf)
        # RFC 9112 2.2: empty lines (CRLF) before a request line are ignored, at the start of a
        # connection and between requests, but no more than a request line's worth of them.
        # head_length counts them (the caller slices its buffer there); raw does not.
        skip = 0
        while buf.startswith(b"\r\n", skip):
            skip += 2
            if skip > self.max_request_line:
                raise ParseError(400, "too many empty lines before the request line")
        if skip:
            buf = buf[skip:]
        found = _split_head(buf, self.max_request_line, 414, self.max_header_bytes)
        if found is None:
            return None
        end, lines = found
        request_line = lines[0]
        if len(request_line) > self.max_request_line:
            raise ParseError(414, "first line too long")
        if end + 2 - len(request_line) - 2 > self.max_header_bytes:
            raise ParseError(431, "header section too large")
        parts = request_line.split(b" ")
        if len(parts) != 3:
            raise ParseError(400, "malformed request line")
        method, target, version_bytes = parts
        if not is_token(method):
            raise ParseError(400, "invalid method")
        if not target or not _target_ok(target):
            raise ParseError(400, "invalid request target")
        if version_bytes == b"HTTP/1.1":
            version = 11
        elif version_bytes == b"HTTP/1.0":
            version = 10
        elif (len(version_bytes) == 8 and version_bytes.startswith(b"HTTP/")
              and version_bytes[5:6].isdigit() and version_bytes[6:7] == b"."
              and version_bytes[7:8].isdigit()):
            raise ParseError(505, "HTTP version not supported")
        else:
            raise ParseError(400, "malformed HTTP version")

        fields, connection = _parse_fields(lines, self.max_headers, _REQUEST_DROPPED, 400)
        hosts = []
        lengths = []
        encodings = []
        forwarded_for = []
        upgrades = []
        expects = []
        for lname, value, _line in fields:
            if lname == b"host":
                hosts.append(value)
            elif lname == b"content-length":
                lengths.append(value)
            elif lname == b"transfer-encoding":
                encodings.append(value)
            elif lname == b"x-forwarded-for":
                forwarded_for.append(value)
            elif lname == b"upgrade":
                upgrades.append(value)
            elif lname == b"expect":
                expects.append(value)

        if len(hosts) > 1:
            raise ParseError(400, "more than one Host header")
        host = hosts[0] if hosts else None
        # Host is forwarded as the gateway's own "Host: " line with the value without its OWS;
        # a "%" in it must be an escape, as in a target's authority
        # and it is uri-host [":" port] (RFC 9110 7.2: an invalid Host value gets 400)
        if host is not None and (any(c not in HOST for c in host) or not _pct_ok(host)
                                 or not host_shape_ok(host)):
            raise ParseError(400, "invalid Host header")
        if host is None and version == 11:  # RFC 9112 3.2, whatever the target's form
            raise ParseError(400, "missing Host header")
        if method == b"CONNECT":
            raise ParseError(405, "CONNECT is not supported by a reverse proxy")

        path = target
        if target[:1] != b"/":
            lower = target[:8].lower()
            if lower.startswith((b"http://", b"https://")):
                rest = target.index(b"//") + 2
                cut = _authority_end(target, rest)
                authority = target[rest:cut]
                if (not authority or b"@" in authority or any(c not in HOST for c in authority)
                        or authority[:1] == b":" or not host_shape_ok(authority)):
                    raise ParseError(400, "invalid authority in absolute-form target")
                host = authority
                path = target[cut:]
                if not path.startswith(b"/"):
                    path = b"/" + path
            elif target == b"*" and method == b"OPTIONS":
                pass
            else:
                raise ParseError(400, "invalid request target")
        if host is None:
            host = b""

        if encodings:
            if lengths:
                raise ParseError(400, "both Content-Length and Transfer-Encoding")
            if version == 10:
                raise ParseError(400, "Transfer-Encoding in an HTTP/1.0 request")
            codings = _codings(encodings, 400)
            names = [name for name, _params, _element in codings]
            if names[-1] != b"chunked" or names.count(b"chunked") != 1:
                raise ParseError(400, "Transfer-Encoding does not end in chunked")
            # RFC 9112 7: chunked has no parameters. RFC 9112 6.1: a coding the gateway does
            # not implement gets 501 (it only understands chunked, as nginx). So the list,
            # however spelled (",chunked", two fields), is forwarded as exactly "chunked".
            if codings[-1][1]:
                raise ParseError(400, "parameters on the chunked transfer coding")
            if len(codings) != 1:
                raise ParseError(501, "unsupported transfer coding")
            chunked = True
            transfer_encoding = b"chunked"
            content_length = -1
        else:
            chunked = False
            transfer_encoding = None
            content_length = _content_length(lengths, 400) if lengths else -1

        if version == 11:
            keep_alive = b"close" not in connection
        else:
            keep_alive = b"keep-alive" in connection and b"close" not in connection
        # Upgrade counts only when Connection lists it; then the protocols are forwarded in
        # the gateway's spelling (all fields, no empty elements), never the client's lines. In
        # an HTTP/1.0 request it is ignored (RFC 9110 7.8).
        upgrade = (_protocols(upgrades) if upgrades and b"upgrade" in connection
                   and version == 11 else None)
        # Expect is hop-by-hop (RFC 9110 10.1.1) and never forwarded. 100-continue, in any case,
        # repeated or among empty elements, is the gateway's own (answered here; ignored in
        # HTTP/1.0). Any other expectation, alone or not, is one the gateway cannot meet: 417.
        expectations = [e.lower() for e in list_elements(expects)]
        if any(e != b"100-continue" for e in expectations):
            raise ParseError(417, "unsupported expectation")
        expect_continue = bool(expectations) and version == 11

        head = RequestHead()
        head.method = method
        head.target = target
        head.path = path
        head.version = version
        head.host = host
        head.content_length = content_length
        head.chunked = chunked
        head.transfer_encoding = transfer_encoding
        head.keep_alive = keep_alive
        head.upgrade = upgrade
        head.expect_continue = expect_continue
        # the list the client sent, without empty elements (``a, , b``) or OWS around them
        head.x_forwarded_for = b", ".join(list_elements(forwarded_for)) or None
        head.head_length = skip + end + 4
        dropped = (_dropped_underscores_allowed if self.underscores_in_headers
                   else _dropped_underscores_not_allowed)
        head.kept = _kept_lines(fields, dropped, connection)
        head.raw = buf[: end + 4]
        return head


class ResponseParser:
    """Parses response heads from an upstream; errors carry status 502."""

    def __init__(self, max_header_bytes: int = 65536, max_headers: int = 200) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers

    def parse(self, buf) -> ResponseHead | None:
        buf = bytes(buf)
        try:
            found = _split_head(buf, 8192, 502, self.max_header_bytes)
        except ParseError as exc:
            raise ParseError(502, exc.reason) from None
        if found is None:
            return None
        end, lines = found
        if len(lines[0]) > 8192:
            raise ParseError(502, "first line too long")
        if end + 2 - len(lines[0]) - 2 > self.max_header_bytes:
            raise ParseError(502, "response header section too large")
        status_line = lines[0]
        if status_line[:8] == b"HTTP/1.1":
            version = 11
        elif status_line[:8] == b"HTTP/1.0":
            version = 10
        else:
            raise ParseError(502, "malformed status line")
        code = status_line[9:12]
        if (status_line[8:9] != b" " or len(code) != 3 or not code.isdigit()
                or code[0:1] == b"0" or (len(status_line) > 12 and status_line[12:13] != b" ")):
            raise ParseError(502, "malformed status line")
        status = int(code)
        if status < 100 or status > 599:
            raise ParseError(502, "status code out of range")
        reason = status_line[13:]
        if any(c not in FIELD_VALUE for c in reason):
            raise ParseError(502, "invalid character in reason phrase")

        fields, connection = _parse_fields(lines, self.max_headers, _RESPONSE_DROPPED, 502)
        lengths = []
        encodings = []
        upgrades = []
        for lname, value, _line in fields:
            if lname == b"content-length":
                lengths.append(value)
            elif lname == b"transfer-encoding":
                encodings.append(value)
            elif lname == b"upgrade":
                upgrades.append(value)
        keep_alive = (b"close" not in connection) if version == 11 else (
            b"keep-alive" in connection and b"close" not in connection)
        chunked = False
        transfer_encoding = None
        content_length = -1
        if encodings:
            if lengths:
                raise ParseError(502, "both Content-Length and Transfer-Encoding in response")
            codings = _codings(encodings, 502)
            # forwarded in canonical spelling: the elements, without empty ones or OWS around
            # them, joined by ", " (",chunked" -> "chunked", "gzip ,, chunked" -> "gzip, chunked")
            transfer_encoding = b", ".join(element for _name, _params, element in codings)
            names = [name for name, _params, _element in codings]
            if names[-1] == b"chunked":
                if names.count(b"chunked") != 1:
                    raise ParseError(502, "chunked applied twice")
                chunked = True
            else:
                keep_alive = False  # close-delimited
            if version == 10:  # RFC 9112 6.1: HTTP/1.0 with Transfer-Encoding is faulty
                keep_alive = False  # framing: take this message, then close
        elif lengths:
            content_length = _content_length(lengths, 502)

        head = ResponseHead()
        head.status = status
        head.version = version
        head.reason = reason
        head.content_length = content_length
        head.chunked = chunked
        head.transfer_encoding = transfer_encoding
        head.keep_alive = keep_alive
        # the protocols the client is told about after a 101, in the same canonical spelling
        # (not validated: the gateway relays them, it does not act on them)
        head.upgrade = (b", ".join(list_elements(upgrades)) or None) if upgrades else None
        head.head_length = end + 4
        head.kept = _kept_lines(fields, _response_dropped, connection)
        head.raw = buf[: end + 4]
        return head


# ChunkedReader states
_SIZE, _SIZE_LF, _DATA, _DATA_CR, _DATA_LF, _TRAILER, _TRAILER_LF, _DONE = range(8)
# ... and those of a chunk-size line's extensions (RFC 9112 7.1.1), all numbered after _DONE:
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
(_SIZE_WS,        # BWS after the size: only ";" may follow
 _EXT_PRE_NAME,   # after ";" (and BWS): a name must follow
 _EXT_NAME,       # in chunk-ext-name (token)
 _EXT_NAME_WS,    # BWS after a name: "=" or ";" must follow
 _EXT_PRE_VALUE,  # after "=" (and BWS): a token or a quoted-string must follow
 _EXT_TOKEN,      # in a token value
 _EXT_QUOTED,     # in a quoted-string
 _EXT_QPAIR,      # after a backslash in a quoted-string
 _EXT_VALUE_END,  # after a value: ";", BWS or the CRLF
 _EXT_VALUE_WS,   # BWS after a value: ";" must follow
 ) = range(8, 18)


def _extension_step(state: int, c: int) -> int:
    """One byte of a chunk extension: the next state, or ParseError(400)."""
    if state in (_EXT_NAME, _EXT_TOKEN):
        if c in TCHAR:
            return state
        if state == _EXT_NAME:
            if c in OWS:
                return _EXT_NAME_WS
            if c == 0x3D:  # "="
                return _EXT_PRE_VALUE
        state = _EXT_VALUE_END  # a name without a value, or a token value, has ended
    if state == _EXT_QUOTED:
        if c == 0x22:
            return _EXT_VALUE_END
        if c == 0x5C:
            return _EXT_QPAIR
        if c in QDTEXT:
            return _EXT_QUOTED
        raise ParseError(400, "invalid quoted string in chunk extension")
    if state == _EXT_QPAIR:
        if c in QUOTED_PAIR:
            return _EXT_QUOTED
        raise ParseError(400, "invalid quoted string in chunk extension")
    if state == _EXT_VALUE_END:
        if c == 0x3B:
            return _EXT_PRE_NAME
        if c == 0x0D:
            return _SIZE_LF
        if c in OWS:
            return _EXT_VALUE_WS
    elif state == _EXT_PRE_NAME:
        if c in TCHAR:
            return _EXT_NAME
        if c in OWS:
            return state
        if c == 0x0D or c == 0x3B or c == 0x3D:
            raise ParseError(400, "empty chunk extension name")
    elif state == _EXT_PRE_VALUE:
        if c in TCHAR:
            return _EXT_TOKEN
        if c == 0x22:
            return _EXT_QUOTED
        if c in OWS:
            return state
        if c == 0x0D or c == 0x3B:
            raise ParseError(400, "empty chunk extension value")
    elif state == _SIZE_WS:
        if c == 0x3B:
            return _EXT_PRE_NAME
        if c in OWS:
            return state
        raise ParseError(400, "invalid chunk size")
    else:  # _EXT_NAME_WS, _EXT_VALUE_WS: BWS must lead to what follows it
        if c in OWS:
            return state
        if c == 0x3B:
            return _EXT_PRE_NAME
        if c == 0x3D and state == _EXT_NAME_WS:
            return _EXT_PRE_VALUE
    raise ParseError(400, "invalid character in chunk extension")


class ChunkedReader:
    """Validates a chunked body as it passes (RFC 9112 7.1), chunk extensions to their grammar
    (7.1.1), without copying data.

    ``feed(data, start=0, out=None)`` returns the index in ``data`` just past the end of the
    body, or -1 when all of ``data[start:]`` belongs to the body and more is expected. ``done``
    becomes True at the end. Raises ParseError(400) on bad framing; callers remap for responses.

    ``out``, a bytearray (not ``data`` itself), receives the payload in the same pass: the chunk
    data of ``data[start:]``, without sizes, extensions, CRLFs or trailers, which is what an
    HTTP/1.0 client must be sent. On a ParseError it holds the payload before the fault.

    ``trailer_bytes`` counts the trailer section seen so far (after the last-chunk line, to
    the final CRLF included: 2 for a body without trailer fields), so that a caller can
    forward a body without its trailers.
    """

    __slots__ = ("state", "remaining", "line_len", "trailer_bytes", "done", "digits", "colon")

    def __init__(self) -> None:
        self.state = _SIZE
        self.remaining = 0
        self.line_len = 0
        self.trailer_bytes = 0
        self.digits = 0
        self.colon = False  # the current trailer line has had its name and colon
        self.done = False

    def feed(self, data, start: int = 0, out: bytearray | None = None) -> int:
        if start < 0:
            raise ValueError("start must not be negative")
        if out is not None:
            if type(out) is not bytearray:  # exactly, as the compiled reader's typed argument
                raise TypeError("out must be a bytearray")
            if isinstance(data, memoryview) and not data.c_contiguous:
                data = data.tobytes()  # as the compiled reader reads it
        i = start
        n = len(data)
        state = self.state
        while i < n:
            if state == _DATA:
                take = min(self.remaining, n - i)
                if out is not None:
                    out += data[i:i + take]
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    state = _DATA_CR
                continue
            c = data[i]
            i += 1
            if state == _SIZE:
                if c in HEXDIG:
                    self.digits += 1
                    if self.digits > 15:
                        raise ParseError(400, "chunk size too large")
                    self.remaining = self.remaining * 16 + int(chr(c), 16)
                elif c == 0x3B and self.digits:  # ';' starts a chunk extension
                    state = _EXT_PRE_NAME
                elif (c == 0x20 or c == 0x09) and self.digits:  # BWS before a ';'
                    state = _SIZE_WS
                elif c == 0x0D and self.digits:
                    state = _SIZE_LF
                else:
                    raise ParseError(400, "invalid chunk size")
                self.line_len += 1
            elif state > _DONE:  # in the extensions of a chunk-size line
                self.line_len += 1
                if self.line_len > MAX_CHUNK_LINE:
                    raise ParseError(400, "chunk extension too long")
                state = _extension_step(state, c)
            elif state == _SIZE_LF:
                if c != 0x0A:
                    raise ParseError(400, "invalid chunk size line ending")
                self.digits = 0
                self.line_len = 0
                if self.remaining == 0:
                    state = _TRAILER
                else:
                    state = _DATA
            elif state == _DATA_CR:
                if c != 0x0D:
                    raise ParseError(400, "chunk data longer than its size")
                state = _DATA_LF
            elif state == _DATA_LF:
                if c != 0x0A:
                    raise ParseError(400, "chunk data not followed by CRLF")
                state = _SIZE
            elif state == _TRAILER:
                self.trailer_bytes += 1
                if self.trailer_bytes > 32768:
                    raise ParseError(400, "chunked trailer too large")
                if c == 0x0D:
                    if self.line_len and not self.colon:
                        raise ParseError(400, "chunked trailer line without a colon")
                    state = _TRAILER_LF
                elif c == 0x0A or (c not in FIELD_VALUE):
                    raise ParseError(400, "invalid character in chunked trailer")
                else:
                    # a trailer line is a field line: token ":" value
                    if not self.colon:
                        if c == 0x3A and self.line_len:
                            self.colon = True
                        elif c not in TCHAR:
                            raise ParseError(400, "invalid chunked trailer field name")
                    self.line_len += 1
            elif state == _TRAILER_LF:
                self.trailer_bytes += 1
                if c != 0x0A:
                    raise ParseError(400, "bare CR in chunked trailer")
                if self.line_len == 0:
                    self.state = _DONE
                    self.done = True
                    return i
                self.line_len = 0
                self.colon = False
                state = _TRAILER
            else:  # _DONE
                raise ParseError(400, "data after the end of a chunked body")
        self.state = state
        return -1
