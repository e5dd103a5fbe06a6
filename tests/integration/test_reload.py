"""Reloads through the real CLI: ``fastgw reload`` (SIGHUP) applies a validated file to the
running gateway, an invalid file changes nothing, keep-alive connections continue under the new
plan, pools of unchanged targets carry over, removed targets drain, listeners come and go, and
``fastgw plan`` shows exactly the changes the reload then logs."""

from __future__ import annotations

import copy
import re
import signal
import socket

import pytest
import yaml

from tests.support import wait_until
from tests.support.backend import Backend
from tests.support.client import Client
from tests.support.gateway import Gateway, free_port, make_config
from tests.support.load import owners


def two_upstreams(blue: Backend, green: Backend, upstream: str = "blue", **overrides) -> dict:
    config = make_config(blue.address, free_port(), **overrides)
    config["upstreams"] = {"blue": {"targets": [{"address": blue.address}]},
                           "green": {"targets": [{"address": green.address}]}}
    config["routes"] = [{"name": "app", "match": {"path_prefix": "/"}, "upstream": upstream}]
    return config


def served_by(backends: list[Backend], path: str) -> list[int]:
    """Indexes of the backends that received ``path``."""
    return [i for i, b in enumerate(backends) if any(r.target == path for r in b.requests)]


def changes_logged(gw: Gateway, generation: int) -> list[str]:
    prefix = f"generation {generation}: "
    return [line.split(prefix, 1)[1] for line in gw.log().splitlines() if prefix in line]


def test_reload_switches_blue_to_green_and_keeps_the_connection(start, backends):
    blue, green, _ = backends
    config = two_upstreams(blue, green)
    gw = start(config)
    with Client(gw.port) as c:
        assert c.request("GET", "/before").status == 200
        assert served_by(backends, "/before") == [0]

        config["routes"][0]["upstream"] = "green"
        result = gw.reload(config)
        assert result.returncode == 0, result.stderr + gw.log_tail()
        assert result.stdout.startswith("reloaded to generation 2 (sha256:"), result.stdout
        assert "route app: upstream blue → green" in result.stdout

        # the same client connection, now under the new plan
        assert c.request("GET", "/after").status == 200
        assert served_by(backends, "/after") == [1]
    status = gw.status()
    assert status["generation"] == 2
    assert [w["generation"] for w in status["workers"]] == [2]
    assert changes_logged(gw, 2) == ["route app: upstream blue → green"]


def test_invalid_reload_changes_nothing(start, backends):
    blue, green, _ = backends
    config = two_upstreams(blue, green)
    gw = start(config)
    broken = copy.deepcopy(config)
    broken["routes"][0]["upstream"] = "purple"
    result = gw.reload(broken)
    assert result.returncode == 1, result.stdout
    assert "still serving generation 1" in result.stderr
    # the file, the place in it and what was expected
    assert re.search(r"gw0\.yaml: \$\.routes\[0\]\.upstream: .*purple", result.stderr), \
        result.stderr
    assert "reload failed, still serving generation 1" in gw.log()

    result = gw.reload("listen: [\n")  # not even YAML
    assert result.returncode == 1 and "line" in result.stderr, result.stderr

    with Client(gw.port) as c:
        assert c.request("GET", "/still-blue").status == 200
    assert served_by(backends, "/still-blue") == [0]
    assert gw.status()["generation"] == 1
    assert gw.status()["attempts"] == 2

    config["routes"][0]["upstream"] = "green"  # a valid file afterwards still applies
    assert gw.reload(config).returncode == 0
    assert gw.status()["generation"] == 2


def test_unchanged_target_keeps_its_pool_and_a_removed_one_drains(start, backends):
    blue, green, third = backends
    config = two_upstreams(blue, green)
    config["routes"].insert(0, {"name": "g", "match": {"path_prefix": "/g/"},
                                "upstream": "green"})
    gw = start(config)
    with Client(gw.port) as c:
        first = c.request("GET", "/b/1").header("X-Backend-Conn")
        assert c.request("GET", "/g/1").status == 200
    wait_until(lambda: green.open_connection_ids(), 5, "a pooled connection to green")

    # green leaves the config; blue's upstream is unchanged; a new route to a new upstream
    config["routes"][0] = {"name": "t", "match": {"path_prefix": "/t/"}, "upstream": "third"}
    config["upstreams"]["third"] = {"targets": [{"address": third.address}]}
    del config["upstreams"]["green"]
    result = gw.reload(config)
    assert result.returncode == 0, result.stderr
    assert "upstream removed: green (drains)" in result.stdout

    wait_until(lambda: not green.open_connection_ids(), 5,
               "the idle connection to the removed upstream to close", details=green.summary)
    with Client(gw.port) as c:
        again = c.request("GET", "/b/2").header("X-Backend-Conn")
        assert c.request("GET", "/t/1").status == 200
        assert c.request("GET", "/g/2").status == 200  # no longer a route of its own: blue
    assert again == first, "the unchanged upstream's pooled connection was not reused"
    assert served_by(backends, "/t/1") == [2]
    assert served_by(backends, "/g/2") == [0]


def test_request_in_flight_finishes_on_a_removed_target(start, backends):
    blue, green, _ = backends
    config = two_upstreams(blue, green, upstream="green")
    gw = start(config)
    with Client(gw.port) as slow:
        slow.send(b"GET /slow/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        green.wait_requests(1)
        config["routes"][0]["upstream"] = "blue"
        del config["upstreams"]["green"]
        assert gw.reload(config).returncode == 0
        resp = slow.read_response()
        assert resp.status == 200 and resp.body == b"slow"
        # the drained target's connection closed when its response was done, not pooled
        wait_until(lambda: not green.open_connection_ids(), 5, "green's connection to close",
                   details=green.summary)
        assert slow.request("GET", "/next").status == 200
    assert served_by(backends, "/next") == [0]


def test_listeners_added_and_removed(start, backends):
    blue, green, _ = backends
    config = two_upstreams(blue, green)
    gw = start(config)
    old_port, new_port = gw.port, free_port()
    kept = Client(old_port)
    assert kept.request("GET", "/k1").status == 200

    config["listen"] = f"127.0.0.1:{new_port}"
    result = gw.reload(config)
    assert result.returncode == 0, result.stderr
    assert f"listen added: 127.0.0.1:{new_port}" in result.stdout
    assert f"listen removed: 127.0.0.1:{old_port}" in result.stdout
    with Client(new_port) as c:
        assert c.request("GET", "/new").status == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old_port), timeout=2).close()
    # a connection accepted on the removed listener is not reset: it keeps being served
    assert kept.request("GET", "/k2").status == 200
    kept.close()
    gw.port = new_port  # for the fixture's clean-exit check


def test_reload_that_cannot_bind_changes_nothing(start, backends):
    blue, green, _ = backends
    config = two_upstreams(blue, green)
    gw = start(config)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    try:
        config["listen"] = [f"127.0.0.1:{gw.port}", f"127.0.0.1:{busy}"]
        config["routes"][0]["upstream"] = "green"
        result = gw.reload(config)
        assert result.returncode == 1
        assert f"cannot listen on 127.0.0.1:{busy}" in result.stderr, result.stderr
    finally:
        taken.close()
    with Client(gw.port) as c:
        assert c.request("GET", "/unchanged").status == 200
    assert served_by(backends, "/unchanged") == [0]
    assert gw.status()["generation"] == 1


def canary(stable: int, canary_weight: int) -> list[dict]:
    return [{"upstream": "blue", "weight": stable}, {"upstream": "green", "weight": canary_weight}]


@pytest.mark.parametrize("change", ["blue-green", "canary-step", "target-removal"])
def test_plan_shows_what_the_reload_logs(start, backends, tmp_path, change):
    blue, green, third = backends
    config = two_upstreams(blue, green)
    config["upstreams"]["blue"]["targets"].append({"address": third.address})
    config["upstreams"]["blue"]["balance"] = "consistent_hash"
    config["upstreams"]["blue"]["hash_on"] = "header:X-User"
    if change == "canary-step":
        config["routes"][0] = {"name": "app", "match": {"path_prefix": "/"},
                               "split": canary(90, 10)}
    gw = start(config)
    new = copy.deepcopy(config)
    if change == "blue-green":
        new["routes"][0]["upstream"] = "green"
        expected = ["route app: upstream blue → green"]
    elif change == "canary-step":
        new["routes"][0]["split"] = canary(75, 25)
        expected = ["route app: split blue 90 → 75, green 10 → 25"]
    else:
        new["upstreams"]["blue"]["targets"].pop()
        expected = [f"upstream blue: target {third.address} removed (drains)"]
    new_file = tmp_path / "new.yaml"  # beside the running file: nothing reloads it yet
    new_file.write_text(yaml.safe_dump({**new, "pidfile": str(gw.pidfile)}))
    old_path = gw.config_path

    against_running = gw.fastgw("plan", "-c", str(new_file), "--pidfile", str(gw.pidfile))
    against_file = gw.fastgw("plan", "-c", str(new_file), "--against", str(old_path))
    assert against_running.returncode == 0, against_running.stderr
    planned = against_running.stdout.splitlines()
    assert planned[0].startswith("plan: running generation 1 (")
    assert against_file.stdout.splitlines()[1:] == planned[1:]
    for line in expected:
        assert line in planned, planned
    if change == "target-removal":  # one of two equal targets leaves: half the keys move
        moved = [line for line in planned if "of keys move" in line]
        assert len(moved) == 1 and moved[0].endswith("(ideal 50.0%)"), planned

    gw.write_config(new)
    result = gw.reload()
    assert result.returncode == 0, result.stderr
    assert changes_logged(gw, 2) == planned[1:]
    assert [line.strip() for line in result.stdout.splitlines()[1:]] == planned[1:]


def test_plan_needs_something_to_compare_with(tmp_path, backends):
    blue, green, _ = backends
    gw = Gateway(two_upstreams(blue, green), tmp_path)
    path = tmp_path / "lonely.yaml"
    path.write_text("listen: 127.0.0.1:1\nupstreams: {a: {targets: [{address: '127.0.0.1:2'}]}}\n"
                    "routes: [{match: {path_prefix: /}, upstream: a}]\n")
    result = gw.fastgw("plan", "-c", str(path))
    assert result.returncode == 1 and "no pidfile" in result.stderr, result.stderr
    result = gw.fastgw("plan", "-c", str(path), "--pidfile", str(tmp_path / "none.pid"))
    assert result.returncode == 1 and "cannot read status file" in result.stderr
    result = gw.fastgw("reload", "--pidfile", str(tmp_path / "none.pid"))
    assert result.returncode == 1 and "cannot read pidfile" in result.stderr


def test_workers_scale_on_reload_and_share_a_generation(start, backends):
    blue, green, _ = backends
    config = two_upstreams(blue, green, workers=2)
    gw = start(config)
    wait_until(lambda: len(gw.status()["workers"]) == 2, 10, "two workers")
    first = set(gw.worker_pids())
    assert len(first) == 2

    config["workers"] = 3
    result = gw.reload(config)
    assert result.returncode == 0, result.stderr
    assert "workers: 2 → 3" in result.stdout
    wait_until(lambda: [w["generation"] for w in gw.status()["workers"]] == [2, 2, 2], 10,
               "three workers on generation 2", details=gw.log_tail)
    assert first < set(gw.worker_pids()), "the existing workers were restarted"

    config["workers"] = 1
    config["routes"][0]["upstream"] = "green"
    assert gw.reload(config).returncode == 0
    wait_until(lambda: len(gw.worker_pids()) == 1, 10, "the extra workers to exit",
               details=gw.log_tail)
    assert [w["generation"] for w in gw.status()["workers"]] == [3]
    # the retired workers' SO_REUSEPORT sockets were handed to the one left: connections the
    # kernel hashes to them are still accepted (else some of these would hang)
    for i in range(30):
        with Client(gw.port, timeout=5) as c:
            assert c.request("GET", f"/one/{i}").status == 200
    assert all(served_by(backends, f"/one/{i}") == [1] for i in range(30))


def test_pidfile_flag_and_cleanup(tmp_path, backends):
    blue, green, _ = backends
    gw = Gateway(two_upstreams(blue, green), tmp_path).start()
    try:
        assert gw.pidfile.read_text().strip() == str(gw.proc.pid)
        assert gw.status()["pid"] == gw.proc.pid
    finally:
        assert gw.stop() == 0
    assert not gw.pidfile.exists()
    assert not gw.pidfile.with_name(gw.pidfile.name + ".status").exists()

    elsewhere = tmp_path / "run" / "other.pid"
    elsewhere.parent.mkdir()
    gw2 = Gateway(two_upstreams(blue, green), tmp_path, name="flag")
    gw2.start()
    try:
        result = gw2.fastgw("reload", "--pidfile", str(gw2.pidfile))
        assert result.returncode == 0
    finally:
        gw2.stop()


def test_sigquit_stops_at_once(start, backends):
    blue, green, _ = backends
    gw = start(two_upstreams(blue, green, shutdown_timeout="30s"))
    slow = Client(gw.port)
    slow.send(b"GET /slow/20 HTTP/1.1\r\nHost: x\r\n\r\n")
    blue.wait_requests(1)
    gw.proc.send_signal(signal.SIGQUIT)
    assert gw.proc.wait(5) == 0, gw.log_tail()
    slow.assert_closed(timeout=2)
    slow.close()


def test_workers_share_new_connections(start, backends):
    """Each worker accepts on its own SO_REUSEPORT sockets: a burst of keep-alive connections
    is spread by the kernel, not taken by whichever worker wakes first (with one shared
    socket, 64 connections split 62/2 here)."""
    blue, green, _ = backends
    gw = start(two_upstreams(blue, green, workers=2))
    wait_until(lambda: len(gw.status()["workers"]) == 2, 10, "two workers")
    clients = [Client(gw.port) for _ in range(64)]
    try:
        for c in clients:
            assert c.request("GET", "/spread").status == 200
        held = owners(clients, gw.worker_pids())
        counts = sorted(held.count(pid) for pid in gw.worker_pids())
        assert sum(counts) == 64 and counts[0] >= 16, counts  # binomial(64, ½): ≥16 all but surely
    finally:
        for c in clients:
            c.close()
