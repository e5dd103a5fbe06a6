"""Load balancing through the real CLI: smooth weighted round robin, drained and backup
targets, consistent hashing (same key, same backend, across requests and processes) and
least_conn, each against several real backends."""

from __future__ import annotations

import threading

from fastgw.balance import make_balancer
from fastgw.balance.peer import Peer
from tests.support.client import Client


def targets(backends, *specs):
    return [{"address": b.address, **spec} for b, spec in zip(backends, specs, strict=False)]


def send(port: int, paths: list[str], headers: list[tuple[str, str]] | None = None):
    with Client(port) as c:
        for path in paths:
            resp = c.request("GET", path, headers=headers)
            assert resp.status == 200, resp


def test_weighted_round_robin_shares_and_order(make_gateway, backends):
    gw = make_gateway(upstreams={"app": {"targets": targets(
        backends, {"weight": 5}, {"weight": 1}, {"weight": 1})}})
    send(gw.port, [f"/r/{i}" for i in range(14)])
    order = sorted(((r.target, i) for i, b in enumerate(backends) for r in b.requests),
                   key=lambda item: int(item[0].rsplit("/", 1)[1]))
    # nginx's smooth WRR with weights 5,1,1: a a b a c a a, twice
    assert "".join("abc"[i] for _, i in order) == "aabacaa" * 2


def test_drained_and_backup_targets(make_gateway, backends):
    gw = make_gateway(upstreams={"app": {"targets": targets(
        backends, {"down": True}, {"weight": 0}, {"backup": True})}})
    send(gw.port, [f"/b/{i}" for i in range(6)])
    # both primaries are out of rotation: the backup takes everything
    assert [len(b.requests) for b in backends] == [0, 0, 6]

    gw2 = make_gateway(upstreams={"app": {"targets": targets(
        backends, {}, {"down": True}, {"backup": True})}})
    for b in backends:
        b.reset()
    send(gw2.port, [f"/p/{i}" for i in range(6)])
    assert [len(b.requests) for b in backends] == [6, 0, 0]


def expected_hash_targets(backends, keys: list[str]) -> list[int]:
    peers = [Peer(b.address) for b in backends]
    balancer = make_balancer("consistent_hash", peers)
    return [peers.index(balancer.pick(key.encode())) for key in keys]


def test_consistent_hash_same_key_same_backend_across_processes(make_gateway, backends):
    config = {"app": {"balance": "consistent_hash", "hash_on": "header:X-User-Id",
                      "targets": targets(backends, {}, {}, {})}}
    first = make_gateway(upstreams=config)
    second = make_gateway(upstreams=config)
    keys = [f"user-{i}" for i in range(60)]
    for gw in (first, second):
        for key in keys:
            send(gw.port, [f"/u/{key}"], headers=[("X-User-Id", key)])
    seen: dict[str, set[int]] = {}
    for index, backend in enumerate(backends):
        for rec in backend.requests:
            seen.setdefault(rec.target.rsplit("/", 1)[1], set()).add(index)
    # every key went to exactly one backend, through both gateways, twice each
    assert all(len(where) == 1 for where in seen.values()), seen
    assert [seen[key].pop() for key in keys] == expected_hash_targets(backends, keys)
    assert len({i for where in seen.values() for i in where} | set(
        expected_hash_targets(backends, keys))) == 3  # the keys spread over all targets


def test_consistent_hash_without_the_key_falls_back_to_round_robin(make_gateway, backends):
    gw = make_gateway(upstreams={"app": {"balance": "consistent_hash", "hash_on": "cookie:sid",
                                         "targets": targets(backends, {}, {}, {})}})
    send(gw.port, [f"/n/{i}" for i in range(6)])
    assert [len(b.requests) for b in backends] == [2, 2, 2]


def test_least_conn_avoids_the_busy_target(make_gateway, backends):
    gw = make_gateway(upstreams={"app": {"balance": "least_conn",
                                         "targets": targets(backends, {}, {})}})
    slow_done = threading.Event()

    def slow() -> None:
        with Client(gw.port, timeout=10) as c:
            assert c.request("GET", "/slow/1.5").status == 200
        slow_done.set()

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    # the slow request is in flight on the first target (ties go in round-robin order)
    backends[0].wait_for(lambda: any(r.target == "/slow/1.5" for r in backends[0].requests),
                         5, "the slow request to reach the first backend")
    send(gw.port, [f"/f/{i}" for i in range(5)])
    assert [r.target for r in backends[1].requests] == [f"/f/{i}" for i in range(5)]
    thread.join(timeout=10)
    assert slow_done.is_set()
