"""Micro-benchmarks of route matching: ``Router.match`` on tables of 10, 100 and 1,000 routes.

Not part of the default test run (pytest's testpaths is ``tests/``). Run from the repository
root, after building the extension (``python setup.py build_ext --inplace``):

    .venv/bin/pytest bench/bench_router.py --benchmark-only --benchmark-columns=median,mean,ops

Each benchmark is one ``match`` call on a head parsed beforehand by the compiled parser (the
parse is not timed). The tables mix what real configs hold: routes on exact hosts with path
prefixes (40%), host-less API prefixes (20%), wildcard hosts (10%), exact paths limited to
GET/HEAD (10%), path regexes (10%) and prefixes with a header condition (10%). The requests aim
at a route near the end of its table, where a linear scan would be slowest:

- ``host_prefix``: an exact host and a prefix; ``api_prefix``: a host-less prefix;
- ``wildcard``: a subdomain of a wildcard host; ``exact_method``: an exact path and a method;
- ``regex``: a path regex; ``header``: a prefix and a header value;
- ``miss``: nothing matches (every index probed, the 404 path).

``catch_all`` is today's common table: a single route with ``path_prefix: "/"``.
"""

from __future__ import annotations

import pytest

from fastgw._core import RequestParser
from fastgw.routing import HeaderCondition, RouteSpec, Router

SIZES = (10, 100, 1000)


def table(n: int) -> list[RouteSpec]:
    routes = []
    for i in range(n):
        kind = i % 10
        if kind < 4:
            c: dict = {"host": f"svc{i % 50}.example.com", "path_prefix": f"/svc{i}/"}
        elif kind < 6:
            c = {"path_prefix": f"/api/v{i % 3}/res{i}/"}
        elif kind == 6:
            c = {"host": f"*.tenant{i}.example.com"}
        elif kind == 7:
            c = {"path": f"/exact/{i}", "methods": ("GET", "HEAD")}
        elif kind == 8:
            c = {"path_regex": rf"/items{i}/\d+$"}
        else:
            c = {"path_prefix": f"/h{i}/", "headers": (HeaderCondition("X-Route", value=str(i)),)}
        routes.append(RouteSpec(i, f"r{i}", **c))
    return routes


def last_of_kind(n: int, kind: int) -> int:
    return max(i for i in range(n) if i % 10 == kind)


def request(n: int, name: str) -> tuple[bytes, int]:
    """The request bytes for a benchmark case, and the route index it must reach."""
    if name == "miss":
        return b"GET /nothing/here?x=1 HTTP/1.1\r\nHost: nowhere.example.org\r\n\r\n", -1
    kind = {"host_prefix": 3, "api_prefix": 5, "wildcard": 6, "exact_method": 7, "regex": 8,
            "header": 9}[name]
    i = last_of_kind(n, kind)
    host, extra = f"svc{i % 50}.example.com", ""
    if name == "host_prefix":
        target = f"/svc{i}/users/42?page=2"
    elif name == "api_prefix":
        target = f"/api/v{i % 3}/res{i}/42"
    elif name == "wildcard":
        target, host = "/dashboard", f"eu.app.tenant{i}.example.com"
    elif name == "exact_method":
        target = f"/exact/{i}"
    elif name == "regex":
        target = f"/items{i}/12345"
    else:
        target, extra = f"/h{i}/x", f"X-Route: {i}\r\n"
    return (f"GET {target} HTTP/1.1\r\nHost: {host}:8080\r\nUser-Agent: bench\r\n"
            f"Accept: */*\r\n{extra}\r\n").encode(), i


CASES = ("host_prefix", "api_prefix", "wildcard", "exact_method", "regex", "header", "miss")


@pytest.mark.benchmark(group="router")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("size", SIZES)
def test_match(benchmark, size: int, case: str) -> None:
    router = Router(table(size))
    raw, expected = request(size, case)
    head = RequestParser().parse(raw)
    assert router.match(head) == expected
    benchmark(router.match, head, None)


@pytest.mark.benchmark(group="router")
def test_catch_all(benchmark) -> None:
    router = Router([RouteSpec(0, "default", path_prefix="/")])
    head = RequestParser().parse(b"GET /api/users/42 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert router.match(head) == 0
    benchmark(router.match, head, None)


@pytest.mark.benchmark(group="router-build")
def test_build_1000(benchmark) -> None:
    specs = table(1000)
    benchmark(Router, specs)
