"""Semantic checks for what routes do beyond picking an upstream: match conditions, rewrites,
sticky splits, and the versioning section. Each problem is (path in the file, what was
expected), like the rest of ``loader``'s checks."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .._core.grammar import FIELD_VALUE, HOST, TOKEN_PATTERN, host_shape_ok, regex_class
from .schema import Condition, HeaderRewrite, Route, Versioning
from .units import show

Problem = tuple[str, str]

STICKY_ON = re.compile(rf"(?:(header|cookie|query):({TOKEN_PATTERN})|(ip))")
STICKY_ON_EXAMPLE = '"header:NAME", "cookie:NAME", "query:NAME" or "ip"'
TOKEN = re.compile(TOKEN_PATTERN)  # methods and header names
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
HEADER_VALUE = re.compile(regex_class(FIELD_VALUE) + "*")
# an absolute path (RFC 3986 3.3): "/" and pchars, "%" only before two hex digits. What a
# rewrite writes into the request line must be one: a space or a CRLF there would make the
# upstream read another request line (or requests) than the gateway sent.
PATH = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")
PATH_EXPECTED = "expected a path: \"/\" then letters, digits, -._~!$&'()*+,;=:@/ or %XX"


def route_rewrite_problems(route: Route, path: str,
                           versioning: Versioning | None) -> Iterator[Problem]:
    match = route.match
    where = f"{path}.match"
    if match.path_regex is not None:
        yield from _regex_problem(match.path_regex, f"{where}.path_regex")
    for index, method in enumerate(match.methods or []):
        if not TOKEN.fullmatch(method):
            yield f"{where}.methods[{index}]", f"expected an HTTP method, got {show(method)}"
    for field in ("headers", "query"):
        for name, condition in (getattr(match, field) or {}).items():
            yield from _condition_problems(field, name, condition, f"{where}.{field}.{name}")
    if match.version is not None:
        if versioning is None:
            yield f"{where}.version", "matching on version needs a versioning section"
        elif not VERSION.fullmatch(match.version):
            yield f"{where}.version", f"expected a version like \"2\", got {show(match.version)}"
    for field in ("strip_prefix",):
        value = getattr(route, field)
        if value is not None and not value.startswith("/"):
            yield f"{path}.{field}", f'expected a path starting with "/", got {show(value)}'
        elif value is not None and not PATH.fullmatch(value):
            yield f"{path}.{field}", f"{PATH_EXPECTED}, got {show(value)}"
    if route.replace_prefix is not None:
        for field, value in (("from", route.replace_prefix.from_), ("to", route.replace_prefix.to)):
            if not value.startswith("/"):
                yield (f"{path}.replace_prefix.{field}",
                       f'expected a path starting with "/", got {show(value)}')
            elif not PATH.fullmatch(value):
                yield f"{path}.replace_prefix.{field}", f"{PATH_EXPECTED}, got {show(value)}"
        if route.strip_prefix is not None:
            yield path, 'expected "strip_prefix" or "replace_prefix", not both'
    if route.strip_version and (versioning is None or versioning.path is None):
        yield f"{path}.strip_version", "strip_version needs versioning.path"
    for field in ("request_headers", "response_headers"):
        rewrite = getattr(route, field)
        if rewrite is not None:
            yield from _header_rewrite_problems(rewrite, f"{path}.{field}",
                                                field == "request_headers")


def _regex_problem(pattern: str, path: str) -> Iterator[Problem]:
    try:
        re.compile(pattern)
    except re.error as exc:
        yield path, f"expected a valid regular expression: {exc}"


def _condition_problems(field: str, name: str, condition: str | Condition,
                        path: str) -> Iterator[Problem]:
    if field == "headers" and not TOKEN.fullmatch(name):
        yield path, f"expected a header name, got {show(name)}"
    if isinstance(condition, str):
        return
    given = [k for k in ("present", "regex") if getattr(condition, k) is not None]
    if len(given) != 1:
        yield path, "expected a value, {present: true|false} or {regex: ...}"
    elif condition.regex is not None:
        if field == "query":
            yield f"{path}.regex", "query conditions are a value or {present: true|false}"
        else:
            yield from _regex_problem(condition.regex, f"{path}.regex")


# Fields the gateway writes itself: a rewrite of one would send two (two Content-Lengths is
# request smuggling) or have no effect (a client's X-Forwarded-For is not among the lines
# rewrites see). Why each is the gateway's, for the message.
FRAMING = "is the message's framing, which fastgw writes itself"
HOP = "is hop-by-hop (it describes one connection; fastgw writes its own)"
EXPECT = "is answered by fastgw (100-continue) and never forwarded"
NOT_YET = "; a proxy in front of fastgw cannot be trusted to set it yet"
GATEWAY_OWNED = {
    "content-length": FRAMING, "transfer-encoding": FRAMING,
    "connection": HOP, "keep-alive": HOP, "proxy-connection": HOP, "te": HOP, "trailer": HOP,
    "upgrade": HOP, "http2-settings": HOP,
}
REQUEST_OWNED = {
    **GATEWAY_OWNED,
    "expect": EXPECT,
    "x-forwarded-for": "is written by fastgw (the client's list, then the client address)"
                       + NOT_YET,
    "x-forwarded-proto": "is written by fastgw (http)" + NOT_YET,
    "x-forwarded-host": "is written by fastgw (the request's Host)" + NOT_YET,
}


def _header_rewrite_problems(rewrite: HeaderRewrite, path: str,
                             request: bool) -> Iterator[Problem]:
    owned = REQUEST_OWNED if request else GATEWAY_OWNED
    for kind in ("set", "add"):
        for name, value in getattr(rewrite, kind).items():
            if not TOKEN.fullmatch(name):
                yield f"{path}.{kind}.{name}", f"expected a header name, got {show(name)}"
            elif name.lower() in owned:
                done = "set" if kind == "set" else "added"
                yield f"{path}.{kind}.{name}", f"{name} {owned[name.lower()]}; it cannot be {done}"
            elif request and kind == "add" and name.lower() == "host":
                yield (f"{path}.{kind}.{name}",
                       "a request has exactly one Host: use set to send another")
            elif not HEADER_VALUE.fullmatch(value):
                yield f"{path}.{kind}.{name}", "expected a header value without line breaks"
            elif request and name.lower() == "host" and not _host_ok(value):
                yield (f"{path}.{kind}.{name}",
                       f'expected a host, with or without a port ("api.internal:8080"), got '
                       f"{show(value)}")
    for index, name in enumerate(rewrite.remove):
        if not TOKEN.fullmatch(name):
            yield f"{path}.remove[{index}]", f"expected a header name, got {show(name)}"
        elif name.lower() in owned:
            yield f"{path}.remove[{index}]", f"{name} {owned[name.lower()]}; it cannot be removed"
        elif request and name.lower() == "host":
            yield (f"{path}.remove[{index}]",
                   "a request has exactly one Host: use set to send another")


def _host_ok(value: str) -> bool:
    data = value.encode("latin-1")
    return bool(data) and all(c in HOST for c in data) and host_shape_ok(data)


def versioning_problems(versioning: Versioning, path: str) -> Iterator[Problem]:
    if versioning.header is None and versioning.accept is None and versioning.path is None:
        yield path, "expected at least one of header, accept, path"
    if versioning.header is not None and not TOKEN.fullmatch(versioning.header):
        yield f"{path}.header", f"expected a header name, got {show(versioning.header)}"
    for field in ("accept", "path"):
        template = getattr(versioning, field)
        if template is not None and template.count("{version}") != 1:
            yield (f"{path}.{field}",
                   f'expected a template with one "{{version}}", got {show(template)}')
    if versioning.path is not None and not versioning.path.startswith("/"):
        yield (f"{path}.path",
               f'expected a path template starting with "/", got {show(versioning.path)}')
    if versioning.default is not None and not VERSION.fullmatch(versioning.default):
        yield f"{path}.default", f"expected a version like \"1\", got {show(versioning.default)}"
    if versioning.unknown == "default" and versioning.default is None:
        yield f"{path}.unknown", 'unknown: default needs a "default" version'
    for version, deprecation in versioning.deprecated.items():
        where = f"{path}.deprecated.{version}"
        if not VERSION.fullmatch(version):
            yield where, f"expected a version like \"1\", got {show(version)}"
        for field in ("since", "sunset"):
            value = getattr(deprecation, field)
            if value is not None and not DATE.fullmatch(value):
                yield f"{where}.{field}", f'expected a date "YYYY-MM-DD", got {show(value)}'
    try:
        build_versioning(versioning)
    except ValueError as exc:  # the extractor's own checks, e.g. an Accept template's shape
        field, _, message = str(exc).partition(": ")
        yield f"$.{field}" if field.startswith("versioning") else path, message or str(exc)


def build_versioning(versioning: Versioning):
    """The runtime extractor for a checked ``versioning`` section."""
    from ..versioning import Versioning as Extractor
    from ..versioning import VersioningSpec

    return Extractor(VersioningSpec(
        header=versioning.header,
        accept=versioning.accept,
        path=versioning.path,
        default=versioning.default,
        precedence=tuple(versioning.precedence),
        deprecated={v: d.sunset for v, d in versioning.deprecated.items()},
        deprecated_since={v: d.since for v, d in versioning.deprecated.items() if d.since},
    ))
