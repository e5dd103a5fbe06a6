"""Routes, API versions, traffic splits and rewrites through the real CLI, against several
real backends; every assertion is on what a backend received or what the client got."""

from __future__ import annotations

import json

import pytest

from tests.support.backend import Backend
from tests.support.client import Client


@pytest.fixture
def backends():
    started = {name: Backend().start() for name in ("v1", "v2", "admin")}
    yield started
    for backend in started.values():
        backend.stop()


def upstreams(backends):
    return {name: {"targets": [{"address": b.address}]} for name, b in backends.items()}


def get(port: int, path: str, headers=None, host: str = "test.local"):
    with Client(port) as c:
        return c.request("GET", path, headers=headers, host=host)


def who(backends) -> dict[str, list[str]]:
    return {name: [r.target for r in b.requests] for name, b in backends.items()}


VERSIONING = {
    "header": "X-API-Version",
    "accept": "application/vnd.example.v{version}+json",
    "path": "/v{version}/",
    "default": "1",
    "precedence": ["path", "header", "accept"],
    "deprecated": {"1": {"sunset": "2027-06-30"}},
}


def test_version_by_header_accept_and_path(make_gateway, backends):
    gw = make_gateway(
        upstreams=upstreams(backends), versioning=VERSIONING,
        routes=[{"name": "users-v2", "match": {"path_prefix": "/", "version": "2"},
                 "upstream": "v2", "strip_version": True},
                {"name": "users-v1", "match": {"path_prefix": "/", "version": "1"},
                 "upstream": "v1", "strip_version": True}])
    assert get(gw.port, "/users", [("X-API-Version", "2")]).status == 200
    assert get(gw.port, "/users/a", [("Accept", "text/html;q=0.5, "
                                      "application/vnd.example.v2+json; q=0.9")]).status == 200
    assert get(gw.port, "/v2/users/b").status == 200
    old = get(gw.port, "/users/c")  # no version: the default, which is deprecated
    assert old.status == 200
    assert old.header("Sunset") == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert old.header("Deprecation") is not None
    assert who(backends) == {"v1": ["/users/c"], "v2": ["/users", "/users/a", "/users/b"],
                             "admin": []}
    # the path wins over the header (precedence), and the version segment is stripped
    assert get(gw.port, "/v1/x", [("X-API-Version", "2")]).status == 200
    assert backends["v1"].requests[-1].target == "/x"


def test_unknown_and_malformed_versions(make_gateway, backends):
    gw = make_gateway(upstreams=upstreams(backends), versioning=VERSIONING,
                      routes=[{"match": {"version": "1"}, "upstream": "v1"}])
    unknown = get(gw.port, "/x", [("X-API-Version", "7")])
    assert unknown.status == 404
    assert json.loads(unknown.body)["error"] == "API version 7 is not served here"
    bad = get(gw.port, "/x", [("X-API-Version", "2;drop table")])
    assert bad.status == 400
    assert all(not b.requests for b in backends.values())

    fallback = make_gateway(upstreams=upstreams(backends),
                            versioning={**VERSIONING, "unknown": "default"},
                            routes=[{"match": {"version": "1"}, "upstream": "v1"}])
    assert get(fallback.port, "/y", [("X-API-Version", "7")]).status == 200
    assert who(backends)["v1"] == ["/y"]


def test_first_match_wins_with_hosts_methods_headers_query(make_gateway, backends):
    gw = make_gateway(upstreams=upstreams(backends), routes=[
        {"name": "admin-host", "match": {"host": "*.admin.test"}, "upstream": "admin"},
        {"name": "canary-header", "match": {"headers": {"X-Canary": "yes"}}, "upstream": "v2"},
        {"name": "debug-query", "match": {"query": {"debug": {"present": True}}},
         "upstream": "v2"},
        {"name": "deletes", "match": {"methods": ["DELETE"], "path_regex": "/items/[0-9]+$"},
         "upstream": "admin"},
        {"name": "rest", "match": {"path_prefix": "/"}, "upstream": "v1"},
    ])
    assert get(gw.port, "/a", host="eu.admin.test:8080").status == 200
    assert get(gw.port, "/b", [("X-Canary", "yes")]).status == 200
    assert get(gw.port, "/c?debug").status == 200
    with Client(gw.port) as c:
        assert c.request("DELETE", "/items/42").status == 200
        assert c.request("DELETE", "/items/x").status == 200
    assert get(gw.port, "/d", [("X-Canary", "no")]).status == 200
    assert who(backends) == {"admin": ["/a", "/items/42"], "v2": ["/b", "/c?debug"],
                             "v1": ["/items/x", "/d"]}


def test_no_route_is_a_json_404(make_gateway, backends):
    gw = make_gateway(upstreams=upstreams(backends),
                      routes=[{"match": {"path_prefix": "/api/"}, "upstream": "v1"}])
    resp = get(gw.port, "/other")
    assert resp.status == 404
    assert json.loads(resp.body) == {"error": "no route matches this request", "status": 404}


def test_split_90_10_over_10000_requests(make_gateway, backends):
    gw = make_gateway(upstreams=upstreams(backends), routes=[
        {"match": {"path_prefix": "/"},
         "split": [{"upstream": "v1", "weight": 90}, {"upstream": "v2", "weight": 10}]}])
    total = 10_000
    with Client(gw.port) as c:
        for i in range(total):
            assert c.request("GET", f"/s/{i}").status == 200
    share = len(backends["v2"].requests) / total
    assert abs(share - 0.10) <= 0.02, share
    assert len(backends["v1"].requests) + len(backends["v2"].requests) == total


def test_sticky_split_keeps_each_user_on_one_side(make_gateway, backends):
    gw = make_gateway(upstreams=upstreams(backends), routes=[
        {"match": {"path_prefix": "/"}, "sticky_on": "header:X-User-Id",
         "split": [{"upstream": "v1", "weight": 50}, {"upstream": "v2", "weight": 50}]}])
    users = [f"user-{i}" for i in range(40)]
    for _ in range(3):
        for user in users:
            assert get(gw.port, f"/u/{user}", [("X-User-Id", user)]).status == 200
    sides = {}
    for name in ("v1", "v2"):
        for rec in backends[name].requests:
            sides.setdefault(rec.target, set()).add(name)
    assert all(len(s) == 1 for s in sides.values()), sides
    assert {n for s in sides.values() for n in s} == {"v1", "v2"}


def test_rewrites(make_gateway, backends):
    gw = make_gateway(upstreams=upstreams(backends), routes=[
        {"match": {"path_prefix": "/api/"}, "upstream": "v1", "strip_prefix": "/api",
         "request_headers": {"set": {"X-Env": "prod"}, "add": {"X-Via": "fastgw"},
                             "remove": ["Cookie"]},
         "response_headers": {"set": {"Cache-Control": "no-store"}, "remove": ["X-Backend-Conn"]}},
        {"match": {"path_prefix": "/old/"}, "upstream": "v2",
         "replace_prefix": {"from": "/old/", "to": "/new/"}},
    ])
    resp = get(gw.port, "/api/users?x=1", [("X-Env", "dev"), ("Cookie", "a=1")])
    assert resp.status == 200
    assert resp.header("Cache-Control") == "no-store"
    assert resp.header("X-Backend-Conn") is None
    rec = backends["v1"].requests[-1]
    assert rec.target == "/users?x=1"
    assert rec.values("X-Env") == ["prod"] and rec.header("X-Via") == "fastgw"
    assert rec.header("Cookie") is None
    assert rec.header("X-Forwarded-Host") == "test.local"
    assert get(gw.port, "/old/thing").status == 200
    assert backends["v2"].requests[-1].target == "/new/thing"
