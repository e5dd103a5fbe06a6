"""Route matching: the first route (in list order) whose conditions all hold wins. Sans-IO.

The router sees only the conditions of each route (``RouteSpec``); what a route does (its
upstream, split, rewrites) stays in the plan, keyed by ``RouteSpec.index``, which is what
``Router.match`` returns (-1 when nothing matches).

Strategy: routes are compiled once into indexes, so a request never walks the whole table.
Candidates come from the request's host (a dict of exact hosts, a dict of wildcard suffixes,
and the host-less routes) and, inside each host group, from its path (a dict of exact paths, a
sorted index of prefixes searched once with bisect, and the routes with no path condition).
Only those candidates have their remaining conditions (regex, methods, headers, query,
version) checked, in table order, and a group stops as soon as it cannot beat the best match
found so far. All comparisons are on the raw request bytes: nothing is decoded. The only state
that changes after compiling is a bounded memo of raw Host values already looked up.

``shadowed`` finds routes that an earlier route makes unreachable, for ``fastgw check``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

__all__ = [
    "HeaderCondition", "QueryCondition", "RouteError", "RouteSpec", "Router", "shadowed",
]


@dataclass(frozen=True)
class HeaderCondition:
    """A condition on the first field line named ``name`` (case-insensitive).

    Exactly one of: ``value`` (equal, byte for byte, to the value without surrounding
    whitespace), ``present`` (True: the header is there; False: it is not), ``regex``
    (``re.match`` on the value: anchored at the start only).
    """

    name: str
    value: str | None = None
    present: bool | None = None
    regex: str | None = None


@dataclass(frozen=True)
class QueryCondition:
    """A condition on the first query argument named ``name`` (raw, undecoded bytes).

    Exactly one of: ``present`` (True: ``name`` or ``name=...`` is in the query; False: it is
    not) or ``value`` (the argument's raw value equals this; ``?a`` and ``?a=`` have value "").
    """

    name: str
    value: str | None = None
    present: bool | None = None


@dataclass(frozen=True)
class RouteSpec:
    """The conditions of one route; ``index`` is what ``Router.match`` returns for it."""

    index: int
    name: str
    host: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    path_regex: str | None = None
    methods: tuple[str, ...] | None = None
    headers: tuple[HeaderCondition, ...] = ()
    query: tuple[QueryCondition, ...] = ()
    version: str | None = None


class RouteError(ValueError):
    """A route condition that cannot be compiled; the message names the route and field."""

    def __init__(self, message: str, index: int = -1, field: str = "", why: str = "") -> None:
        super().__init__(message)
        self.index = index  # the route's RouteSpec.index
        self.field = field
        self.why = why


def _fail(spec: RouteSpec, field: str, why: str) -> RouteError:
    return RouteError(f"route {spec.name!r}: {field}: {why}", spec.index, field, why)


def _regex(spec: RouteSpec, field: str, pattern: str) -> re.Pattern[bytes]:
    try:
        return re.compile(pattern.encode())
    except re.error as exc:
        raise _fail(spec, field, f"invalid regular expression {pattern!r}: {exc}") from None


def _host_key(spec: RouteSpec) -> tuple[str, bytes] | None:
    """("exact", host) or ("wild", ".suffix"), normalized; None when any host matches."""
    host = spec.host
    if host is None or host == "*":
        return None
    host = host.lower().rstrip(".")
    if not host.startswith("[") and ":" in host:
        raise _fail(spec, "host", f"expected a host name without a port, got {spec.host!r}")
    if host.startswith("*."):
        kind, host = "wild", host[1:]
    else:
        kind = "exact"
    if "*" in host or len(host) < (2 if kind == "wild" else 1):
        raise _fail(spec, "host", f"a wildcard is only allowed as '*.domain', got {spec.host!r}")
    return (kind, host.encode())


def _regex_literal_prefix(pattern: str) -> str:
    """A literal that every string ``re.match``-ing ``pattern`` starts with ("" if unsure)."""
    if "|" in pattern:  # a top-level alternative would make the prefix optional
        return ""
    i = 1 if pattern.startswith("^") else 0
    start = i
    while i < len(pattern) and pattern[i] not in ".^$*+?{}[]\\|()":
        i += 1
    literal = pattern[start:i]
    if i < len(pattern) and pattern[i] in "*?{":  # the last character is optional
        literal = literal[:-1]
    return literal


class _Route:
    """One route, compiled: the conditions its index entry does not already guarantee."""

    __slots__ = ("pos", "index", "simple", "prefix", "regex", "methods", "headers", "query",
                 "version")

    def __init__(self, pos: int, spec: RouteSpec, path_key: tuple[str, bytes] | None) -> None:
        self.pos = pos
        self.index = spec.index
        kind = path_key[0] if path_key else None
        # A prefix still to check when the path index used the exact path or a regex literal.
        prefix = _prefix_of(spec)
        self.prefix = prefix if prefix is not None and kind != "prefix" else None
        self.regex = _regex(spec, "path_regex", spec.path_regex).match \
            if spec.path_regex is not None else None
        self.methods = frozenset(m.encode() for m in spec.methods) \
            if spec.methods is not None else None
        headers = []
        for i, h in enumerate(spec.headers):
            field = f"headers[{i}]"
            given = [x for x in (h.value, h.present, h.regex) if x is not None]
            if len(given) != 1:
                raise _fail(spec, field, "expected exactly one of value, present, regex")
            name = h.name.lower().encode()
            if h.regex is not None:
                headers.append((name, 2, _regex(spec, field, h.regex).match))
            elif h.value is not None:
                headers.append((name, 1, h.value.encode()))
            else:
                headers.append((name, 0, bool(h.present)))
        self.headers = tuple(headers)
        query = []
        for i, q in enumerate(spec.query):
            if (q.value is None) == (q.present is None):
                raise _fail(spec, f"query[{i}]", "expected exactly one of value, present")
            if q.value is not None:
                query.append((q.name.encode(), 1, q.value.encode()))
            else:
                query.append((q.name.encode(), 0, bool(q.present)))
        self.query = tuple(query)
        self.version = spec.version
        self.simple = (self.prefix is None and self.regex is None and self.methods is None
                       and not self.headers and not self.query and self.version is None)


def _prefix_of(spec: RouteSpec) -> bytes | None:
    p = spec.path_prefix
    if p is None or p in ("", "/"):
        return None
    return p.encode()


class _PathIndex:
    """Routes of one host group, by exact path, by prefix, and with no path condition.

    Prefixes are found without probing every length: in the sorted list of prefixes, the
    last one that sorts at or before the path either is a prefix of it, or shares with it
    every prefix of the path that is in the list; walking up its chain of parents (each
    prefix's longest proper prefix in the list) finds the longest prefix of the path. Each
    prefix's group holds its own routes and its parents' routes, in table order.
    """

    __slots__ = ("exact", "keys", "parents", "prefixes", "rest")

    def __init__(self, routes: list[tuple[_Route, tuple[str, bytes] | None]]) -> None:
        exact: dict[bytes, list[_Route]] = {}
        own: dict[bytes, list[_Route]] = {}
        rest: list[_Route] = []
        for route, key in routes:
            if key is None:
                rest.append(route)
            elif key[0] == "exact":
                exact.setdefault(key[1], []).append(route)
            else:  # a prefix: the route's own, or a regex's literal start
                own.setdefault(key[1], []).append(route)
        self.exact = {k: tuple(v) for k, v in exact.items()}
        self.keys = sorted(own)
        self.parents: dict[bytes, bytes | None] = {}
        self.prefixes: dict[bytes, tuple[_Route, ...]] = {}
        chain: list[bytes] = []  # the prefixes of the current key, shortest first
        for key in self.keys:  # sorted: a key's prefixes all come before it
            while chain and not key.startswith(chain[-1]):
                chain.pop()
            self.parents[key] = chain[-1] if chain else None
            group = list(own[key])
            for parent in chain:
                group += own[parent]
            group.sort(key=lambda r: r.pos)
            self.prefixes[key] = tuple(group)
            chain.append(key)
        self.rest = tuple(rest)

    def first(self, path: bytes, best: int, head, target: bytes, version: str | None) -> int:
        """The position of the first route of this group matching, if before ``best``."""
        group = self.exact.get(path)
        if group is not None and group[0].pos < best:
            best = _first(group, best, head, path, target, version)
        keys = self.keys
        if keys:
            i = bisect_right(keys, path)
            if i:
                key: bytes | None = keys[i - 1]
                parents = self.parents
                while key is not None and not path.startswith(key):
                    key = parents[key]
                if key is not None:
                    group = self.prefixes[key]
                    if group[0].pos < best:
                        best = _first(group, best, head, path, target, version)
        if self.rest and self.rest[0].pos < best:
            best = _first(self.rest, best, head, path, target, version)
        return best


def _path_key(spec: RouteSpec) -> tuple[str, bytes] | None:
    if spec.path is not None:
        return ("exact", spec.path.encode())
    prefix = _prefix_of(spec)
    if prefix is not None:
        return ("prefix", prefix)
    if spec.path_regex is not None:
        literal = _regex_literal_prefix(spec.path_regex)
        if literal and literal != "/":
            return ("literal", literal.encode())
    return None


def _query_args(query: bytes) -> dict[bytes, bytes]:
    """First value of each raw query argument; "a" without "=" has the value b""."""
    args: dict[bytes, bytes] = {}
    for pair in query.partition(b"#")[0].split(b"&"):
        name, _, value = pair.partition(b"=")
        if name not in args:
            args[name] = value
    return args


_NONE = 1 << 62  # "no match yet": beyond any position
_UNSEEN = object()
_SEEN_HOSTS_MAX = 4096


class Router:
    """Ordered routes, compiled; ``match(head, version)`` gives the first match's index or -1."""

    __slots__ = ("specs", "versions", "_everything", "_exact_hosts", "_wild_hosts",
                 "_hostless", "_has_hosts", "_seen_hosts")

    def __init__(self, specs: list[RouteSpec]) -> None:
        self.specs = tuple(specs)
        #: every version some route asks for (to tell "unknown version" from "no route")
        self.versions = frozenset(s.version for s in specs if s.version is not None)
        compiled = []
        for pos, spec in enumerate(self.specs):
            key = _path_key(spec)
            compiled.append((_Route(pos, spec, key), key, _host_key(spec)))
        first = compiled[0] if compiled else None
        # The most common table: its first route takes every request. Answer without looking.
        self._everything = first[0].index if first is not None and first[0].simple and \
            first[1] is None and first[2] is None else None

        hostless = [(r, k) for r, k, h in compiled if h is None]
        exact_hosts = {h[1] for _, _, h in compiled if h is not None and h[0] == "exact"}
        suffixes = {h[1] for _, _, h in compiled if h is not None and h[0] == "wild"}
        # A host group holds the routes for that host and every wildcard route that matches
        # it, in table order; host-less routes form one group, looked at for every request.
        # A wildcard suffix's group holds the wildcard routes for it and for its own suffixes
        # (".a.example.com" also gets "*.example.com"), so one probe with the longest suffix
        # present finds them all.
        exact: dict[bytes, list] = {host: [] for host in exact_hosts}
        wild: dict[bytes, list] = {suffix: [] for suffix in suffixes}
        for r, k, h in compiled:  # in table order, so every group is sorted
            if h is None:
                continue
            if h[0] == "exact":
                exact[h[1]].append((r, k))
                continue
            for host, group in exact.items():
                if len(host) > len(h[1]) and host.endswith(h[1]):
                    group.append((r, k))
            for suffix, group in wild.items():
                if suffix.endswith(h[1]):
                    group.append((r, k))
        self._exact_hosts = {host: _PathIndex(group) for host, group in exact.items()}
        self._wild_hosts = {suffix: _PathIndex(group) for suffix, group in wild.items()}
        self._hostless = _PathIndex(hostless) if hostless else None
        self._has_hosts = bool(exact or wild)
        self._seen_hosts: dict[bytes, _PathIndex | None] = {}

    def match(self, head, version: str | None = None) -> int:
        """Index (``RouteSpec.index``) of the first route matching ``head``, or -1.

        ``head`` has ``method``, ``host`` and ``path`` (origin-form, with the query) as bytes,
        and ``header(name)``; ``version`` is the API version extracted from the request.
        """
        if self._everything is not None:
            return self._everything
        target = head.path
        q = target.find(b"?")
        path = target[:q] if q >= 0 else target
        best = _NONE
        if self._has_hosts:
            raw = head.host
            index = self._seen_hosts.get(raw, _UNSEEN)
            if index is _UNSEEN:
                index = self._host_index(raw)
            if index is not None:
                best = index.first(path, best, head, target, version)
        if self._hostless is not None:
            best = self._hostless.first(path, best, head, target, version)
        return -1 if best == _NONE else self.specs[best].index

    def _host_index(self, raw: bytes) -> _PathIndex | None:
        """The group for a Host value (port dropped, case folded, trailing dot dropped)."""
        host = raw
        if host[:1] == b"[":
            end = host.find(b"]")
            host = host[: end + 1] if end > 0 else host
        else:
            colon = host.find(b":")
            if colon >= 0:
                host = host[:colon]
        host = host.lower().rstrip(b".")
        index = self._exact_hosts.get(host)
        if index is None:
            dot = host.find(b".", 1)
            wild = self._wild_hosts
            while dot > 0:  # the longest suffix present: its group has all shorter ones
                index = wild.get(host[dot:])
                if index is not None:
                    break
                dot = host.find(b".", dot + 1)
        # Hosts repeat: remember the answer for the raw value, up to a bound (Host is chosen
        # by the client, so the memo must not grow without limit).
        if len(self._seen_hosts) < _SEEN_HOSTS_MAX:
            self._seen_hosts[raw] = index
        return index


def _first(group: tuple[_Route, ...], best: int, head, path: bytes, target: bytes,
           version: str | None) -> int:
    for route in group:
        if route.pos >= best:
            return best
        if route.simple or _holds(route, head, path, target, version):
            return route.pos
    return best


def _holds(route: _Route, head, path: bytes, target: bytes, version: str | None) -> bool:
    """The conditions the index did not already check."""
    if route.methods is not None and head.method not in route.methods:
        return False
    if route.version is not None and route.version != version:
        return False
    if route.prefix is not None and not path.startswith(route.prefix):
        return False
    if route.regex is not None and route.regex(path) is None:
        return False
    for name, kind, want in route.headers:
        value = head.header(name)
        if kind == 0:
            if (value is not None) != want:
                return False
        elif value is None:
            return False
        elif kind == 1:
            if value != want:
                return False
        elif want(value) is None:
            return False
    if route.query:
        args = _query_args(target.partition(b"?")[2])
        for name, kind, want in route.query:
            value = args.get(name)
            if kind == 0:
                if (value is not None) != want:
                    return False
            elif value != want:
                return False
    return True


# -- shadowing ---------------------------------------------------------------------------------


def shadowed(specs: list[RouteSpec]) -> list[tuple[int, int]]:
    """(route index, earlier route index) for each route that an earlier route shadows.

    Only certain cases are reported: every request the later route matches is also matched
    by the earlier one, judged condition by condition. A route that could still match is
    never reported; some unreachable routes (e.g. covered by several earlier ones together)
    are not found.

    A route is compared only with the earlier routes that could cover it, so a table of
    distinct hosts, paths or prefixes takes time linear in its length: each route is filed
    under one of the conditions that every route it covers must also have (``_Facts.needs``:
    its exact host or wildcard domain, path, prefix or regex's literal start, version, an exact
    header or query value; the one whose file is the shortest so far), or with the routes that
    need none of these;
    a later route reads those and the files of its own conditions (``_Facts.offers``). Only
    routes told apart by nothing but methods, header presence or regexes without a literal
    start are all compared with each other.
    """
    files: dict[tuple, list[tuple[int, _Facts]]] = {}
    unfiled: list[tuple[int, _Facts]] = []  # routes that need none of the filed conditions
    prefix_lengths: set[int] = set()
    found = []
    for position, spec in enumerate(specs):
        later = _Facts(spec)
        groups = [unfiled, *(files.get(key, ()) for key in later.offers(prefix_lengths))]
        first: tuple[int, _Facts] | None = None
        for group in groups:  # each in table order: its first cover is its earliest
            for candidate in group:
                if first is not None and candidate[0] > first[0]:
                    break
                if candidate[1].covers(later):
                    first = candidate
                    break
        if first is not None:
            found.append((spec.index, first[1].spec.index))
        needs = later.needs()
        if not needs:
            unfiled.append((position, later))
            continue
        key = min(needs, key=lambda key: len(files.get(key, ())))
        files.setdefault(key, []).append((position, later))
        if key[0] == "prefix":
            prefix_lengths.add(len(key[1]))
    return found


class _Facts:
    """A route's conditions in a form easy to compare with another route's."""

    __slots__ = ("spec", "host", "path", "prefix", "regex", "literal", "methods", "headers",
                 "query")

    def __init__(self, spec: RouteSpec) -> None:
        self.spec = spec
        self.host = _host_key(spec)
        self.path = spec.path.encode() if spec.path is not None else None
        self.prefix = _prefix_of(spec)
        self.regex = _regex(spec, "path_regex", spec.path_regex) \
            if spec.path_regex is not None else None
        # what every path the regex matches starts with (None: nothing known)
        self.literal = _regex_literal_prefix(spec.path_regex).encode() or None \
            if spec.path_regex is not None else None
        self.methods = frozenset(spec.methods) if spec.methods is not None else None
        self.headers = {}
        for h in spec.headers:
            self.headers.setdefault(h.name.lower(), []).append(h)
        self.query = {}
        for q in spec.query:
            self.query.setdefault(q.name, []).append(q)

    def covers(self, other: _Facts) -> bool:
        """True only if every request ``other`` matches is certainly matched by ``self``."""
        return (_host_covers(self.host, other.host)
                and self._path_covers(other)
                and (self.methods is None
                     or (other.methods is not None and other.methods <= self.methods))
                and (self.spec.version is None or self.spec.version == other.spec.version)
                and all(any(_header_implies(o, h) for o in other.headers.get(name, ()))
                        for name, hs in self.headers.items() for h in hs)
                and all(any(_query_implies(o, q) for o in other.query.get(name, ()))
                        for name, qs in self.query.items() for q in qs))

    def needs(self) -> list[tuple]:
        """Keys of conditions that every route this one covers has as well (see ``covers``):
        its host (exact, or the wildcard's domain), path, prefix, its regex's literal start
        (the covered route's path starts with it, or its regex is the same), version, exact
        header and query values."""
        keys: list[tuple] = []
        if self.host is not None:
            keys.append(("host", *self.host))
        if self.path is not None:
            keys.append(("path", self.path))
        for start in (self.prefix, self.literal):
            if start is not None:
                keys.append(("prefix", start))
        return keys + self._values()

    def offers(self, prefix_lengths: set[int]) -> list[tuple]:
        """The keys under which a route that covers this one can be filed."""
        keys: list[tuple] = []
        if self.host is not None:
            kind, host = self.host
            keys.append(("host", kind, host))
            dot = host.find(b".", 1 if kind == "wild" else 0)
            while dot >= 0:  # the domains a wildcard may name: ".b.c" and ".c" of "a.b.c"
                keys.append(("host", "wild", host[dot:]))
                dot = host.find(b".", dot + 1)
        if self.path is not None:
            keys.append(("path", self.path))
        for known in (self.path if self.path is not None else self.prefix, self.literal):
            if known is not None:
                keys += [("prefix", known[:n]) for n in prefix_lengths if n <= len(known)]
        return list(dict.fromkeys(keys + self._values()))

    def _values(self) -> list[tuple]:
        keys: list[tuple] = []
        if self.spec.version is not None:
            keys.append(("version", self.spec.version))
        keys += [("header", name, h.value) for name, hs in self.headers.items()
                 for h in hs if h.value is not None]
        keys += [("query", name, q.value) for name, qs in self.query.items()
                 for q in qs if q.value is not None]
        return keys

    def _path_covers(self, other: _Facts) -> bool:
        if self.path is not None:
            if other.path != self.path:
                return False
        if self.prefix is not None:
            known = other.path if other.path is not None else other.prefix
            if known is None or not known.startswith(self.prefix):
                return False
        if self.regex is not None:
            if other.path is not None:  # the request path is known: the regex's answer too
                return self.regex.match(other.path) is not None
            return other.regex is not None and other.regex.pattern == self.regex.pattern
        return True


def _host_covers(mine: tuple[str, bytes] | None, theirs: tuple[str, bytes] | None) -> bool:
    if mine is None:
        return True
    if theirs is None:
        return False
    if mine[0] == "exact":
        return theirs == mine
    # a wildcard ".example.com" covers "x.example.com" and "*.x.example.com", "*.example.com"
    return theirs[1].endswith(mine[1]) and (theirs[0] == "wild" or len(theirs[1]) > len(mine[1]))


def _header_implies(theirs: HeaderCondition, mine: HeaderCondition) -> bool:
    """Does ``theirs`` holding mean ``mine`` holds (same header name)?"""
    if mine.present is not None:
        if mine.present:
            return theirs.present is True or theirs.value is not None or theirs.regex is not None
        return theirs.present is False
    if mine.value is not None:
        return theirs.value == mine.value
    if mine.regex is not None:
        if theirs.value is not None:
            try:
                return re.match(mine.regex.encode(), theirs.value.encode()) is not None
            except re.error:
                return False
        return theirs.regex == mine.regex
    return False


def _query_implies(theirs: QueryCondition, mine: QueryCondition) -> bool:
    if mine.present is not None:
        if mine.present:
            return theirs.present is True or theirs.value is not None
        return theirs.present is False
    return mine.value is not None and theirs.value == mine.value
