"""Route matching: each condition, wildcard hosts, first match wins, the compiled index against a
naive linear matcher, shadowing, and 1,000-route tables.

Requests are real bytes parsed by the real parser (compiled and pure, via ``parser_impl``).
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgw import cli, routing
from fastgw.routing import HeaderCondition as H
from fastgw.routing import QueryCondition as Q
from fastgw.routing import RouteError, RouteSpec, Router, shadowed


def specs(*conditions: dict) -> list[RouteSpec]:
    return [RouteSpec(index=i, name=f"r{i}", **c) for i, c in enumerate(conditions)]


def router(*conditions: dict) -> Router:
    return Router(specs(*conditions))


def head_bytes(target: str = "/", host: str | None = "h", method: str = "GET",
               headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
def req(parser_impl):
    parser = parser_impl.RequestParser()

    def make(target: str = "/", host: str | None = "h", method: str = "GET", **headers: str):
        head = parser.parse(head_bytes(target, host, method,
                                       tuple((k.replace("_", "-"), v) for k, v in headers.items())))
        assert head is not None
        return head

    return make


# -- each condition ------------------------------------------------------------------------------


def test_catch_all(req):
    r = router({"path_prefix": "/"})
    assert r.match(req("/anything?q=1")) == 0
    assert r.match(req("*", method="OPTIONS")) == 0


def test_empty_table(req):
    assert Router([]).match(req("/")) == -1


def test_returns_the_spec_index_not_the_position(req):
    r = Router([RouteSpec(index=7, name="a", path="/a"), RouteSpec(index=3, name="b")])
    assert r.match(req("/a")) == 7
    assert r.match(req("/b")) == 3


def test_first_match_wins(req):
    r = router({"path_prefix": "/api"}, {"path_prefix": "/api/v2"}, {})
    assert r.match(req("/api/v2/x")) == 0
    assert r.match(req("/other")) == 2


def test_first_match_wins_even_over_more_specific(req):
    r = router({"path_prefix": "/"}, {"host": "api.example.com", "path": "/x"})
    assert r.match(req("/x", host="api.example.com")) == 0
    r = router({"host": "*.example.com"}, {"host": "api.example.com"},
               {"path_prefix": "/a"}, {"path": "/a"})
    assert r.match(req("/a", host="api.example.com")) == 0
    assert r.match(req("/a", host="other.org")) == 2


def test_no_route(req):
    assert router({"path_prefix": "/a"}).match(req("/b")) == -1


@pytest.mark.parametrize(("target", "expected"), [
    ("/health", 0), ("/health?x=1", 0), ("/health/x", -1), ("/healthz", -1), ("/Health", -1),
    ("/", -1),
])
def test_exact_path_ignores_query(req, target, expected):
    assert router({"path": "/health"}).match(req(target)) == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("/api", 0), ("/api/x", 0), ("/apiary", 0), ("/api?x", 0), ("/ap", -1), ("/x/api", -1),
    ("/API", -1),
])
def test_prefix_is_a_byte_prefix(req, target, expected):
    assert router({"path_prefix": "/api"}).match(req(target)) == expected


def test_prefix_with_trailing_slash_needs_the_segment(req):
    r = router({"path_prefix": "/api/"})
    assert r.match(req("/api/x")) == 0
    assert r.match(req("/api")) == -1
    assert r.match(req("/apiary")) == -1


def test_query_is_not_part_of_the_prefix(req):
    r = router({"path_prefix": "/a?b"}, {"path": "/a"})
    assert r.match(req("/a?b")) == 1


@pytest.mark.parametrize(("pattern", "target", "expected"), [
    (r"/users/\d+$", "/users/42", 0),
    (r"/users/\d+$", "/users/42/x", -1),
    (r"/users/\d+", "/users/42/x", 0),     # anchored at the start only
    (r"/users/\d+", "/x/users/42", -1),    # re.match: never found in the middle
    (r".*/users/\d+", "/x/users/42", 0),
    (r"^/a", "/a", 0),
    (r"/a|/b", "/b", 0),
    (r"/ab?c", "/ac", 0),
    (r"(?i)/API", "/api/x", 0),
    (r"/users/\d+$", "/users/42?x=1", 0),  # the query is not matched
    (r"/users/\d+$", "/users/x?1", -1),
])
def test_path_regex(req, pattern, target, expected):
    assert router({"path_regex": pattern}).match(req(target)) == expected


def test_regex_with_a_literal_start_and_other_routes(req):
    r = router({"path_regex": r"/api/v\d+/users"}, {"path_prefix": "/api"},
               {"path_regex": r"/api/x"})
    assert r.match(req("/api/v2/users")) == 0
    assert r.match(req("/api/vx/users")) == 1


@pytest.mark.parametrize(("method", "expected"), [
    ("GET", 0), ("HEAD", 0), ("POST", 1), ("get", 1), ("DELETE", 1),
])
def test_methods(req, method, expected):
    r = router({"methods": ("GET", "HEAD")}, {})
    assert r.match(req("/", method=method)) == expected


@pytest.mark.parametrize(("host", "expected"), [
    ("api.example.com", 0), ("API.Example.COM", 0), ("api.example.com:8080", 0),
    ("api.example.com.", 0), ("www.example.com", 1), ("example.com", 2),
    ("a.b.example.com", 1), ("xexample.com", 2), ("[::1]:80", 2), ("[::1]", 2),
])
def test_hosts(req, host, expected):
    r = router({"host": "api.example.com"}, {"host": "*.example.com"}, {})
    assert r.match(req("/", host=host)) == expected


def test_host_less_request(req, parser_impl):
    head = parser_impl.RequestParser().parse(b"GET / HTTP/1.0\r\n\r\n")
    r = router({"host": "*.example.com"}, {"host": "a"}, {"path": "/"})
    assert r.match(head) == 2


def test_absolute_form_target_routes_by_its_authority(req, parser_impl):
    head = parser_impl.RequestParser().parse(
        b"GET http://api.example.com:81/x?y HTTP/1.1\r\nHost: other\r\n\r\n")
    assert router({"host": "api.example.com", "path": "/x"}).match(head) == 0


def test_nested_wildcards(req):
    r = router({"host": "*.a.example.com", "path": "/x"}, {"host": "*.example.com"},
               {"host": "*.a.example.com"}, {"host": "b.a.example.com"})
    assert r.match(req("/x", host="b.a.example.com")) == 0
    assert r.match(req("/y", host="b.a.example.com")) == 1
    assert r.match(req("/y", host="a.example.com")) == 1
    assert r.match(req("/x", host="a.example.com")) == 1
    assert r.match(req("/", host="c.d.a.example.com")) == 1


def test_wildcard_and_exact_host_order(req):
    r = router({"host": "b.a.example.com", "path": "/x"}, {"host": "*.a.example.com"},
               {"host": "b.a.example.com"})
    assert r.match(req("/x", host="b.a.example.com")) == 0
    assert r.match(req("/y", host="b.a.example.com")) == 1
    assert r.match(req("/y", host="c.a.example.com")) == 1


@pytest.mark.parametrize(("headers", "expected"), [
    ({"X_Tenant": "acme"}, 0),
    ({"x_tenant": "acme"}, 0),
    ({"X_Tenant": "Acme"}, 1),
    ({"X_Tenant": "acme2"}, 1),
    ({"X_Debug": "1"}, 5),
    ({"X_Beta": "yes"}, 2),
    ({"X_Beta": "yes", "X_Canary": "1"}, 3),
    ({"X_User": "u-17"}, 4),
    ({"X_User": "x-u-17"}, 5),
    ({}, 5),
])
def test_headers(req, headers, expected):
    r = router(
        {"headers": (H("X-Tenant", value="acme"),)},
        {"headers": (H("x-tenant", present=True),)},
        {"headers": (H("X-Beta", value="yes"), H("X-Canary", present=False))},
        {"headers": (H("X-Beta", present=True),)},
        {"headers": (H("X-User", regex=r"u-\d+$"),)},
        {"headers": (H("X-Beta", present=False),)},
    )
    assert r.match(req("/", **headers)) == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("/?debug=1", 0), ("/?debug=1&debug=2", 0), ("/?debug=2&debug=1", 1), ("/?x=1&debug", 1),
    ("/?debug=", 1), ("/?beta", 2), ("/?beta=x", 2), ("/?a=b", 3), ("/", 3),
    ("/?debug=%31", 1),  # raw: no percent-decoding
])
def test_query(req, target, expected):
    r = router(
        {"query": (Q("debug", value="1"),)},
        {"query": (Q("debug", present=True),)},
        {"query": (Q("beta", present=True), Q("debug", present=False))},
        {"query": (Q("beta", present=False),)},
    )
    assert r.match(req(target)) == expected


def test_a_fragment_never_reaches_the_router(parser_impl):
    """RFC 9112 3.2: a request-target has no fragment, so "/?q=1#debug=1" is a 400 from the
    parser before any route (or query condition) sees it."""
    with pytest.raises(parser_impl.ParseError) as info:
        parser_impl.RequestParser().parse(head_bytes("/?q=1#debug=1"))
    assert (info.value.status, info.value.reason) == (400, "invalid request target")


def test_empty_query_value(req):
    r = router({"query": (Q("a", value=""),)})
    assert r.match(req("/?a")) == 0
    assert r.match(req("/?a=")) == 0
    assert r.match(req("/?a=1")) == -1
    assert r.match(req("/")) == -1


@pytest.mark.parametrize(("version", "expected"), [("2", 0), ("1", 1), (None, 2), ("3", 2)])
def test_version(req, version, expected):
    r = router({"version": "2"}, {"version": "1"}, {})
    assert r.match(req("/"), version) == expected
    assert r.versions == {"1", "2"}


def test_all_conditions_together(req):
    r = router({
        "host": "*.example.com", "path_prefix": "/api", "path_regex": r"/api/v\d",
        "methods": ("POST",), "headers": (H("X-A", value="1"),), "query": (Q("q", present=True),), "version": "2",
    }, {})
    ok = {"target": "/api/v2/x?q", "host": "a.example.com", "method": "POST", "X_A": "1"}
    assert r.match(req(**ok), "2") == 0
    for key, bad in [("target", "/api/vx?q"), ("target", "/api/v2/x"), ("host", "example.com"),
                     ("method", "GET"), ("X_A", "2")]:
        assert r.match(req(**{**ok, key: bad}), "2") == 1
    assert r.match(req(**ok), "1") == 1


def test_path_and_prefix_together(req):
    r = router({"path": "/a/b", "path_prefix": "/a/"}, {"path": "/a", "path_prefix": "/a/"}, {})
    assert r.match(req("/a/b")) == 0
    assert r.match(req("/a")) == 2


@pytest.mark.parametrize(("condition", "field"), [
    ({"path_regex": "/a("}, "path_regex"),
    ({"headers": (H("x", regex="["),)}, "headers[0]"),
    ({"headers": (H("x"),)}, "headers[0]"),
    ({"headers": (H("x", value="1", present=True),)}, "headers[0]"),
    ({"query": (Q("x"),)}, "query[0]"),
    ({"host": "a.*.com"}, "host"),
    ({"host": "*."}, "host"),
    ({"host": "api.example.com:80"}, "host"),
])
def test_bad_conditions_name_the_route_and_field(condition, field):
    with pytest.raises(RouteError, match=re.escape(f"route 'r0': {field}:")):
        router(condition)


def test_wildcard_star_alone_is_any_host(req):
    assert router({"host": "*", "path": "/a"}).match(req("/a", host="x.y")) == 0


# -- the compiled index against a naive linear matcher ---------------------------------------


def _request_host(host: str) -> str:
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    else:
        host = host.partition(":")[0]
    return host.lower().rstrip(".")


def reference_holds(spec: RouteSpec, method: str, target: str, host: str,
                    headers: tuple[tuple[str, str], ...], version: str | None) -> bool:
    """What each condition means, spelled out one route at a time."""
    path, _, query = target.partition("?")
    if spec.host not in (None, "*"):
        want, got = spec.host.lower().rstrip("."), _request_host(host)
        if want.startswith("*."):
            if not (got.endswith(want[1:]) and len(got) > len(want) - 1):
                return False
        elif got != want:
            return False
    if spec.path is not None and path != spec.path:
        return False
    if spec.path_prefix not in (None, "", "/") and not path.startswith(spec.path_prefix):
        return False
    if spec.path_regex is not None and not re.match(spec.path_regex.encode(), path.encode()):
        return False
    if spec.methods is not None and method not in spec.methods:
        return False
    if spec.version is not None and spec.version != version:
        return False
    for cond in spec.headers:
        value = next((v.strip(" \t") for n, v in headers if n.lower() == cond.name.lower()), None)
        if cond.present is not None and (value is not None) != cond.present:
            return False
        if cond.value is not None and value != cond.value:
            return False
        if cond.regex is not None and (value is None
                                       or not re.match(cond.regex.encode(), value.encode())):
            return False
    args: dict[str, str] = {}
    for pair in query.partition("#")[0].split("&"):
        name, _, value = pair.partition("=")
        args.setdefault(name, value)
    for cond in spec.query:
        if cond.present is not None and (cond.name in args) != cond.present:
            return False
        if cond.value is not None and args.get(cond.name) != cond.value:
            return False
    return True


def reference_match(table: list[RouteSpec], *request) -> int:
    for spec in table:
        if reference_holds(spec, *request):
            return spec.index
    return -1


SPEC_HOSTS = [None, "a.example.com", "b.example.com", "x.a.example.com", "example.com",
              "*.example.com", "*.a.example.com", "*.org", "other.org", "*"]
REQUEST_HOSTS = ["a.example.com", "b.example.com", "x.a.example.com", "y.x.a.example.com",
                 "example.com", "other.org", "z.other.org", "nowhere", "[::1]"]
SEGMENTS = ["a", "ab", "b", "api", "v1", ""]
REGEXES = ["/a", r"/a.*b", r"^/api/v\d", "/ab?", "(?i)/API", "/a|/b", "/[ab]+$", ".*1", "/api/v1"]

paths = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))
header_conditions = st.builds(
    lambda name, kind, value: H(name, **{kind: value}),
    st.sampled_from(["X-A", "x-b"]),
    st.sampled_from(["value", "present", "regex"]),
    st.sampled_from(["1", "2"]),
).map(lambda h: H(h.name, present=h.value == "1") if h.present is not None else h)
query_conditions = st.one_of(
    st.builds(lambda n, p: Q(n, present=p), st.sampled_from(["q", "r"]), st.booleans()),
    st.builds(lambda n, v: Q(n, value=v), st.sampled_from(["q", "r"]), st.sampled_from(["1", ""])),
)


@st.composite
def route_conditions(draw) -> dict:
    c: dict = {"host": draw(st.sampled_from(SPEC_HOSTS))}
    kind = draw(st.sampled_from(["none", "path", "prefix", "prefix", "regex", "path+prefix"]))
    if kind in ("path", "path+prefix"):
        c["path"] = draw(paths)
    if kind in ("prefix", "path+prefix"):
        p = draw(paths)
        c["path_prefix"] = p[: draw(st.integers(1, len(p)))]
    if kind == "regex" or draw(st.integers(0, 9)) == 0:
        c["path_regex"] = draw(st.sampled_from(REGEXES))
    if draw(st.integers(0, 4)) == 0:
        c["methods"] = tuple(draw(st.sets(st.sampled_from(["GET", "POST", "PUT"]), min_size=1)))
    if draw(st.integers(0, 4)) == 0:
        c["headers"] = tuple(draw(st.lists(header_conditions, min_size=1, max_size=2)))
    if draw(st.integers(0, 4)) == 0:
        c["query"] = tuple(draw(st.lists(query_conditions, min_size=1, max_size=2)))
    if draw(st.integers(0, 4)) == 0:
        c["version"] = draw(st.sampled_from(["1", "2"]))
    return c


@st.composite
def requests(draw) -> tuple:
    host = draw(st.sampled_from(REQUEST_HOSTS))
    if draw(st.booleans()):
        host = "".join(ch.upper() if draw(st.booleans()) else ch for ch in host)
    if host[-1] != "]" and draw(st.integers(0, 3)) == 0:
        host += "."
    if draw(st.integers(0, 3)) == 0:
        host += ":8080"
    target = draw(paths)
    pairs = draw(st.lists(st.sampled_from(["q", "q=1", "q=", "r=1", "r=2", "s"]), max_size=3))
    if pairs or draw(st.booleans()):
        target += "?" + "&".join(pairs)
    headers = tuple(draw(st.lists(
        st.tuples(st.sampled_from(["X-A", "x-a", "X-B"]), st.sampled_from(["1", "2", " 1 "])),
        max_size=3)))
    return (draw(st.sampled_from(["GET", "POST", "PUT"])), target, host, headers,
            draw(st.sampled_from([None, "1", "2"])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=st.lists(route_conditions(), max_size=25),
       reqs=st.lists(requests(), min_size=1, max_size=10))
def test_index_agrees_with_linear_reference(parser_impl, table, reqs):
    table_specs = specs(*table)
    r = Router(table_specs)
    parser = parser_impl.RequestParser()
    for method, target, host, headers, version in reqs:
        head = parser.parse(head_bytes(target, host, method, headers))
        expected = reference_match(table_specs, method, target, host, headers, version)
        assert r.match(head, version) == expected, (method, target, host, headers, version)


# -- shadowing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("earlier", "later"), [
    ({}, {"path": "/x"}),
    ({"path_prefix": "/"}, {"host": "a", "methods": ("GET",)}),
    ({"path_prefix": "/api"}, {"path_prefix": "/api/v2"}),
    ({"path_prefix": "/api"}, {"path": "/api/users"}),
    ({"path_prefix": "/api"}, {"path_prefix": "/apiary"}),
    ({"path": "/a"}, {"path": "/a", "methods": ("GET",)}),
    ({"host": "a.example.com"}, {"host": "A.example.com.", "path": "/x"}),
    ({"host": "*.example.com"}, {"host": "a.example.com"}),
    ({"host": "*.example.com"}, {"host": "*.a.example.com"}),
    ({"methods": ("GET", "POST")}, {"methods": ("GET",)}),
    ({"version": "2"}, {"version": "2", "path": "/x"}),
    ({"headers": (H("X-A", present=True),)}, {"headers": (H("x-a", value="1"),)}),
    ({"headers": (H("X-A", present=True),)}, {"headers": (H("x-a", regex="1"),)}),
    ({"headers": (H("X-A", regex=r"\d"),)}, {"headers": (H("x-a", value="1"),)}),
    ({"headers": (H("X-A", present=False),)}, {"headers": (H("x-a", present=False),)}),
    ({"query": (Q("q", present=True),)}, {"query": (Q("q", value="1"), Q("r", present=True))}),
    ({"path_regex": r"/users/\d+$"}, {"path": "/users/12"}),
    ({"path_regex": r"/u"}, {"path_regex": "/u", "methods": ("GET",)}),
])
def test_shadowed_reports_certain_cases(earlier, later):
    table = specs({"path": "/unrelated"}, earlier, later)
    assert shadowed(table) == [(2, 1)]


@pytest.mark.parametrize(("earlier", "later"), [
    ({"path_prefix": "/api/v2"}, {"path_prefix": "/api"}),
    ({"path": "/a"}, {"path_prefix": "/a"}),
    ({"host": "a.example.com"}, {}),
    ({"host": "a.example.com"}, {"host": "*.example.com"}),
    ({"host": "*.example.com"}, {"host": "example.com"}),
    ({"host": "*.a.example.com"}, {"host": "*.example.com"}),
    ({"methods": ("GET",)}, {"methods": ("GET", "POST")}),
    ({"methods": ("GET",)}, {}),
    ({"version": "2"}, {}),
    ({"version": "2"}, {"version": "1"}),
    ({"headers": (H("X-A", value="1"),)}, {"headers": (H("X-A", present=True),)}),
    ({"headers": (H("X-A", value="1"),)}, {"headers": (H("X-B", value="1"),)}),
    ({"headers": (H("X-A", regex=r"\d$"),)}, {"headers": (H("x-a", value="1x"),)}),
    ({"headers": (H("X-A", present=False),)}, {}),
    ({"query": (Q("q", value="1"),)}, {"query": (Q("q", present=True),)}),
    ({"path_regex": r"/users/\d+$"}, {"path": "/users/x"}),
    ({"path_regex": r"/users/\d+$"}, {"path_prefix": "/users/1"}),
    ({"path_regex": r"/u"}, {"path_regex": "/u/"}),
])
def test_shadowed_never_reports_a_route_that_can_match(earlier, later):
    assert shadowed(specs(earlier, later)) == []


def test_shadowed_names_the_first_shadowing_route_and_uses_spec_indexes():
    table = [RouteSpec(10, "a", path="/x"), RouteSpec(11, "b", path_prefix="/"),
             RouteSpec(12, "c", path="/x"), RouteSpec(13, "d", host="h")]
    assert shadowed(table) == [(12, 10), (13, 11)]


@settings(max_examples=300, deadline=None)
@given(table=st.lists(route_conditions(), min_size=2, max_size=12),
       reqs=st.lists(requests(), min_size=1, max_size=30))
def test_shadowed_pairs_are_certain(table, reqs):
    """Whenever the later route of a reported pair holds, the earlier one holds too."""
    table_specs = specs(*table)
    for later, earlier in shadowed(table_specs):
        for request in reqs:
            if reference_holds(table_specs[later], *request):
                assert reference_holds(table_specs[earlier], *request), (later, earlier, request)


# -- large tables -------------------------------------------------------------------------------


def big_table(n: int = 1000) -> list[RouteSpec]:
    table = []
    for i in range(n):
        kind = i % 10
        c: dict = {}
        if kind < 4:
            c = {"host": f"svc{i % 50}.example.com", "path_prefix": f"/svc{i}/"}
        elif kind < 6:
            c = {"path_prefix": f"/api/v{i % 3}/res{i}/"}
        elif kind == 6:
            c = {"host": f"*.tenant{i}.example.com", "path_prefix": "/"}
        elif kind == 7:
            c = {"path": f"/exact/{i}", "methods": ("GET", "HEAD")}
        elif kind == 8:
            c = {"path_regex": rf"/items{i}/\d+$"}
        else:
            c = {"path_prefix": f"/h{i}/", "headers": (H("X-Route", value=str(i)),)}
        table.append(RouteSpec(i, f"r{i}", **c))
    return table


def big_requests(n: int = 1000, step: int = 3) -> list[tuple]:
    """For every ``step``-th route of ``big_table``, a request aimed at it, then a miss."""
    out = []
    for i in range(0, n, step):
        kind, host = i % 10, f"svc{i % 50}.example.com"
        if kind < 4:
            out.append(("GET", f"/svc{i}/x?y=1", host, (), None))
        elif kind < 6:
            out.append(("GET", f"/api/v{i % 3}/res{i}/x", "any", (), None))
        elif kind == 6:
            out.append(("GET", "/", f"a.b.tenant{i}.example.com", (), None))
        elif kind == 7:
            out.append(("GET", f"/exact/{i}", host, (), None))
        elif kind == 8:
            out.append(("GET", f"/items{i}/42", host, (), None))
        else:
            out.append(("GET", f"/h{i}/x", host, (("X-Route", str(i)),), None))
        out.append(("POST", "/nothing/here", "nowhere", (), None))
    return out


def test_1000_routes_agree_with_the_reference(parser_impl):
    table = big_table()
    r = Router(table)
    parser = parser_impl.RequestParser()
    matched = 0
    for method, target, host, headers, version in big_requests():
        head = parser.parse(head_bytes(target, host, method, headers))
        expected = reference_match(table, method, target, host, headers, version)
        assert r.match(head, version) == expected, (method, target, host)
        matched += expected >= 0
    assert matched > 300


class CountingHead:
    """A parsed head that counts header look-ups: how many routes' conditions were checked."""

    def __init__(self, head) -> None:
        self.head, self.method, self.host, self.path, self.lookups = \
            head, head.method, head.host, head.path, 0

    def header(self, name: bytes):
        self.lookups += 1
        return self.head.header(name)


def test_1000_routes_are_not_scanned(parser_impl):
    """Every route needs a header check: a linear scan would look up ~1,000 headers."""
    table = [RouteSpec(i, f"r{i}", host=f"h{i % 20}", path_prefix=f"/p{i}/",
                       headers=(H("X-Key", value=str(i)),)) for i in range(1000)]
    r = Router(table)
    parser = parser_impl.RequestParser()
    head = CountingHead(parser.parse(head_bytes("/p987/x", "h7", "GET", (("X-Key", "987"),))))
    assert r.match(head) == 987
    assert head.lookups == 1
    head = CountingHead(parser.parse(head_bytes("/p988/x", "h7", "GET", (("X-Key", "988"),))))
    assert r.match(head) == -1
    assert head.lookups == 0


def test_shadowed_on_1000_routes_is_quick_and_empty():
    assert shadowed(big_table()) == []


# -- shadowing large tables: each route meets only the routes that could cover it ----------------


def pairwise_shadowed(table: list[RouteSpec]) -> list[tuple[int, int]]:
    """``shadowed`` by its definition: each route against every earlier one, in order."""
    facts = [routing._Facts(spec) for spec in table]
    found = []
    for j, later in enumerate(facts):
        earlier = next((e for e in facts[:j] if e.covers(later)), None)
        if earlier is not None:
            found.append((later.spec.index, earlier.spec.index))
    return found


@settings(max_examples=500, deadline=None)
@given(table=st.lists(route_conditions(), min_size=2, max_size=16))
def test_shadowed_finds_what_comparing_every_pair_finds(table):
    table_specs = specs(*table)
    assert shadowed(table_specs) == pairwise_shadowed(table_specs)


def test_shadowed_finds_the_same_pairs_in_a_large_mixed_table():
    table = big_table(600)
    table += [RouteSpec(600, "again", host="svc0.example.com", path="/svc0/x"),
              RouteSpec(601, "all"), RouteSpec(602, "after-all", path="/z"),
              RouteSpec(603, "regex-again", path="/items8/42")]
    assert shadowed(table) == pairwise_shadowed(table) == [(600, 0), (602, 601), (603, 8)]


@pytest.fixture
def comparisons(monkeypatch):
    """How many times one route's conditions are compared with another's."""
    count = [0]
    covers = routing._Facts.covers

    def counted(self, other):
        count[0] += 1
        return covers(self, other)

    monkeypatch.setattr(routing._Facts, "covers", counted)
    return count


def test_shadowed_compares_each_route_of_a_large_table_with_few_others(comparisons):
    """Comparing every pair of these 2,000 routes would take 2,000,000 comparisons."""
    table = big_table(2000)
    assert shadowed(table) == []
    assert comparisons[0] <= 2 * len(table)


def test_check_of_a_large_table_is_not_quadratic(tmp_path, comparisons, capsys):
    """``fastgw check`` (issue 10, item 5: 10,000 routes took 7.7 s, 40,000 over a minute):
    2,000 routes, a few of them shadowed; counted, not timed."""
    n = 2000
    routes = [{"name": f"r{i}", "match": {"path_prefix": f"/svc{i}/"}, "upstream": "app"}
              for i in range(n)]
    routes += [{"name": "again", "match": {"path": "/svc7/x"}, "upstream": "app"},
               {"name": "all", "match": {"path_prefix": "/"}, "upstream": "app"},
               {"name": "never", "match": {"host": "a.example.com", "path": "/b"},
                "upstream": "app"}]
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"listen": "127.0.0.1:8080", "routes": routes, "upstreams": {
        "app": {"targets": [{"address": "127.0.0.1:9001"}]}}}))
    assert cli.main(["check", "-c", str(path)]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("warning: ")]
    assert warnings == [
        f"warning: $.routes[{n}] (again) can never match: $.routes[7] (r7) takes every "
        "request it would",
        f"warning: $.routes[{n + 2}] (never) can never match: $.routes[{n + 1}] (all) takes "
        "every request it would",
    ]
    assert comparisons[0] <= 2 * len(routes)
