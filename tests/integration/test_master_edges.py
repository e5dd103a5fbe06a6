"""The master's awkward moments, each found by a review and reproduced before the fix: a
reload while a retired worker still drains, a second SIGHUP during a reload, a status file
that can't be written, SIGQUIT during a slow graceful stop, and a connection accepted just
before SIGTERM whose request is still on its way."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time


from tests.support import wait_until
from tests.support.backend import Backend
from tests.support.client import Client
from tests.support.gateway import Gateway, free_port, make_config
from tests.support.load import owners


def config_for(backend: Backend, **overrides) -> dict:
    return make_config(backend.address, free_port(), **overrides)


def generation_log(gw: Gateway) -> list[str]:
    return [line for line in gw.log().splitlines() if "reloaded to generation" in line]


def test_reload_while_a_retired_worker_drains_is_not_held_up(start, backends):
    backend = backends[0]
    config = config_for(backend, workers=2)
    gw = start(config)
    slow = [Client(gw.port, timeout=20) for _ in range(6)]
    for c in slow:  # spread over both workers by the kernel
        c.send(b"GET /slow/8 HTTP/1.1\r\nHost: x\r\n\r\n")
    backend.wait_requests(6)
    config["workers"] = 1
    assert gw.reload(config).returncode == 0
    config["routes"][0]["match"] = {"path_prefix": "/"}
    config["timeouts"]["client_idle"] = "70s"
    started = time.monotonic()
    result = gw.reload(config)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # waiting on the draining worker would take until its slow requests end (8 s) or
    # until APPLY_TIMEOUT (30 s); a reload itself takes milliseconds
    assert took < 5, f"the reload waited {took:.1f}s for the draining worker"
    for c in slow:  # the retired worker's requests finished
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"slow"
        c.close()
    assert "did not confirm" not in gw.log()


def test_a_sighup_during_a_reload_waits_its_turn(start, backends):
    backend = backends[0]
    config = config_for(backend, workers=2)
    gw = start(config)
    extra = free_port()
    stuck = gw.worker_pids()[0]
    os.kill(stuck, signal.SIGSTOP)  # generation 2 can't be confirmed until SIGCONT
    try:
        config["timeouts"]["client_idle"] = "70s"
        gw.write_config(config)
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "-> generation 2" in gw.log(), 10, "reload 2 to start")
        config["listen"] = [config["listen"], f"127.0.0.1:{extra}"]
        gw.write_config(config)
        gw.proc.send_signal(signal.SIGHUP)  # arrives while reload 2 waits
    finally:
        os.kill(stuck, signal.SIGCONT)

    def settled():
        status = gw.status()
        return (status["generation"] == 3 and status["last_reload"]["generation"] == 3
                and [w["generation"] for w in status["workers"]] == [3, 3])
    wait_until(settled, 10, "generation 3 everywhere", details=gw.log_tail)
    assert [line.split("reloaded to ")[1].split()[1] for line in generation_log(gw)] == \
        ["2", "3"]
    for _ in range(10):  # the listener generation 3 added serves, on every worker
        with Client(extra, timeout=5) as c:
            assert c.request("GET", "/extra").status == 200


class GatewayInRunDir(Gateway):
    @property
    def pidfile(self):
        return self.workdir / "run" / "fastgw.pid"


def test_a_status_file_that_cannot_be_written_is_only_logged(start, backends, tmp_path):
    backend = backends[0]
    (tmp_path / "run").mkdir()
    gw = start(config_for(backend), cls=GatewayInRunDir)
    shutil.rmtree(tmp_path / "run")  # a tmp cleaner, a full disk...
    victim = gw.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: "cannot write the status file" in gw.log(), 10,
               "the failure to be logged", details=gw.log_tail)
    wait_until(lambda: gw.worker_pids() and victim not in gw.worker_pids(), 10,
               "a replacement worker")
    assert gw.alive(), gw.log_tail()
    with Client(gw.port) as c:
        assert c.request("GET", "/still").status == 200


def test_sigquit_ends_a_slow_graceful_stop(start, backends):
    backend = backends[0]
    gw = start(config_for(backend, shutdown_timeout="60s"))
    slow = Client(gw.port, timeout=30)
    slow.send(b"GET /slow/30 HTTP/1.1\r\nHost: x\r\n\r\n")
    backend.wait_requests(1)
    gw.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping gracefully" in gw.log(), 5, "the graceful stop")
    started = time.monotonic()
    gw.proc.send_signal(signal.SIGQUIT)
    assert gw.proc.wait(10) == 0, gw.log_tail()
    assert time.monotonic() - started < 5
    slow.assert_closed(timeout=2)
    slow.close()


def test_a_request_sent_just_after_sigterm_on_a_new_connection_is_answered(start, backends):
    backend = backends[0]
    gw = start(config_for(backend))
    c = Client(gw.port)
    wait_until(lambda: owners([c], gw.worker_pids())[0] is not None, 5,
               "the worker to accept the connection")
    gw.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "shutting down" in gw.log(), 5, "the worker to start draining")
    c.send(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = c.read_response()
    assert resp.status == 200, resp
    assert "close" in resp.connection_tokens()
    c.assert_closed(timeout=5)
    c.close()
    assert gw.proc.wait(10) == 0


def test_a_worker_that_keeps_dying_is_restarted_with_backoff(start, backends):
    backend = backends[0]
    gw = start(config_for(backend))
    killed: list[int] = []
    for _ in range(4):  # each replacement dies at once: quick deaths in a row
        pid = wait_until(lambda: [p for p in gw.worker_pids() if p not in killed], 15,
                         "a replacement worker", details=gw.log_tail)[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    wait_until(lambda: "(failed 4 times in a row)" in gw.log(), 10, "the 4th restart")
    log = gw.log()
    assert "killed by signal 9 (SIGKILL); restarting it\n" in log  # the first: at once
    assert "restarting it in 0.1s (failed 2 times in a row)" in log
    assert "restarting it in 0.2s (failed 3 times in a row)" in log
    assert "restarting it in 0.4s (failed 4 times in a row)" in log
    wait_until(lambda: [p for p in gw.worker_pids() if p not in killed], 15,
               "the worker to be back", details=gw.log_tail)
    with Client(gw.port, timeout=5) as c:
        assert c.request("GET", "/back").status == 200


def fresh_requests(port: int, n: int = 30) -> None:
    """``n`` new connections, one request each: none may hang (a socket nobody accepts on)."""
    for i in range(n):
        with Client(port, timeout=5) as c:
            assert c.request("GET", f"/fresh/{i}").status == 200


def test_scaling_down_and_straight_back_up_serves_every_connection(start, backends):
    backend = backends[0]
    config = config_for(backend, workers=2)
    gw = start(config)
    master_fds = len(os.listdir(f"/proc/{gw.proc.pid}/fd"))
    slow = [Client(gw.port, timeout=20) for _ in range(6)]
    for c in slow:
        c.send(b"GET /slow/3 HTTP/1.1\r\nHost: x\r\n\r\n")
    backend.wait_requests(6)
    for cycle in range(3):
        config["workers"] = 1
        assert gw.reload(config).returncode == 0
        fresh_requests(gw.port)
        config["workers"] = 2
        result = gw.reload(config)
        assert result.returncode == 0, result.stderr
        # the reload reports once the new worker serves, not before
        workers = gw.status()["workers"]
        assert [w["generation"] for w in workers] == [2 * cycle + 3] * 2, workers
        fresh_requests(gw.port)
    for c in slow:  # the retired workers finished what they had
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"slow"
        c.close()
    wait_until(lambda: len(gw.worker_pids()) == 2, 10, "the retired workers to exit")
    # sockets are given back, not bound anew: nothing piles up in the master
    # (at most: the count taken at start can include a descriptor the master held only then)
    wait_until(lambda: len(os.listdir(f"/proc/{gw.proc.pid}/fd")) <= master_fds, 5,
               f"the master to hold at most {master_fds} descriptors again",
               details=lambda: str(os.listdir(f"/proc/{gw.proc.pid}/fd")))
    assert "exited with status 0; restarting it" not in gw.log(), gw.log_tail()


def test_each_fastgw_reload_reports_its_own_reload(start, backends):
    backend = backends[0]
    config = config_for(backend, workers=2)
    gw = start(config)
    stuck = gw.worker_pids()[0]
    os.kill(stuck, signal.SIGSTOP)  # the first reload waits for this worker
    try:
        config["timeouts"]["client_idle"] = "70s"
        gw.write_config(config)
        results = {}
        first = threading.Thread(target=lambda: results.update(a=gw.reload()))
        first.start()
        wait_until(lambda: "-> generation 2" in gw.log(), 10, "the first reload to start")
        gw.write_config("listen: [\n")  # the second caller's file is broken
        second = threading.Thread(target=lambda: results.update(b=gw.reload()))
        second.start()
        wait_until(lambda: "SIGHUP during a reload" in gw.log(), 10,
                   "the second SIGHUP to arrive during the first reload")
    finally:
        os.kill(stuck, signal.SIGCONT)
    first.join(30)
    second.join(30)
    assert results["a"].returncode == 0, results["a"].stderr
    assert results["a"].stdout.startswith("reloaded to generation 2")
    assert results["b"].returncode == 1 and "still serving generation 2" in results["b"].stderr


def test_a_listener_respelled_on_the_same_port(start, backends):
    backend = backends[0]
    config = config_for(backend)
    gw = start(config)
    config["listen"] = f"0.0.0.0:{gw.port}"
    result = gw.reload(config)
    assert result.returncode == 0, result.stderr
    assert f"listen added: 0.0.0.0:{gw.port}" in result.stdout
    fresh_requests(gw.port, 10)


def test_sighups_that_queue_up_during_a_reload_cost_one_more_reload(start, backends):
    """Each could otherwise cost a reload of its own, one after the other, and a reload may
    wait up to half a second for a file being written (issue 10, item 3): all of them came
    before the next reload begins, so that one reload answers them all."""
    backend = backends[0]
    config = config_for(backend, workers=2)
    gw = start(config)
    stuck = gw.worker_pids()[0]
    os.kill(stuck, signal.SIGSTOP)  # generation 2 can't be confirmed until SIGCONT
    try:
        config["timeouts"]["client_idle"] = "70s"
        gw.write_config(config)
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "-> generation 2" in gw.log(), 10, "reload 2 to start")
        for queued in range(1, 6):
            gw.proc.send_signal(signal.SIGHUP)
            wait_until(lambda n=queued: gw.log().count("SIGHUP during a reload") == n, 10,
                       f"SIGHUP {queued} to be queued", details=gw.log_tail)
    finally:
        os.kill(stuck, signal.SIGCONT)
    wait_until(lambda: gw.status()["attempts"] == 2, 10, "the reload after reload 2",
               details=gw.log_tail)
    assert gw.reload().returncode == 0  # and nothing else was left queued before this one
    assert gw.status()["attempts"] == 3
    assert [line.split("reloaded to ")[1].split()[1] for line in generation_log(gw)] == \
        ["2", "3", "4"]
