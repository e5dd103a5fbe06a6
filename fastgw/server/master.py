"""The master process: binds the listeners, runs the workers, replaces the ones that die,
reloads on SIGHUP and shuts everything down on SIGTERM/SIGINT (graceful) or SIGQUIT (now).

It never serves a request and runs no event loop: a select() over a signal wake-up pipe and
one control socket per worker. Workers are forked, so they start with the master's current
config and plan already compiled, and inherit their own listening sockets (listeners.py).

Reload: read the file, validate it completely (schema, checks, plan, new listeners bound),
and only then send it to every worker, which swaps its plan between two callbacks. A file
that fails any step changes nothing; the error is logged and written to the status file.
"""

from __future__ import annotations

import gc
import logging
import os
import selectors
import signal
import socket
import time
from collections import deque
from pathlib import Path

from .. import __version__, _core
from ..config import ConfigError, load_config_bytes, read_config_file
from ..logs import set_level, setup_logging
from ..plan import compile_plan
from ..plan_diff import checksum, describe_changes
from ..proxy import implementation as data_path
from . import control, listeners, status
from .accept import raise_descriptor_limit
from .listeners import show

log = logging.getLogger("fastgw")

SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD)
APPLY_TIMEOUT = 30.0  # how long a reload waits for every worker to confirm
QUICK_DEATH = 5.0  # a worker that dies sooner than this after starting counts as failing
MAX_BACKOFF = 10.0
RELOADS_KEPT = 20  # reload outcomes kept in the status file


class Slot:
    """One worker id (1..N) and the process currently filling it."""

    def __init__(self, wid: int) -> None:
        self.id = wid
        self.pid = 0
        self.sock: socket.socket | None = None
        self.inbox: control.Inbox | None = None
        self.generation = 0  # the generation this worker confirmed
        self.started = 0.0
        self.failures = 0  # quick deaths in a row
        self.restart_at = 0.0  # when a dead worker is due to be replaced (0: not waiting)
        self.awaiting = 0  # generation it was asked to apply and has not confirmed


class Master:
    def __init__(self, config, filename: str, data: bytes, pidfile: str | None) -> None:
        self.config = config
        self.plan = compile_plan(config)
        self.filename = filename
        self.data = data
        self.pidfile = pidfile
        self.generation = 1
        self.attempts = 0
        self.last_reload: dict | None = None
        self.listeners = listeners.Listeners()
        self.slots: dict[int, Slot] = {}  # worker id -> its current process
        self.retired: dict[int, Slot] = {}  # pid -> a process draining to stop (replaced)
        self.reloads: list[dict] = []  # the latest outcomes, for ``fastgw reload``
        self.signals: deque[int] = deque()
        self.deferred: list[int] = []  # signals that came during a reload, handled after it
        self.reloading = False
        self.stopping = 0  # the signal that started the shutdown

    # --- main loop -------------------------------------------------------------------------

    def run(self) -> int:
        setup_logging(self.config.log_level, "master")
        log.info("fastgw %s starting with %s (parser: %s, %s; data path: %s; %d workers)",
                 __version__, self.filename, _core.IMPLEMENTATION, _core.WHY, data_path(),
                 self.config.worker_count())
        before, after = raise_descriptor_limit()
        if after != before:
            log.info("open file limit raised from %d to %d", before, after)
        else:
            log.info("open file limit %d", after)
        try:
            self.listeners.adopt(self.listeners.bind(
                self.config.listen_addresses(), list(range(1, self.config.worker_count() + 1))))
        except OSError as exc:
            log.error("%s", exc.strerror)
            return 1
        self.selector = selectors.DefaultSelector()
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ)
        signal.set_wakeup_fd(self.wakeup_w)
        for sig in SIGNALS:
            signal.signal(sig, lambda signum, _frame: self.signals.append(signum))
        if self.pidfile:  # only now: a SIGHUP sent as soon as it appears must not kill us
            status.write_pidfile(self.pidfile)
            self._write_status()
        try:
            for wid in range(1, self.config.worker_count() + 1):
                self._spawn(Slot(wid))
            self._wait(lambda: self.stopping or all(s.generation for s in self.slots.values()),
                       30.0)
            for address in self.listeners.addresses():
                log.info("listening on %s", show(address))
            self._write_status()
            while not self.stopping:
                self._step(self._next_timeout())
            return self._shutdown()
        finally:
            if self.pidfile:
                status.remove(self.pidfile)

    def _step(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a signal or a worker message, and handle what came."""
        for key, _ in self.selector.select(timeout):
            if key.fd == self.wakeup_r:
                try:
                    while os.read(self.wakeup_r, 512):
                        pass
                except BlockingIOError:
                    pass
            else:
                self._on_message(key.data)
        while self.signals:
            self._on_signal(self.signals.popleft())
        self._restart_due()

    def _wait(self, done, seconds: float) -> bool:
        """Handle events until ``done()`` or ``seconds`` pass (signals keep being handled)."""
        deadline = time.monotonic() + seconds
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._step(min(left, 0.5))
        return True

    def _next_timeout(self) -> float:
        due = [s.restart_at for s in self.slots.values() if s.restart_at]
        return max(0.0, min(due) - time.monotonic()) if due else 1.0

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            self._reap()
        elif self.reloading:  # one thing at a time: after this reload, in arrival order
            log.info("%s during a reload: handled after it", signal.Signals(signum).name)
            self.deferred.append(signum)
        elif self.stopping:
            if signum == signal.SIGQUIT and self.stopping != signal.SIGQUIT:
                self.stopping = signum  # a graceful stop taking too long: end it now
                for slot in self._processes():
                    self._kill(slot, signal.SIGQUIT)
        elif signum == signal.SIGHUP:
            # SIGHUPs already queued behind this one are answered by this reload (it begins
            # after they came): a burst of them costs one reload, not one each, which matters
            # when each may wait for a file still being written (read_stable)
            while signal.SIGHUP in self.signals:
                self.signals.remove(signal.SIGHUP)
            self.reloading = True
            try:
                self.reload()
            finally:
                self.reloading = False
                self.signals.extend(self.deferred)
                self.deferred.clear()
        else:
            self.stopping = signum

    # --- workers ---------------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        ours, theirs = socket.socketpair()
        # Signals stay blocked from before the fork until the worker has its own handlers:
        # a SIGTERM in between must reach the worker's handler, not our copied one.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        gc.freeze()  # the inherited objects: no collection in the worker will touch them
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: try again later
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            ours.close()
            theirs.close()
            log.error("cannot start worker %d: %s; trying again in 1s", slot.id,
                      exc.strerror or exc)
            slot.restart_at = time.monotonic() + 1.0
            self.slots[slot.id] = slot
            return
        if pid == 0:
            code = 1
            try:
                ours.close()
                self._become_worker(slot.id)
                code = self._run_worker(slot.id, theirs)
            finally:
                os._exit(code)
        gc.unfreeze()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        theirs.close()
        ours.settimeout(5.0)  # a worker too stuck to read its messages must not stall us
        slot.pid, slot.sock, slot.inbox = pid, ours, control.Inbox(ours)
        slot.generation, slot.awaiting, slot.restart_at = 0, 0, 0.0
        slot.started = time.monotonic()
        self.slots[slot.id] = slot
        self.selector.register(ours, selectors.EVENT_READ, slot)

    def _become_worker(self, wid: int) -> None:
        """In the forked child: drop what belongs to the master."""
        signal.set_wakeup_fd(-1)
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        self.selector.close()
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)
        for other in self._processes():
            if other.sock is not None:
                other.sock.close()
        # Other workers' listening sockets (and those a reload is removing): a copy held here
        # would keep them open, queueing connections after their worker closed them.
        wanted = set(self.config.listen_addresses())
        mine = self.listeners.accepted_by(wid)
        for address, per_worker in self.listeners.sets.items():
            for origin, socks in per_worker.items():
                if origin not in mine or address not in wanted:
                    for sock in socks:
                        sock.close()
        setup_logging(self.config.log_level, f"worker {wid}")

    def _run_worker(self, wid: int, sock: socket.socket) -> int:
        import uvloop

        from .worker import Worker

        try:
            wanted = set(self.config.listen_addresses())
            socks = {origin: self.listeners.of(origin, wanted)
                     for origin in self.listeners.accepted_by(wid)}
            worker = Worker(self.config, self.plan, socks, sock, self.generation, wid)
            return uvloop.run(worker.run())
        except BaseException:
            log.exception("worker %d failed", wid)
            return 1

    def _on_message(self, slot: Slot) -> None:
        for message in slot.inbox.read():
            if message["op"] == "ready":
                slot.generation = message["generation"]
                log.info("worker %d (pid %d) serving generation %d", slot.id, slot.pid,
                         slot.generation)
                self._write_status()
            elif message["op"] == "applied" and message["generation"] >= slot.awaiting:
                slot.awaiting = 0
                if message["ok"]:
                    slot.generation = message["generation"]
                elif slot.id in self.slots and self.slots[slot.id] is slot:
                    # it keeps the old plan: replace it by one forked with the new one
                    log.error("worker %d could not apply generation %d (%s); replacing it",
                              slot.id, message["generation"], message["error"])
                    self._replace(slot, signal.SIGTERM)
        if slot.inbox.closed:
            self._forget_socket(slot)

    def _forget_socket(self, slot: Slot) -> None:
        if slot.sock is not None:
            self.selector.unregister(slot.sock)
            slot.sock.close()
            slot.sock = None
        slot.awaiting = 0

    def _retire(self, slot: Slot, sig: int) -> None:
        """Stop this process for good (SIGTERM: it drains); its worker id is free again."""
        if self.slots.get(slot.id) is slot:
            del self.slots[slot.id]
        slot.awaiting = 0
        if slot.pid:
            self.retired[slot.pid] = slot
            self._kill(slot, sig)

    def _replace(self, slot: Slot, sig: int) -> None:
        """A new process for this worker id now, with the current plan; the old one stops."""
        self._retire(slot, sig)
        fresh = Slot(slot.id)
        fresh.failures = slot.failures
        self._spawn(fresh)

    def _processes(self) -> list[Slot]:
        """Every worker process alive: current ones and retired ones still draining."""
        return [s for s in self.slots.values() if s.pid] + list(self.retired.values())

    def _kill(self, slot: Slot, sig: int) -> None:
        try:
            os.kill(slot.pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        reaped = False
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                if reaped and not self.stopping:
                    self._write_status()  # the dead pid must not stay listed as serving
                return
            reaped = True
            code = os.waitstatus_to_exitcode(wait_status)
            how = (f"killed by signal {-code} ({signal.Signals(-code).name})" if code < 0
                   else f"exited with status {code}")
            slot = self.retired.pop(pid, None)
            if slot is not None:
                self._forget_socket(slot)
                log.info("worker %d (pid %d, retired) %s", slot.id, pid, how)
                continue
            slot = next((s for s in self.slots.values() if s.pid == pid), None)
            if slot is None:
                continue
            self._forget_socket(slot)
            slot.pid = 0
            if self.stopping:
                log.info("worker %d (pid %d) %s", slot.id, pid, how)
                del self.slots[slot.id]
                continue
            lived = time.monotonic() - slot.started
            slot.failures = slot.failures + 1 if lived < QUICK_DEATH else 1
            delay = 0.0 if slot.failures <= 1 else min(0.1 * 2 ** (slot.failures - 2),
                                                        MAX_BACKOFF)
            log.error("worker %d (pid %d) %s; restarting it%s", slot.id, pid, how,
                      f" in {delay:.1f}s (failed {slot.failures} times in a row)" if delay
                      else "")
            slot.restart_at = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in list(self.slots.values()):
            if slot.restart_at and slot.restart_at <= now and not self.stopping:
                self._spawn(slot)

    def _live(self) -> list[Slot]:
        """Workers that serve and take new plans (not retired ones draining to stop)."""
        return [s for s in self.slots.values() if s.sock is not None]

    # --- reload ----------------------------------------------------------------------------

    def reload(self) -> bool:
        """Validate the file completely, then apply it to every worker. False if invalid."""
        attempt = self.attempts + 1  # published with its outcome, never before it
        started = time.monotonic()
        began = time.time()  # `fastgw reload` takes the first reload begun after its signal
        try:
            data = read_config_file(self.filename)
            config = load_config_bytes(data, self.filename)
            plan = compile_plan(config)
            opened = self.listeners.bind(config.listen_addresses(),
                                         list(range(1, config.worker_count() + 1)))
        except (ConfigError, OSError) as exc:
            return self._reload_failed(attempt, began, str(exc)
                                       if isinstance(exc, ConfigError) else exc.strerror)
        except Exception as exc:  # a bug in compiling: still nothing changes
            log.exception("reload: cannot compile %s", self.filename)
            return self._reload_failed(attempt, began,
                                       f"{self.filename}: cannot compile the plan: {exc}")

        changes = describe_changes(self.config, config)
        old_count = len(self.slots)  # not worker_count(): `auto` may count other CPUs now
        self.generation += 1
        generation = self.generation
        log.info("reload: %s %s -> generation %d", self.filename, checksum(data), generation)
        for line in changes:
            log.info("generation %d: %s", generation, line)
        self.config, self.plan, self.data = config, plan, data
        fresh = {slot.id: opened.of(slot.id) for slot in self._live()}
        added = [a for a in opened.addresses() if a not in self.listeners.addresses()]
        self.listeners.adopt(opened)  # a worker forked from here on starts with them
        set_level(config.log_level)

        for slot in self._live():
            self._send(slot, {"op": "apply", "generation": generation, "config": config},
                       fresh.get(slot.id, {}))
        confirmed = self._confirmed(generation)
        wanted = set(config.listen_addresses())
        for address in [a for a in self.listeners.addresses() if a not in wanted]:
            self.listeners.close_address(address)
            log.info("stopped listening on %s", show(address))
        for address in added:
            log.info("listening on %s", show(address))
        self._resize(old_count, config.worker_count())

        elapsed = (time.monotonic() - started) * 1000
        log.info("reloaded to generation %d in %.0f ms (%d workers%s)", generation, elapsed,
                 len(self._live()), "" if confirmed else ", some replaced")
        self._outcome({"attempt": attempt, "began": began, "ok": True, "generation": generation,
                       "checksum": checksum(data), "changes": changes, "error": None,
                       "workers": len(self._live())})
        return True

    def _reload_failed(self, attempt: int, began: float, error: str) -> bool:
        log.error("reload failed, still serving generation %d: %s", self.generation, error)
        self._outcome({"attempt": attempt, "began": began, "ok": False,
                       "generation": self.generation, "checksum": None, "changes": [],
                       "error": error})
        return False

    def _outcome(self, reload: dict) -> None:
        self.attempts = reload["attempt"]
        self.last_reload = reload
        self.reloads = [*self.reloads[-(RELOADS_KEPT - 1):], reload]
        self._write_status()

    def _send(self, slot: Slot, message: dict, socks: dict) -> None:
        """Send ``message`` with the sockets ``socks`` ({address: [socket]}) it brings."""
        message["new"] = [(address, len(group)) for address, group in socks.items()]
        fds = [sock.fileno() for group in socks.values() for sock in group]
        try:
            control.send(slot.sock, message, fds)
            slot.awaiting = self.generation
        except OSError as exc:  # dead or stuck: its replacement forks with the current plan
            log.error("worker %d: cannot send %s (%s); replacing it", slot.id, message["op"], exc)
            self._replace(slot, signal.SIGKILL)

    def _confirmed(self, generation: int) -> bool:
        """Wait until every live worker confirmed; replace those that don't in time."""
        confirmed = self._wait(lambda: not any(s.awaiting for s in self._live()),
                               APPLY_TIMEOUT)
        for slot in self._live():
            if slot.awaiting:
                log.error("worker %d did not confirm generation %d within %.0fs; replacing it",
                          slot.id, generation, APPLY_TIMEOUT)
                self._replace(slot, signal.SIGKILL)
        return confirmed

    def _resize(self, old: int, new: int) -> None:
        """Start workers up to ``new`` (taking back their sockets from the worker that
        accepted on them meanwhile) and wait until they serve; retire those above ``new``
        once another worker accepts on their sockets (so nothing queued on them is lost)."""
        hosts = self.listeners.hosts
        started = []
        for wid in range(old + 1, new + 1):
            heir = self.slots.get(hosts.pop(wid, wid))
            if heir is not None and heir.id != wid and heir.sock is not None:
                self._send(heir, {"op": "unlisten", "origin": wid}, {})
                self._confirmed(self.generation)
            slot = Slot(wid)
            self._spawn(slot)
            started.append(slot)
        self._wait(lambda: all(s.generation or not s.pid for s in started), APPLY_TIMEOUT)
        wanted = set(self.config.listen_addresses())
        for wid in range(new + 1, old + 1):
            heir_id = (wid - 1) % new + 1
            heir = self.slots.get(heir_id)
            for origin in self.listeners.accepted_by(wid):
                hosts[origin] = heir_id
                socks = self.listeners.of(origin, wanted)
                if heir is not None and heir.sock is not None and socks:
                    self._send(heir, {"op": "listen", "origin": origin}, socks)
                    self._confirmed(self.generation)
            slot = self.slots.pop(wid, None)
            if slot is not None:
                self._retire(slot, signal.SIGTERM)

    def _write_status(self) -> None:
        """Publish the state for ``fastgw reload``/``plan``; a failure to is only logged (the
        gateway serves on without its status file)."""
        if not self.pidfile:
            return
        try:
            self._publish()
        except OSError as exc:
            log.warning("cannot write the status file beside %s: %s", self.pidfile,
                        exc.strerror or exc)

    def _publish(self) -> None:
        status.write_status(self.pidfile, {
            "pid": os.getpid(),
            "generation": self.generation,
            "attempts": self.attempts,
            "last_reload": self.last_reload,
            "workers": [{"id": s.id, "pid": s.pid, "generation": s.generation}
                        for s in sorted(self.slots.values(), key=lambda s: s.id) if s.pid],
            "reloads": self.reloads,
            "config": {"path": str(Path(self.filename).resolve()),
                       "checksum": checksum(self.data),
                       "text": self.data.decode("utf-8", "replace")},
        })

    # --- shutdown --------------------------------------------------------------------------

    def _shutdown(self) -> int:
        sig = self.stopping
        graceful = sig != signal.SIGQUIT
        log.info("%s: %s", signal.Signals(sig).name,
                 "stopping gracefully" if graceful else "stopping now")
        self.listeners.close()  # the workers' copies close as they stop accepting
        for slot in self.slots.values():
            slot.restart_at = 0.0
        for slot in self._processes():
            self._kill(slot, signal.SIGTERM if graceful else signal.SIGQUIT)
        grace = self.config.shutdown_timeout + 5.0 if graceful else 5.0
        if not self._wait(lambda: not self._processes(), grace):
            for slot in self._processes():
                log.error("worker %d (pid %d) still running after %.0fs; killing it",
                          slot.id, slot.pid, grace)
                self._kill(slot, signal.SIGKILL)
            self._wait(lambda: not self._processes(), 5.0)
        log.info("stopped")
        return 0


def serve(config, filename: str, data: bytes, pidfile: str | None = None) -> int:
    """``fastgw run``: the master and its workers until SIGTERM/SIGINT/SIGQUIT."""
    return Master(config, filename, data, pidfile).run()
