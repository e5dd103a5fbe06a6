"""The configuration file's shape, as typed msgspec Structs, and what a valid address is.

Every Struct forbids unknown fields (a typo is an error, never ignored) and is keyword-only, so
later issues add optional fields without reordering anything. After ``__post_init__`` the values
are what the runtime wants: durations are float seconds, sizes int bytes, ``listen`` a list and
every route has a name. Cross-field rules (unknown upstream names, duplicates) are not checked
here but in ``loader``, which knows the path of each value in the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import cached_property
from typing import Annotated, Literal

import msgspec

from .._core.grammar import TOKEN_PATTERN
from .units import Duration, Size, parse_duration, parse_size

__all__ = [
    "Condition",
    "Config",
    "Deprecation",
    "HeaderRewrite",
    "Keepalive",
    "Limits",
    "LogLevel",
    "Match",
    "PrefixReplacement",
    "Route",
    "SplitEntry",
    "Target",
    "Timeouts",
    "Upstream",
    "Versioning",
    "parse_address",
]

LogLevel = Literal["debug", "info", "warning", "error"]

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(min_length=1)]

_HOSTNAME = re.compile(
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*"
)
ADDRESS_EXAMPLE = '"host:port" (e.g. "127.0.0.1:9001")'


def parse_address(text: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[::1]:8080") into (host, port); ValueError says what's wrong.

    The host comes back without brackets, ready for ``socket.getaddrinfo``.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text:
        raise ValueError(f"expected {ADDRESS_EXAMPLE}")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"expected {ADDRESS_EXAMPLE} with a port from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        return _ipv6_host(host[1:-1]), int(port_text)
    if ":" in host:
        raise ValueError(f'expected {ADDRESS_EXAMPLE}; write IPv6 hosts in brackets, "[::1]:8080"')
    if len(host) > 253 or not _HOSTNAME.fullmatch(host) or not _valid_if_numeric(host):
        raise ValueError(f"expected {ADDRESS_EXAMPLE} with a valid hostname or IP address")
    return host, int(port_text)


def _ipv6_host(host: str) -> str:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(
            f"expected {ADDRESS_EXAMPLE} with a valid IPv6 address in brackets"
        ) from None
    return host


def _valid_if_numeric(host: str) -> bool:
    """A host made only of digits and dots must be a real IPv4 address ("256.1.1.1" is not)."""
    if not host.replace(".", "").isdigit():
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _normalize_units(struct: msgspec.Struct) -> None:
    """Store Duration fields as plain float seconds and Size fields as plain int bytes.

    Decoding already parsed them (with the field's path in any error); this also lets code
    build a Struct directly with ``Timeouts(client_header="2s")``.
    """
    for field in msgspec.structs.fields(struct):
        if field.type is Duration:
            setattr(struct, field.name, parse_duration(getattr(struct, field.name)))
        elif field.type is Size:
            setattr(struct, field.name, parse_size(getattr(struct, field.name)))


class Target(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, dict=True):
    """One server of an upstream. ``weight: 0`` or ``down: true`` keeps it defined but sends it
    nothing (drain); a ``backup`` target gets traffic only when no primary one is available."""

    address: str
    weight: NonNegative = 1
    backup: bool = False
    down: bool = False

    @cached_property
    def host(self) -> str:
        return parse_address(self.address)[0]

    @cached_property
    def port(self) -> int:
        return parse_address(self.address)[1]


class Keepalive(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Idle upstream connections kept per target for reuse."""

    max_idle: NonNegative = 1024
    idle_timeout: Duration = 60.0

    def __post_init__(self) -> None:
        _normalize_units(self)


Balance = Literal["round_robin", "consistent_hash", "least_conn"]

# what a consistent hash is keyed on: header:NAME | cookie:NAME | query:NAME | ip | path | uri
HASH_ON = re.compile(rf"(?:(header|cookie|query):({TOKEN_PATTERN})|(ip|path|uri))")
HASH_ON_EXAMPLE = '"header:NAME", "cookie:NAME", "query:NAME", "ip", "path" or "uri"'


class Upstream(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A named group of interchangeable targets, and how a target is picked for a request."""

    targets: list[Target]
    keepalive: Keepalive = msgspec.field(default_factory=Keepalive)
    balance: Balance = "round_robin"
    hash_on: str | None = None  # the consistent_hash key; see HASH_ON


class Condition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A header or query condition other than plain equality: ``{present: true}``,
    ``{present: false}`` or (headers only) ``{regex: "^v[0-9]+$"}``."""

    present: bool | None = None
    regex: str | None = None


class Match(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a request must look like to take a route; every field unset matches everything."""

    host: str | None = None  # exact, or "*.example.com" for any subdomain
    path: str | None = None  # exact (the query is ignored)
    path_prefix: str | None = None
    path_regex: str | None = None  # Python regex, matched from the start of the path
    methods: list[str] | None = None
    headers: dict[str, str | Condition] | None = None  # NAME: exact value, or a Condition
    query: dict[str, str | Condition] | None = None  # NAME: exact raw value, or {present: ...}
    version: str | None = None  # the API version extracted by `versioning`


class SplitEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    upstream: str
    weight: NonNegative


class PrefixReplacement(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``{from: /old/, to: /new/}``: a path starting with ``from`` gets ``to`` instead."""

    from_: str = msgspec.field(name="from")
    to: str


class HeaderRewrite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Header changes: ``set`` replaces any existing value, ``add`` appends a line, ``remove``
    drops every line of that name."""

    set: dict[str, str] = msgspec.field(default_factory=dict)
    add: dict[str, str] = msgspec.field(default_factory=dict)
    remove: list[str] = msgspec.field(default_factory=list)


class Route(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Requests matching ``match`` go to ``upstream``, or to one side of ``split``.
    Routes are tried in file order; the first that matches wins.

    Unnamed routes (``name`` omitted) are called "route-<index>" once the Config is built.
    """

    match: Match = msgspec.field(default_factory=Match)
    upstream: str | None = None
    split: list[SplitEntry] | None = None  # weighted upstreams (canary)
    sticky_on: str | None = None  # split key: header:NAME | cookie:NAME | query:NAME | ip
    name: Name = ""
    strip_prefix: str | None = None
    replace_prefix: PrefixReplacement | None = None
    strip_version: bool = False  # remove the versioning.path segment before forwarding
    request_headers: HeaderRewrite | None = None
    response_headers: HeaderRewrite | None = None


class Deprecation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    since: str | None = None  # "YYYY-MM-DD": when it was deprecated (Deprecation header)
    sunset: str | None = None  # "YYYY-MM-DD": when it goes away (Sunset header)


class Versioning(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where a request's API version comes from; routes select on it with ``match.version``."""

    header: str | None = None
    accept: str | None = None  # e.g. "application/vnd.example.v{version}+json"
    path: str | None = None  # e.g. "/v{version}/"
    default: str | None = None
    precedence: list[Literal["path", "header", "accept"]] = msgspec.field(
        default_factory=lambda: ["path", "header", "accept"])
    deprecated: dict[str, Deprecation] = msgspec.field(default_factory=dict)
    # a version that no route serves: 404 naming it, or route as the default version
    unknown: Literal["reject", "default"] = "reject"


class Timeouts(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """All in float seconds after loading."""

    client_header: Duration = 10.0
    client_idle: Duration = 75.0
    upstream_connect: Duration = 5.0
    upstream_read: Duration = 60.0
    # a client that is sent bytes must take some within this long (nginx's send_timeout)
    client_send: Duration = 60.0

    def __post_init__(self) -> None:
        _normalize_units(self)


class Limits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a request may hold. Sizes in int bytes after loading; ``max_headers`` is a count;
    ``underscores_in_headers`` (as nginx's directive): header names with "_" are forwarded
    rather than dropped."""

    max_request_line: Size = 8192
    max_header_bytes: Size = 32768
    max_headers: Positive = 100
    max_body_bytes: Size = 64 * 1024**2
    request_buffer: Size = 64 * 1024
    underscores_in_headers: bool = False

    def __post_init__(self) -> None:
        _normalize_units(self)


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole file. ``listen`` may be written as one string; it is a list after loading."""

    listen: str | list[str]
    log_level: LogLevel = "info"
    # worker processes: a number, or "auto" for one per CPU
    workers: Annotated[int, msgspec.Meta(ge=1, le=1024)] | Literal["auto"] = 1
    pidfile: str | None = None  # also where the reload status file lives (PIDFILE.status)
    # SIGTERM/SIGINT: how long in-flight requests may take before connections are closed
    shutdown_timeout: Duration = 30.0
    upstreams: dict[Name, Upstream]
    routes: list[Route]
    versioning: Versioning | None = None
    timeouts: Timeouts = msgspec.field(default_factory=Timeouts)
    limits: Limits = msgspec.field(default_factory=Limits)

    def __post_init__(self) -> None:
        _normalize_units(self)
        if isinstance(self.listen, str):
            self.listen = [self.listen]
        for index, route in enumerate(self.routes):
            if not route.name:
                route.name = f"route-{index}"

    def worker_count(self) -> int:
        """``workers`` as a number (``auto``: the CPUs this process may run on)."""
        if self.workers == "auto":
            return len(os.sched_getaffinity(0)) or 1
        return self.workers

    def listen_addresses(self) -> list[tuple[str, int]]:
        """(host, port) per listener, IPv6 hosts without brackets."""
        return [parse_address(address) for address in self.listen]
