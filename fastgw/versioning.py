"""API version extraction: which version a request asks for, from its path, a header or Accept.

Sans-IO and compiled once per plan: ``Versioning(spec)`` checks the spec and precompiles
everything, ``extract(head)`` only reads the request head it is given (``head.path`` and
``head.header(name)``). It must not touch sockets, the clock or the config file; a malformed
value from a client is either ignored or raised as ``VersionError`` (a 400), never anything else.

Rules, one per source (docs/versioning.md says the same for users):

- a version is a token of 1 to 32 characters: ``[0-9A-Za-z][0-9A-Za-z._-]{0,31}``; in the path
  it must also start with a digit, so ``/videos`` is not version "ideos" of ``/v{version}/``;
- header: its (first) value, OWS-trimmed, is the version; empty counts as absent; any other
  value that is not a token raises ``VersionError``;
- accept: RFC 9110 media ranges; of those matching the template with q > 0, the highest q
  wins, ties by order; malformed ranges, malformed q-values and malformed versions are skipped;
- path: the template matches the start of the raw path (no percent-decoding, case-sensitive)
  and must end at a segment boundary; a path that does not fit is simply not versioned;
- sources are tried in ``precedence`` order, then ``default``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from ._core.grammar import QVALUE, TCHAR_TEXT, is_token

SOURCES = ("path", "header", "accept")

_TOKEN = r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}"
_PATH_TOKEN = rb"[0-9][0-9A-Za-z._-]{0,31}"
_TOKEN_STR = re.compile(_TOKEN)
_TOKEN_BYTES = re.compile(_TOKEN.encode())
# media-type = type "/" subtype, both tokens (RFC 9110 8.3.1); header names and parameters
# are tokens (grammar.py's tchar)
_MEDIA_CHARS = TCHAR_TEXT | {"/"}
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CACHE_SIZE = 256  # distinct header/Accept values remembered per Versioning; then no more added
_TOKEN_RULE = (
    "a version is 1 to 32 characters of letters, digits, '.', '_' or '-', "
    "starting with a letter or digit"
)


@dataclass(frozen=True)
class VersioningSpec:
    """How a request names its API version (the ``versioning:`` config section)."""

    header: str | None = None  # e.g. "X-API-Version": its value is the version
    accept: str | None = None  # e.g. "application/vnd.example.v{version}+json"
    path: str | None = None  # e.g. "/v{version}/": matches the start of the path
    default: str | None = None  # the version of a request that names none
    precedence: tuple[str, ...] = SOURCES
    # version -> its sunset date "YYYY-MM-DD", or None for no sunset date
    deprecated: dict[str, str | None] = field(default_factory=dict, hash=False)
    # version -> the date it was (or will be) deprecated, "YYYY-MM-DD"; optional
    deprecated_since: dict[str, str] = field(default_factory=dict, hash=False)


class Version(NamedTuple):
    """What ``extract`` found: the version (None: none asked, no default) and its source
    ("path", "header", "accept", "default"; None with no version)."""

    value: str | None
    source: str | None


NO_VERSION = Version(None, None)


class VersionError(Exception):
    """The request names a version in a malformed way that the rules reject: answer 400
    with ``message``. ``source`` says where ("header")."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.message = message


class _Head(Protocol):
    path: bytes

    def header(self, name: bytes) -> bytes | None: ...


class Versioning:
    """A compiled ``VersioningSpec``. Raises ``ValueError`` for a spec that cannot work."""

    __slots__ = (
        "spec", "_order", "_default", "_header_name", "_header_label", "_header_cache",
        "_accept_needle", "_accept_re", "_accept_cache", "_path_prefix", "_path_re",
        "_path_keep", "_path_cache", "_deprecation",
    )

    def __init__(self, spec: VersioningSpec) -> None:
        self.spec = spec
        if spec.default is not None:
            _check_version(spec.default, "default")
        self._default = NO_VERSION if spec.default is None else Version(spec.default, "default")
        self._header_cache: dict[bytes, Version] = {}
        self._accept_cache: dict[bytes, Version | None] = {}
        self._path_cache: dict[bytes, Version] = {}
        self._compile_header(spec.header)
        self._compile_accept(spec.accept)
        self._compile_path(spec.path)
        self._compile_precedence(spec)
        self._deprecation = _compile_deprecation(spec.deprecated, spec.deprecated_since)

    # -- compile -------------------------------------------------------------------------

    def _compile_header(self, name: str | None) -> None:
        if name is not None and not is_token(name):
            raise ValueError(f"versioning.header: {name!r} is not a valid header name")
        self._header_name = None if name is None else name.lower().encode()
        self._header_label = name

    def _compile_accept(self, template: str | None) -> None:
        self._accept_needle = self._accept_re = None
        if template is None:
            return
        pre, post = _split_template(template, "accept")
        if pre.count("/") + post.count("/") != 1 or not set(pre + post) <= _MEDIA_CHARS:
            raise ValueError(
                f"versioning.accept: {template!r} must be a media type type/subtype "
                "without parameters, with {version} in it"
            )
        if not pre.rpartition("/")[2] + post.partition("/")[0]:
            raise ValueError(
                f"versioning.accept: {template!r}: {{version}} needs literal text beside it in "
                "its type or subtype"
            )
        # Cheap pre-check before any parsing: the lowercased literal part before {version}
        # (or after it, when nothing precedes) must occur in the lowercased Accept value.
        self._accept_needle = (pre or post).lower().encode("ascii")
        self._accept_re = re.compile(
            re.escape(pre) + "(" + _TOKEN + ")" + re.escape(post), re.IGNORECASE | re.ASCII
        )

    def _compile_path(self, template: str | None) -> None:
        self._path_prefix = self._path_re = None
        self._path_keep = 0
        if template is None:
            return
        pre, post = _split_template(template, "path")
        if not pre.startswith("/"):
            raise ValueError(f"versioning.path: {template!r} must start with '/'")
        if any(c in template for c in "?#% \t"):
            raise ValueError(f"versioning.path: {template!r} has a character not allowed there")
        # The version must end its template part at a segment boundary: after the literal
        # that follows it (trailing "/" optional) comes "/", "?" or the end of the path.
        # Group 1 is the version, group 2 the rest of its segment (up to the next "/").
        post_segment, slash, post_rest = post.partition("/")
        rest = (slash + post_rest).rstrip("/")
        pattern = (
            re.escape(pre.encode()) + b"(" + _PATH_TOKEN + b")(" + re.escape(post_segment.encode())
            + b")" + re.escape(rest.encode()) + b"(?=[/?]|\\Z)"
        )
        self._path_prefix = pre.encode()
        self._path_re = re.compile(pattern)
        self._path_keep = pre.rfind("/")  # strip_path keeps the path before the version's segment

    def _compile_precedence(self, spec: VersioningSpec) -> None:
        seen: set[str] = set()
        for name in spec.precedence:
            if name not in SOURCES:
                raise ValueError(
                    f"versioning.precedence: {name!r} is not one of {', '.join(SOURCES)}"
                )
            if name in seen:
                raise ValueError(f"versioning.precedence: {name!r} is listed twice")
            seen.add(name)
        configured = {"path": spec.path, "header": spec.header, "accept": spec.accept}
        for name, value in configured.items():
            if value is not None and name not in seen:
                raise ValueError(
                    f"versioning.precedence: {name} is configured but not listed in precedence"
                )
        methods = {
            "path": self._from_path, "header": self._from_header, "accept": self._from_accept,
        }
        self._order = tuple(methods[n] for n in spec.precedence if configured[n] is not None)

    # -- per request -----------------------------------------------------------------------

    def extract(self, head: _Head) -> Version:
        """The version ``head`` asks for and where it came from; ``default`` (or
        ``NO_VERSION``) when no source gives one. Raises ``VersionError`` for a malformed
        version header."""
        for source in self._order:
            found = source(head)
            if found is not None:
                return found
        return self._default

    def _from_path(self, head: _Head) -> Version | None:
        path = head.path
        if not path.startswith(self._path_prefix):  # type: ignore[arg-type]
            return None
        m = self._path_re.match(path)  # type: ignore[union-attr]
        if m is None:
            return None
        raw = m.group(1)
        found = self._path_cache.get(raw)
        if found is None:
            found = Version(raw.decode("ascii"), "path")
            if len(self._path_cache) < _CACHE_SIZE:
                self._path_cache[raw] = found
        return found

    def _from_header(self, head: _Head) -> Version | None:
        raw = head.header(self._header_name)  # type: ignore[arg-type]
        if not raw:
            return None
        found = self._header_cache.get(raw)
        if found is not None:
            return found
        if _TOKEN_BYTES.fullmatch(raw) is None:
            raise VersionError(
                "header", f"malformed {self._header_label} header: {_TOKEN_RULE}"
            )
        found = Version(raw.decode("ascii"), "header")
        if len(self._header_cache) < _CACHE_SIZE:
            self._header_cache[raw] = found
        return found

    def _from_accept(self, head: _Head) -> Version | None:
        raw = head.header(b"accept")
        if not raw or self._accept_needle not in raw.lower():  # type: ignore[operator]
            return None
        cache = self._accept_cache
        if raw in cache:
            return cache[raw]
        value = self.accept_version(raw.decode("latin-1"))
        found = None if value is None else Version(value, "accept")
        if len(cache) < _CACHE_SIZE:
            cache[raw] = found
        return found

    def accept_version(self, accept: str) -> str | None:
        """The version named by an Accept field value: from the media range that matches the
        template with the highest q (> 0), the first of equals; None if there is none."""
        pattern = self._accept_re
        if pattern is None:
            return None
        best = None
        best_q = 0
        for media_type, q in parse_accept(accept):
            if q > best_q:
                m = pattern.fullmatch(media_type)
                if m is not None:
                    best, best_q = m.group(1), q
        return best

    def strip_path(self, path: bytes) -> bytes:
        """``path`` without the segment that holds the version ("/v2/users?x" -> "/users?x",
        "/v2" -> "/"); unchanged when the path does not match the template."""
        pattern = self._path_re
        if pattern is None or not path.startswith(self._path_prefix):  # type: ignore[arg-type]
            return path
        m = pattern.match(path)
        if m is None:
            return path
        keep = self._path_keep
        rest = path[m.end(2) :]
        if keep > 0:
            return path[:keep] + rest
        return rest if rest.startswith(b"/") else b"/" + rest

    @property
    def deprecates(self) -> bool:
        """Whether any version is deprecated (responses may then carry Deprecation)."""
        return bool(self._deprecation)

    def response_headers(self, version: str | None) -> bytes:
        """Deprecation and Sunset header lines (CRLF-terminated) for a deprecated version,
        b"" for any other version or None."""
        if version is None:
            return b""
        return self._deprecation.get(version, b"")


# -- Accept (RFC 9110 12.5.1) ----------------------------------------------------------------


def parse_accept(value: str) -> list[tuple[str, int]]:
    """The media ranges of an Accept field value as (type/subtype, q in thousandths), in order.

    Ranges that are malformed (bad type/subtype, bad parameter, unterminated quoted-string,
    bad q-value) are left out; so are ranges with q=0. Parameters other than the first q are
    checked for syntax and otherwise ignored (after q they are accept-ext, RFC 9110 12.5.1).
    """
    out: list[tuple[str, int]] = []
    n = len(value)
    i = 0
    while i < n:
        # one list element: OWS media-range *( OWS ";" OWS [ parameter ] ) OWS
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and value[i] in _MEDIA_CHARS:
            i += 1
        media_type = value[start:i]
        kind, _, subtype = media_type.partition("/")
        ok = bool(kind and subtype) and "/" not in subtype
        q = 1000
        q_seen = False
        while ok:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] == ",":
                break
            if value[i] != ";":
                ok = False
                break
            i += 1
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] in ",;":
                continue  # an empty parameter is allowed
            start = i
            while i < n and value[i] in TCHAR_TEXT:
                i += 1
            name = value[start:i]
            if not name or i >= n or value[i] != "=":
                ok = False
                break
            i += 1
            if i < n and value[i] == '"':
                i += 1
                while i < n and value[i] != '"':
                    i += 2 if value[i] == "\\" else 1
                if i >= n:
                    ok = False  # unterminated quoted-string: the rest of the field is lost
                    break
                i += 1
                param = None
            else:
                start = i
                while i < n and value[i] in TCHAR_TEXT:
                    i += 1
                param = value[start:i]
                if not param:
                    ok = False
                    break
            if name in ("q", "Q") and not q_seen:
                q_seen = True
                if param is None or QVALUE.fullmatch(param) is None:
                    ok = False
                    break
                whole, _, frac = param.partition(".")
                q = int(whole) * 1000 + int((frac + "000")[:3])
        if ok and q > 0:
            out.append((media_type, q))
        elif not ok:
            i = _skip_element(value, i)
    return out


def _skip_element(value: str, i: int) -> int:
    """The index of the comma that ends the element containing ``i`` (quotes respected), or
    the end."""
    n = len(value)
    while i < n and value[i] != ",":
        if value[i] == '"':
            i += 1
            while i < n and value[i] != '"':
                i += 2 if value[i] == "\\" else 1
        i += 1
    return i


# -- helpers ---------------------------------------------------------------------------------


def _split_template(template: str, where: str) -> tuple[str, str]:
    if template.count("{version}") != 1:
        raise ValueError(f"versioning.{where}: {template!r} must contain {{version}} once")
    pre, _, post = template.partition("{version}")
    return pre, post


def _check_version(version: str, where: str) -> None:
    if not isinstance(version, str) or _TOKEN_STR.fullmatch(version) is None:
        raise ValueError(f"versioning.{where}: {version!r} is not a valid version: {_TOKEN_RULE}")


def _epoch(date: str, where: str) -> int:
    """Seconds since the epoch of 00:00:00 UTC on a "YYYY-MM-DD" date."""
    if _DATE.fullmatch(date) is None:
        raise ValueError(f"versioning.{where}: {date!r} is not a date like 2027-06-30")
    year, month, day = (int(p) for p in date.split("-"))
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(f"versioning.{where}: {date!r} is not a date in the calendar")
    return calendar.timegm((year, month, day, 0, 0, 0))


def http_date(date: str, where: str = "deprecated") -> bytes:
    """The IMF-fixdate (RFC 9110 5.6.7) of 00:00:00 GMT on a "YYYY-MM-DD" date."""
    _epoch(date, where)
    year, month, day = (int(p) for p in date.split("-"))
    weekday = calendar.weekday(year, month, day)
    return b"%s, %02d %s %04d 00:00:00 GMT" % (
        _DAYS[weekday].encode(), day, _MONTHS[month].encode(), year)


def _compile_deprecation(
    deprecated: dict[str, str | None], since: dict[str, str]
) -> dict[str, bytes]:
    """version -> the response header lines it adds.

    Deprecation (RFC 9745) is an sf-date: ``@`` and the epoch seconds of the ``since`` date;
    with no such date, ``@0``: a date in the past means "deprecated now", which is what the
    config says, and the value stays an sf-date that RFC 9745 clients parse (the older drafts'
    ``true`` fails that parse, so such a client would drop the field). Sunset (RFC 8594) is
    the HTTP-date of the sunset day at 00:00:00 GMT.
    """
    out: dict[str, bytes] = {}
    for version in since:
        if version not in deprecated:
            raise ValueError(
                f"versioning.deprecated_since: version {version!r} is not listed as deprecated"
            )
    for version, sunset in deprecated.items():
        _check_version(version, "deprecated")
        when = since.get(version)
        stamp = 0 if when is None else _epoch(when, f"deprecated.{version}.since")
        lines = b"Deprecation: @%d\r\n" % stamp
        if sunset is not None:
            if when is not None and _epoch(sunset, f"deprecated.{version}.sunset") < stamp:
                raise ValueError(
                    f"versioning.deprecated.{version}: sunset {sunset} is before since {when}"
                )
            lines += b"Sunset: " + http_date(sunset, f"deprecated.{version}.sunset") + b"\r\n"
        out[version] = lines
    return out
