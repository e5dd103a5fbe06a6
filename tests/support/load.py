"""Continuous client load for the integration tests: threads that send requests through the
gateway until told to stop, and record the outcome of every single one.

Three kinds of client, each a thread with its own connections:

- keep-alive: many requests per connection (a fresh one after ``per_conn`` requests, after a
  response that says ``Connection: close``, or after an error);
- new-connection: one request per connection (the client closes it after the response);
- slow: like keep-alive, but every request is ``/slow/S`` (the backend answers after S seconds).

Every response must be a 200 with the body the test backend gives for the target
(``"GET TARGET"``, or ``"slow"``); anything else (another status or body, a connection refused,
closed or reset, a timeout) is recorded as that request's error. Nothing here decides what a
test allows: tests read ``outcomes`` and ``connections`` and assert on them. Also here: which
process holds the gateway's side of a client connection (read from /proc), to tell the
workers apart.

The threads never sleep to let something happen; after a connection error they wait a moment
(``RETRY``) before connecting again, so a gateway that is down is not hammered in a busy loop.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from . import wait_until
from .client import Client

RETRY = 0.02  # seconds before a client connects again after a connection error


class LoadClient(Client):
    """A Client that counts the bytes it received (did any of a response arrive?)."""

    received = 0

    def _fill(self, deadline: float, what: str) -> None:
        before = len(self.buf)
        try:
            super()._fill(deadline, what)
        finally:
            self.received += len(self.buf) - before


@dataclass
class Conn:
    """One client connection, as the client saw it."""

    id: int
    client: str
    connecting: float  # monotonic, before connect(): the handshake happened after this
    opened: float  # monotonic, once connected (late by however long the thread waited to run)
    local_port: int
    closed: float = 0.0  # monotonic, when the client closed it (0: still open)
    requests: int = 0
    failed: bool = False


@dataclass
class Outcome:
    """One request, as the client saw it. ``error`` is None for a 200 with the right body."""

    client: str
    conn: int  # Conn.id; 0 when the connection could not even be opened
    target: str
    started: float  # monotonic, before the request's first byte was sent
    sent: float = 0.0  # monotonic, once the whole request was handed to the kernel (0: never)
    finished: float = 0.0
    status: int | None = None
    error: str | None = None
    responded: bool = False  # some bytes of a response arrived
    closing: bool = False  # the response said Connection: close

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Load:
    """Client threads against ``port``; add clients, ``start()``, ..., ``stop()``."""

    port: int
    timeout: float = 10.0  # for one response
    outcomes: list[Outcome] = field(default_factory=list)
    connections: dict[int, Conn] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_conn = 0

    # --- clients ---------------------------------------------------------------------------

    def keepalive(self, count: int, per_conn: int = 0,
                  clients: list[LoadClient] | None = None) -> None:
        """``count`` keep-alive clients (``per_conn`` requests per connection; 0: no limit).
        ``clients``: connections opened beforehand, used first (one per client)."""
        for i in range(count):
            given = clients[i] if clients else None
            self._add(f"keepalive-{i}", self._keepalive, "/ka", per_conn, given)

    def new_connections(self, count: int) -> None:
        for i in range(count):
            self._add(f"new-conn-{i}", self._new_connections)

    def slow(self, count: int, seconds: str, per_conn: int = 0,
             clients: list[LoadClient] | None = None) -> None:
        """``count`` keep-alive clients whose every request is ``/slow/SECONDS``."""
        for i in range(count):
            given = clients[i] if clients else None
            self._add(f"slow-{seconds}-{i}", self._keepalive, f"/slow/{seconds}", per_conn,
                      given)

    def _add(self, name: str, target, *args) -> None:
        thread = threading.Thread(target=target, args=(name, *args), name=name, daemon=True)
        self._threads.append(thread)

    # --- running ---------------------------------------------------------------------------

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Let every client finish the request it is in, then end the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        stuck = [t.name for t in self._threads if t.is_alive()]
        assert not stuck, f"load clients still running {timeout:g}s after stop: {stuck}"

    def wait_for(self, requests: int, timeout: float) -> None:
        """Wait until ``requests`` more requests have finished (whatever their outcome)."""
        goal = self.count() + requests
        wait_until(lambda: self.count() >= goal, timeout,
                   f"{requests} more requests from the load clients", details=self.summary)

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def failures(self) -> list[Outcome]:
        return [o for o in self.snapshot() if not o.ok]

    def summary(self, failures: int = 10) -> str:
        outcomes = self.snapshot()
        bad = [o for o in outcomes if not o.ok]
        kinds: dict[str, list[int]] = {}
        for o in outcomes:
            kind = o.client.rsplit("-", 1)[0]
            counts = kinds.setdefault(kind, [0, 0])
            counts[0] += 1
            counts[1] += not o.ok
        lines = [f"load: {len(outcomes)} requests, {len(bad)} failed, "
                 f"{len(self.connections)} connections; "
                 + ", ".join(f"{k}: {n} ({f} failed)" for k, (n, f) in sorted(kinds.items()))]
        lines += [f"  {o.client} conn {o.conn} {o.target}: {o.error}" for o in bad[:failures]]
        return "\n".join(lines)

    # --- one client ------------------------------------------------------------------------

    def _keepalive(self, name: str, prefix: str, per_conn: int,
                   given: LoadClient | None) -> None:
        client, conn = (given, self._register(given, name)) if given else (None, None)
        i = 0
        while not self._stop.is_set():
            if client is None:
                client, conn = self._connect(name, f"{prefix}/{name}/{i}")
                if client is None:
                    self._stop.wait(RETRY)
                    continue
            target = f"{prefix}/{name}/{i}" if not prefix.startswith("/slow/") else \
                f"{prefix}?{name}-{i}"
            i += 1
            outcome = self._exchange(client, conn, name, target)
            if (not outcome.ok or outcome.closing
                    or (per_conn and conn.requests >= per_conn)):
                self._close(client, conn)
                client = conn = None
                if not outcome.ok:
                    self._stop.wait(RETRY)
        if client is not None:
            self._close(client, conn)

    def _new_connections(self, name: str) -> None:
        i = 0
        while not self._stop.is_set():
            target = f"/nc/{name}/{i}"
            i += 1
            client, conn = self._connect(name, target)
            if client is None:
                self._stop.wait(RETRY)
                continue
            outcome = self._exchange(client, conn, name, target)
            self._close(client, conn)
            if not outcome.ok:
                self._stop.wait(RETRY)

    def _connect(self, name: str, target: str) -> tuple[LoadClient | None, Conn | None]:
        started = time.monotonic()
        try:
            client = LoadClient(self.port, timeout=self.timeout)
        except OSError as exc:
            self._record(Outcome(name, 0, target, started, finished=time.monotonic(),
                                 error=f"connect: {exc!r}"))
            return None, None
        return client, self._register(client, name, started)

    def _register(self, client: LoadClient, name: str, connecting: float = 0.0) -> Conn:
        now = time.monotonic()
        with self._lock:
            self._next_conn += 1
            conn = Conn(self._next_conn, name, connecting or now, now,
                        client.sock.getsockname()[1])
            self.connections[conn.id] = conn
        return conn

    def _close(self, client: LoadClient, conn: Conn) -> None:
        client.close()
        conn.closed = time.monotonic()

    def _exchange(self, client: LoadClient, conn: Conn, name: str, target: str) -> Outcome:
        outcome = Outcome(name, conn.id, target, time.monotonic())
        expected = b"slow" if target.startswith("/slow/") else f"GET {target}".encode()
        conn.requests += 1
        try:
            client.send(f"GET {target} HTTP/1.1\r\nHost: load.test\r\n\r\n".encode())
            outcome.sent = time.monotonic()
            before = client.received
            try:
                resp = client.read_response()
            finally:
                outcome.responded = client.received > before
            outcome.status = resp.status
            outcome.closing = "close" in resp.connection_tokens()
            if resp.status != 200 or resp.body != expected:
                outcome.error = f"got {resp.status} {resp.body[:100]!r}, expected 200 {expected!r}"
            elif outcome.closing:
                # the gateway said it closes: it must, with nothing more sent
                rest = client.read_to_eof(timeout=5)
                if rest:
                    outcome.error = f"bytes after a Connection: close response: {rest[:100]!r}"
        except (OSError, AssertionError) as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.finished = time.monotonic()
        if outcome.error is not None:
            conn.failed = True
        self._record(outcome)
        return outcome

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)


# --- which worker holds a connection --------------------------------------------------------


def _tcp_inodes() -> dict[tuple[tuple[str, int], tuple[str, int]], int]:
    """(local, remote) -> socket inode for every IPv4 TCP socket in this network namespace."""
    found = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            inode = int(fields[9])
            if inode:  # not a TIME_WAIT entry, which on loopback may share a live 4-tuple
                found[(_address(fields[1]), _address(fields[2]))] = inode
    return found


def _address(text: str) -> tuple[str, int]:
    ip, port = text.split(":")
    return socket.inet_ntoa(struct.pack("=I", int(ip, 16))), int(port, 16)


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    except OSError:
        pass
    return inodes


def owners(clients: list[Client], pids: list[int]) -> list[int | None]:
    """For each client connection, the pid (among ``pids``) that holds the gateway's end of
    it, or None (not accepted yet, closed, or held by none of them)."""
    table = _tcp_inodes()
    held = {pid: _socket_inodes(pid) for pid in pids}
    found: list[int | None] = []
    for client in clients:
        try:
            here, there = client.sock.getsockname(), client.sock.getpeername()
        except OSError:
            found.append(None)
            continue
        inode = table.get(((there[0], there[1]), (here[0], here[1])))
        found.append(next((pid for pid, inodes in held.items() if inode in inodes), None))
    return found


def spread(port: int, pids: list[int], per_worker: int, attempts: int = 100
           ) -> dict[int, list[LoadClient]]:
    """Keep-alive connections, ``per_worker`` held by each of ``pids``: connections are opened
    (each answers one request first, so a worker has surely accepted it) until every worker
    has its share; the extra ones are closed. Fails after ``attempts`` connections."""
    held: dict[int, list[LoadClient]] = {pid: [] for pid in pids}
    for i in range(attempts):
        client = LoadClient(port)
        resp = client.request("GET", f"/spread/{i}")
        assert resp.status == 200 and resp.body == f"GET /spread/{i}".encode(), resp
        (pid,) = owners([client], pids)
        if pid is not None and len(held[pid]) < per_worker:
            held[pid].append(client)
        else:
            client.close()
        if all(len(clients) == per_worker for clients in held.values()):
            return held
    for clients in held.values():
        for client in clients:
            client.close()
    raise AssertionError(f"{attempts} connections did not give {per_worker} to each worker: "
                         f"{ {pid: len(c) for pid, c in held.items()} }")


__all__ = ["Conn", "Load", "LoadClient", "Outcome", "owners", "spread"]
