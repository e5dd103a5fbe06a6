"""Reloads, shutdown and worker crashes while clients keep sending: the operational promises of
the master/worker split, checked with real load rather than one request at a time.

- 50 reloads (valid and invalid, alternating) under continuous keep-alive, new-connection and
  slow traffic with two workers: not one request fails, and every change takes effect.
- A weight change applies exactly (smooth weighted round robin, from the first request after).
- SIGTERM under load: what was sent before it is answered (with ``Connection: close`` where the
  connection would otherwise stay open), new connections are refused, the master exits 0.
- A worker killed with SIGKILL: only connections it held fail; it is replaced.
- ``shutdown_timeout`` bounds a graceful stop and closes what is still in progress.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import time

import yaml

from tests.support import Deadline, wait_until
from tests.support.backend import Backend
from tests.support.client import Client
from tests.support.gateway import Gateway
from tests.support.load import Load, LoadClient, owners, spread


def workers_on(gw: Gateway, generation: int, count: int = 2, gone: int = 0) -> list[int]:
    """Wait until the status file lists ``count`` workers, all serving ``generation`` (and
    none with the pid ``gone``); their pids."""
    def ready():
        workers = gw.status()["workers"]
        return (len(workers) == count and all(w["generation"] == generation for w in workers)
                and gone not in [w["pid"] for w in workers] and [w["pid"] for w in workers])

    return wait_until(ready, 10, f"{count} workers on generation {generation}",
                      details=lambda: f"{gw.status()['workers']}\n{gw.log_tail()}")


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# --- 1. reloads under load --------------------------------------------------------------------

V2_PREFIX = "/v2/"


class Routing:
    """The part of the config the reloads change, and what it makes the gateway do.

    ``weights``: weight per backend index in upstream ``app`` (absent: not a target);
    ``v2``: whether the route ``/v2/`` -> upstream ``v2`` (backend 2) exists.
    """

    def __init__(self, weights: dict[int, int], v2: bool) -> None:
        self.weights = weights
        self.v2 = v2

    def in_rotation(self) -> set[int]:
        return {i for i, w in self.weights.items() if w > 0}

    def config(self, backends: list[Backend], base: dict | None = None) -> dict:
        """``base`` with this routing (only the routing without one)."""
        config = copy.deepcopy(base or {})
        config["upstreams"] = {
            "app": {"targets": [{"address": backends[i].address, "weight": w}
                                for i, w in sorted(self.weights.items())]},
            "v2": {"targets": [{"address": backends[2].address}]},
            "slow": {"targets": [{"address": backends[1].address},
                                 {"address": backends[2].address}]},
        }
        routes = [{"name": "slow", "match": {"path_prefix": "/slow/"}, "upstream": "slow"},
                  {"name": "default", "match": {"path_prefix": "/"}, "upstream": "app"}]
        if self.v2:
            routes.insert(0, {"name": "v2", "match": {"path_prefix": V2_PREFIX},
                              "upstream": "v2"})
        config["routes"] = routes
        return config


def valid_steps(backends: list[Backend]) -> list[tuple[Routing, list[str]]]:
    """A cycle of valid changes back to the start (A: 1, B: 1, no /v2/), each with the
    change lines ``fastgw reload`` must print."""
    a, b, c = (backend.address for backend in backends)
    return [
        (Routing({0: 1, 1: 1}, v2=True), ["route added: v2 (/v2/* → v2)"]),
        (Routing({0: 3, 1: 1}, v2=True), [f"upstream app: target {a} weight 1 → 3"]),
        (Routing({0: 3, 1: 1}, v2=False), ["route removed: v2"]),
        (Routing({0: 3, 1: 1, 2: 1}, v2=False), [f"upstream app: target {c} added (weight 1)"]),
        (Routing({0: 3, 1: 0, 2: 1}, v2=False),
         [f"upstream app: target {b} weight 1 → 0 (drains)"]),
        (Routing({0: 1, 1: 1}, v2=False), [f"upstream app: target {a} weight 3 → 1",
                                           f"upstream app: target {b} weight 0 → 1",
                                           f"upstream app: target {c} removed (drains)"]),
    ]


def invalid_file(kind: str, good: dict) -> tuple[str, str]:
    """A broken version of ``good`` (YAML text) and a phrase its error must contain."""
    bad = copy.deepcopy(good)
    if kind == "yaml":
        text = yaml.safe_dump(bad, sort_keys=False).replace("routes:", "routes: [", 1)
        return text, "invalid YAML"
    if kind == "upstream":
        bad["routes"].insert(0, {"match": {"path_prefix": "/v3/"}, "upstream": "nowhere"})
        return yaml.safe_dump(bad, sort_keys=False), 'unknown upstream "nowhere"'
    bad["upstreams"]["app"]["targets"][0]["weight"] = -1  # kind == "weight"
    return yaml.safe_dump(bad, sort_keys=False), ".targets[0].weight"


class Prober:
    """Requests with unique paths on one keep-alive connection (kept across every reload),
    and which backend each one reached."""

    def __init__(self, port: int, backends: list[Backend]) -> None:
        self.client = Client(port)
        self.backends = backends
        self.sent = 0

    def reached(self, prefix: str) -> int:
        """Send ``PREFIXprobe-N``; the index of the one backend that received it."""
        self.sent += 1
        target = f"{prefix}probe-{self.sent}"
        resp = self.client.request("GET", target)
        assert resp.status == 200 and resp.body == f"GET {target}".encode(), resp
        assert "close" not in resp.connection_tokens(), resp
        where = [i for i, b in enumerate(self.backends)
                 if any(r.target == target for r in b.complete_requests())]
        assert len(where) == 1, f"{target} reached backends {where}"
        return where[0]

    def check(self, routing: Routing, state: str) -> None:
        """The gateway routes as ``routing`` says: /v2/ to backend 2 exactly when the route
        exists, everything else only to the targets in rotation, and each of those gets
        requests (probes until each one was reached)."""
        rotation = routing.in_rotation()
        v2 = self.reached(V2_PREFIX)
        assert v2 in ({2} if routing.v2 else rotation), \
            f"{state}: /v2/ reached backend {v2}; route present: {routing.v2}"
        missing = set(rotation)
        deadline = Deadline(5)
        while missing:
            where = self.reached("/p/")
            assert where in rotation, f"{state}: reached backend {where}, not in {rotation}"
            missing.discard(where)
            assert not deadline.expired(), f"{state}: backends {missing} never reached"


def test_fifty_reloads_under_load_fail_no_request(make_gateway, backends):
    """50 reloads, valid and invalid alternating, with two workers, while keep-alive clients,
    new-connection clients and slow (/slow/1, /slow/1.5) clients send without pause.

    Asserted: every request of the load is a 200 with the backend's body for it (no error, no
    connection refused, closed or reset, no ``Connection: close``); each keep-alive client
    kept its one connection through all the reloads; a valid reload exits 0, adds one to the
    generation, prints its changes, every worker reports the new generation and routing
    follows the new file; an invalid one exits 1 with the error, and the generation, the
    workers and the routing stay as they were."""
    base = Routing({0: 1, 1: 1}, v2=False)
    gw = make_gateway(backends[0].address, workers=2, **base.config(backends))
    generation = 1
    workers_on(gw, generation)

    load = Load(gw.port)
    load.keepalive(3)
    load.new_connections(2)
    load.slow(2, "1")
    load.slow(2, "1.5")
    load.start()
    prober = Prober(gw.port, backends)
    steps = valid_steps(backends)
    routing = base
    valid = invalid = 0
    started = time.monotonic()
    try:
        load.wait_for(100, 10)
        prober.check(routing, "before the reloads")
        for n in range(50):
            attempts = gw.status()["attempts"]
            if n % 2 == 0:
                routing, changes = steps[valid % len(steps)]
                config = routing.config(backends, gw.config)
                result = gw.reload(config)
                assert result.returncode == 0, f"reload {n}: {result.stderr}\n{gw.log_tail()}"
                generation += 1
                valid += 1
                assert result.stdout.startswith(f"reloaded to generation {generation} ("), \
                    result.stdout
                printed = [line.strip() for line in result.stdout.splitlines()[1:]]
                assert sorted(printed) == sorted(changes), f"reload {n}: {printed}"
                what = f"after valid reload {n} (generation {generation})"
            else:
                kind = ("yaml", "upstream", "weight")[invalid % 3]
                text, phrase = invalid_file(kind, config)
                result = gw.reload(text)
                invalid += 1
                assert result.returncode == 1, f"reload {n} ({kind}): {result.stdout}"
                assert (f"reload failed, still serving generation {generation}: "
                        in result.stderr), result.stderr
                assert phrase in result.stderr, result.stderr
                what = f"after invalid reload {n} ({kind}; still generation {generation})"
            status = gw.status()
            assert status["attempts"] == attempts + 1
            assert status["generation"] == generation, what
            assert status["last_reload"]["ok"] == (n % 2 == 0), status["last_reload"]
            workers_on(gw, generation)
            prober.check(routing, what)
        load.wait_for(100, 10)  # still flowing after the last one
    finally:
        load.stop()
        prober.client.close()
    elapsed = time.monotonic() - started

    outcomes = load.snapshot()
    failed = [o for o in outcomes if not o.ok]
    slow = [o for o in outcomes if o.target.startswith("/slow/")]
    print(f"\nreloads under load: {len(outcomes)} requests sent, {len(failed)} failed "
          f"({sum(not o.responded for o in failed)} connection errors: refused, closed or "
          f"reset before any response byte), "
          f"{len(slow)} slow; {valid + invalid} reloads ({valid} valid, {invalid} invalid) "
          f"in {elapsed:.1f}s; {len(load.connections)} client connections")
    assert not failed, load.summary()
    assert not [o for o in outcomes if o.closing], "a response said Connection: close"
    assert len(slow) >= 20 and all(o.ok for o in slow)
    keepalive = [c for c in load.connections.values() if not c.client.startswith("new-conn")]
    assert len(keepalive) == 3 + 2 + 2, "a keep-alive or slow client had to reconnect"
    assert len(outcomes) > 1000, load.summary()


# --- 2. weights --------------------------------------------------------------------------------


def test_weight_change_applies_exactly(make_gateway, backend):
    """1:1 round robin alternates; after a reload to 9:1, 200 requests split exactly 180/20,
    one in every ten (smooth weighted round robin; one worker, so no interleaving)."""
    other = Backend().start()
    try:
        both = [backend, other]

        def app(wa: int, wb: int) -> dict:
            return {"app": {"targets": [{"address": backend.address, "weight": wa},
                                        {"address": other.address, "weight": wb}]}}

        gw = make_gateway(workers=1, upstreams=app(1, 1))

        def picks(prefix: str, n: int) -> str:
            with Client(gw.port) as c:
                for i in range(n):
                    assert c.request("GET", f"{prefix}/{i}").status == 200
            order = []
            for i in range(n):
                (where,) = [k for k, b in enumerate(both)
                            if any(r.target == f"{prefix}/{i}" for r in b.requests)]
                order.append("ab"[where])
            return "".join(order)

        before = picks("/even", 20)
        assert before in ("ab" * 10, "ba" * 10), before

        config = copy.deepcopy(gw.config)
        config["upstreams"] = app(9, 1)
        result = gw.reload(config)
        assert result.returncode == 0, result.stderr
        assert f"upstream app: target {backend.address} weight 1 → 9" in result.stdout
        after = picks("/heavy", 200)
        assert after.count("a") == 180 and after.count("b") == 20, after
        windows = [after[i:i + 10] for i in range(0, 200, 10)]
        assert all(w.count("b") == 1 for w in windows), windows
    finally:
        other.stop()


# --- 3. SIGTERM under load ---------------------------------------------------------------------


def test_sigterm_under_load_answers_what_was_sent(make_gateway, backend):
    """SIGTERM to the master while keep-alive and new-connection clients send, and slow
    requests (known to have reached the backend) are in flight on both workers.

    Asserted: the slow requests complete with 200, ``Connection: close`` and then the close;
    while they are in flight, new connections are already refused; the master exits 0; after
    it, connections are refused. For the continuous load: no response is wrong or cut off
    (a request either gets its whole 200 or no response byte at all), every request whose
    bytes were sent before the signal got its 200, and no response before the signal said
    ``Connection: close``. (A request sent after the signal may find its connection closed
    while idle, or refused: that is the ordinary keep-alive race, which clients retry.)"""
    gw = make_gateway(workers=2)
    pids = workers_on(gw, 1)
    held = spread(gw.port, pids, per_worker=2)
    inflight = [c for clients in held.values() for c in clients]

    load = Load(gw.port)
    load.keepalive(3)
    load.new_connections(2)
    load.start()
    try:
        load.wait_for(200, 10)
        for i, c in enumerate(inflight):
            c.send(f"GET /slow/2?inflight-{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wanted = {f"/slow/2?inflight-{i}" for i in range(len(inflight))}
        backend.wait_for(lambda: wanted <= {r.target for r in backend.requests}, 10,
                         "the slow requests at the backend")
        gw.stopped = True  # this test stops it: an exit is not a crash
        signalled = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)

        wait_until(lambda: refused(gw.port), 5, "new connections to be refused",
                   details=gw.log_tail)
        assert all(c.is_open_and_quiet() for c in inflight), \
            "a slow request ended before new connections were refused"
        for c in inflight:
            resp = c.read_response(timeout=10)
            assert resp.status == 200 and resp.body == b"slow", resp
            assert "close" in resp.connection_tokens(), resp.raw_head
            c.assert_closed(timeout=5)
        assert gw.proc.wait(10) == 0, gw.log_tail()
        exited = time.monotonic()
    finally:
        load.stop()
        for c in inflight:
            c.close()
    assert refused(gw.port)

    outcomes = load.snapshot()
    cut = [o for o in outcomes if not o.ok and o.responded]
    assert not cut, f"wrong or partial responses: {[(o.target, o.error) for o in cut]}"
    lost = [o for o in outcomes if not o.ok and o.sent and o.sent < signalled]
    assert not lost, f"requests sent before SIGTERM not answered: " \
                     f"{[(o.target, o.error) for o in lost]}"
    early = [o for o in outcomes if o.closing and o.finished < signalled]
    assert not early, f"Connection: close before SIGTERM: {[o.target for o in early]}"
    after = [o for o in outcomes if o.started > signalled]
    assert after, "the load did not go on past the signal"
    # every keep-alive connection open at the signal ended with a Connection: close response,
    # or was closed while idle (its next request got no response byte)
    for conn in load.connections.values():
        if conn.client.startswith("keepalive") and not 0 < conn.closed < signalled:
            last = [o for o in outcomes if o.conn == conn.id][-1]
            assert (last.ok and last.closing) or not (last.ok or last.responded), last
    refusals = sum(o.error is not None and o.error.startswith("connect") for o in after)
    print(f"\nSIGTERM under load: {len(outcomes)} requests, {len(after)} started after the "
          f"signal ({sum(o.ok for o in after)} answered, "
          f"{sum(o.ok and o.closing for o in outcomes)} with Connection: close, "
          f"{sum(not o.ok for o in after) - refusals} closed unanswered, {refusals} refused); "
          f"{len(inflight)} slow in flight on {len(held)} workers; the master exited "
          f"{exited - signalled:.2f}s after the signal")
    log = gw.log()
    assert "SIGTERM: stopping gracefully" in log
    assert "shutdown timeout" not in log, gw.log_tail()


# --- 4. a worker killed ------------------------------------------------------------------------


def test_killed_worker_fails_only_its_own_connections(make_gateway, backend):
    """SIGKILL one of two workers while keep-alive clients (two on each worker, known from
    /proc), slow clients (one on each) and new-connection clients send.

    Asserted: the master logs the death and forks a replacement (two workers again, on the
    same generation, and the new one serves); every keep-alive and slow connection held by the
    surviving worker has no failure at all; every one held by the killed worker fails (the
    process died: its sockets closed) exactly once and its client carries on, on a new
    connection; nothing fails before the kill, and no connection fails that the client began
    to open after os.kill returned (the other worker alone serves them until the replacement
    is up, then both do), so every failure is on a connection that was open, or being opened,
    when the worker was killed. (Client-side times only bound when things happened: a thread
    may wait for the GIL after connect() returns, so "began to open" is the reliable one.)"""
    gw = make_gateway(workers=2)
    pids = workers_on(gw, 1)
    held = spread(gw.port, pids, per_worker=3)
    victim, survivor = pids
    load = Load(gw.port)
    load.keepalive(4, clients=held[victim][:2] + held[survivor][:2])
    load.slow(2, "0.3", clients=[held[victim][2], held[survivor][2]])
    load.new_connections(2)
    load.start()
    try:
        load.wait_for(200, 10)
        by_client = {c.client: c.id for c in load.connections.values()}
        doomed = {by_client[n] for n in ("keepalive-0", "keepalive-1", "slow-0.3-0")}
        spared = {by_client[n] for n in ("keepalive-2", "keepalive-3", "slow-0.3-1")}
        # two readings: another client thread may run between them and os.kill
        killing = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: f"(pid {victim}) killed by signal 9 (SIGKILL); restarting it"
                   in gw.log(), 10, "the master to log the death", details=gw.log_tail)
        new_pids = workers_on(gw, 1, gone=victim)
        replaced = time.monotonic()
        assert victim not in new_pids and survivor in new_pids, new_pids
        (replacement,) = set(new_pids) - {survivor}

        # the replacement accepts and serves (connections go to either worker: try a few)
        def served_by_replacement() -> bool:
            with LoadClient(gw.port) as c:
                assert c.request("GET", "/replacement").status == 200
                return owners([c], new_pids) == [replacement]

        wait_until(served_by_replacement, 10, "a connection served by the new worker")
        load.wait_for(300, 10)
    finally:
        load.stop()

    outcomes = load.snapshot()
    failed = [o for o in outcomes if not o.ok]
    per_conn: dict[int, int] = {}
    for o in failed:
        per_conn[o.conn] = per_conn.get(o.conn, 0) + 1
    conns = load.connections
    detail = load.summary(30)
    assert not spared & set(per_conn), f"connections of the surviving worker failed\n{detail}"
    assert {c: per_conn.get(c, 0) for c in doomed} == dict.fromkeys(doomed, 1), \
        f"each connection of the killed worker must fail once\n{detail}"
    assert all(o.conn for o in failed), f"a connection was refused\n{detail}"
    early = [o for o in failed if o.finished < killing]
    assert not early, f"requests failed before the kill\n{detail}"
    late = [o for o in failed if conns[o.conn].connecting > killed]
    assert not late, f"connections opened after the kill failed\n{detail}"
    print(f"\nworker killed under load: {len(outcomes)} requests, {len(failed)} failed, on "
          f"{len(per_conn)} connections (3 held by the killed worker); replacement up "
          f"{replaced - killed:.2f}s after the kill")


# --- 5. shutdown_timeout -----------------------------------------------------------------------


def test_shutdown_timeout_closes_what_is_still_running(make_gateway, backend):
    """A /slow/5 request in flight, ``shutdown_timeout: 1s``, SIGTERM: the master exits 0
    about a second later (not at once, not after the request), the client's connection is
    closed without a response, the upstream connection is closed too, and the worker logs
    how many connections it cut."""
    gw = make_gateway(workers=2, shutdown_timeout="1s")
    workers_on(gw, 1)
    with Client(gw.port) as slow:
        slow.send(b"GET /slow/5 HTTP/1.1\r\nHost: x\r\n\r\n")
        (request,) = backend.wait_requests(1)
        gw.stopped = True
        signalled = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(5) == 0, gw.log_tail()
        took = time.monotonic() - signalled
        slow.assert_closed(timeout=2)
    assert 0.9 <= took < 3.5, f"exited {took:.2f}s after SIGTERM\n{gw.log_tail()}"
    backend.wait_for(lambda: backend.connections[request.conn_id].closed_by == "peer", 5,
                     "the gateway to close the upstream connection")
    log = gw.log()
    assert log.count("shutdown timeout: closed 1 connections still in progress") == 1, \
        gw.log_tail()
