"""One worker: serves the listeners on its own uvloop, swaps its plan when the master says so,
and shuts down gracefully.

SIGTERM/SIGINT: stop accepting, close idle connections, let requests in flight finish (their
responses carry ``Connection: close``), then exit 0; connections still open after
``shutdown_timeout`` are closed and counted in the log. SIGQUIT: close everything now.
SIGHUP is the master's; a worker ignores it (a terminal hang-up reaches the whole group).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from ..logs import set_level
from ..plan import compile_plan
from ..proxy.client import ClientConnection
from ..proxy.state import ProxyState
from . import control
from .accept import Acceptor
from .listeners import BACKLOG, Address

log = logging.getLogger("fastgw")

TICK = 0.25  # seconds between deadline sweeps: the granularity of every timeout
FRESH_GRACE = 1.0  # on shutdown, how long a new connection may take to send its request


class Worker:
    """The gateway inside one process's running loop.

    ``listeners`` are bound sockets (the master's, inherited) filed by the worker id they were
    bound for: this worker's own (``wid``) and those of retired worker ids it accepts for.
    ``ctl`` is the socket to the master, or None when this process is the whole gateway
    (``fastgw demo``).
    """

    def __init__(self, config, plan, listeners: dict[int, dict[Address, list[socket.socket]]],
                 ctl: socket.socket | None = None, generation: int = 1, wid: int = 1) -> None:
        self.config = config
        self.plan = plan
        self.listeners = listeners
        self.ctl = ctl
        self.generation = generation
        self.wid = wid
        # worker id the sockets were bound for -> address -> servers accepting on them
        self.servers: dict[int, dict[Address, list[Acceptor]]] = {}
        self.stop = asyncio.Event()
        self.immediate = False
        self.gw: ProxyState | None = None

    async def run(self, listening=None) -> int:
        """Serve until told to stop; returns the exit status. ``listening`` is called once
        every listener accepts."""
        loop = asyncio.get_running_loop()
        self.gw = ProxyState(loop, self.config, self.plan)
        for origin, by_address in self.listeners.items():
            self.servers[origin] = {address: [await self._serve(sock) for sock in socks]
                                    for address, socks in by_address.items()}
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGQUIT, self._quit)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
        # the master forks with these blocked; one sent meanwhile is handled from here on
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT,
                                                    signal.SIGQUIT, signal.SIGHUP,
                                                    signal.SIGCHLD})
        if self.ctl is not None:
            self.inbox = control.Inbox(self.ctl)
            loop.add_reader(self.ctl.fileno(), self._on_control)
            control.send(self.ctl, {"op": "ready", "generation": self.generation,
                                    "pid": os.getpid()})
        if listening is not None:
            listening()
        ticker = loop.create_task(_tick(self.gw))
        await self.stop.wait()
        if self.ctl is not None:
            loop.remove_reader(self.ctl.fileno())
        if self.immediate:
            await self._close_now()
        else:
            await self._drain()
        ticker.cancel()
        log.info("stopped")
        return 0

    async def _serve(self, sock: socket.socket) -> Acceptor:
        gw = self.gw
        sock.listen(BACKLOG)
        return Acceptor(gw.loop, sock, lambda peer: ClientConnection(gw, peer), gw.clients)

    def _quit(self) -> None:
        self.immediate = True
        self.stop.set()

    # --- reload ----------------------------------------------------------------------------

    def _on_control(self) -> None:
        for message in self.inbox.read():
            fds = self.inbox.take_fds(sum(n for _, n in message["new"]))
            if message["op"] == "apply":
                self.gw.loop.create_task(self._apply(message, fds))
            elif message["op"] == "listen":  # a retired worker id's sockets, now ours too
                self.gw.loop.create_task(self._listen(message, fds))
            elif message["op"] == "unlisten":  # ... until that worker id is used again
                self._unlisten(message)
        if self.inbox.closed:  # the master is gone: nobody would restart or reload us
            log.error("lost the master process; shutting down")
            self.gw.loop.remove_reader(self.ctl.fileno())
            self.stop.set()

    async def _open(self, message: dict, fds: list[int]) -> dict:
        """Start accepting on the sockets that came with ``message``."""
        expected = sum(n for _, n in message["new"])
        if len(fds) != expected:
            for fd in fds:
                os.close(fd)
            raise RuntimeError(f"expected {expected} listening sockets, got {len(fds)}")
        opened: dict[Address, list[asyncio.AbstractServer]] = {}
        for address, n in message["new"]:
            socks = [socket.socket(fileno=fd) for fd in fds[:n]]
            fds = fds[n:]
            opened[address] = [await self._serve(sock) for sock in socks]
        return opened

    async def _listen(self, message: dict, fds: list[int]) -> None:
        try:
            opened = await self._open(message, fds)
            self.servers.setdefault(message["origin"], {}).update(opened)
        except Exception as exc:  # reported to the master, which replaces this worker
            log.exception("cannot take over listening sockets")
            reply = {"op": "applied", "generation": self.generation, "ok": False,
                     "error": f"{type(exc).__name__}: {exc}"}
        else:
            reply = {"op": "applied", "generation": self.generation, "ok": True}
        control.send(self.ctl, reply)

    def _unlisten(self, message: dict) -> None:
        for servers in self.servers.pop(message["origin"], {}).values():
            for server in servers:
                server.close()  # the master's copy of the socket keeps its queue
        control.send(self.ctl, {"op": "applied", "generation": self.generation, "ok": True})

    async def _apply(self, message: dict, fds: list[int]) -> None:
        generation = message["generation"]
        try:
            config = message["config"]
            plan = compile_plan(config)
            opened = await self._open(message, fds)
            # from here on nothing awaits: the swap happens between two callbacks
            self.gw.apply(config, plan)
            self.config, self.plan, self.generation = config, plan, generation
            set_level(config.log_level)
            self.servers.setdefault(self.wid, {}).update(opened)
            wanted = set(config.listen_addresses())
            for by_address in self.servers.values():
                for address in [a for a in by_address if a not in wanted]:
                    for server in by_address.pop(address):
                        server.close()  # stops accepting; accepted connections go on
        except Exception as exc:  # reported to the master, which replaces this worker
            log.exception("cannot apply generation %d", generation)
            reply = {"op": "applied", "generation": generation, "ok": False,
                     "error": f"{type(exc).__name__}: {exc}"}
        else:
            reply = {"op": "applied", "generation": generation, "ok": True}
        control.send(self.ctl, reply)

    # --- shutdown --------------------------------------------------------------------------

    async def _drain(self) -> None:
        gw = self.gw
        loop = gw.loop
        log.info("shutting down: %d connections open", len(gw.clients))
        gw.closing = True
        self._stop_accepting()
        started = loop.time()
        deadline = started + gw.shutdown_timeout
        while gw.clients and loop.time() < deadline and not self.immediate:
            # a connection accepted just now may have its first request on the way: it gets
            # a second to send it (and is answered with Connection: close)
            fresh_too = loop.time() - started > FRESH_GRACE
            for client in list(gw.clients):
                client.close_if_idle(fresh_too)
            if gw.clients:
                await asyncio.sleep(0.05)
        left = len(gw.clients)
        await self._close_now()
        if left:
            log.warning("shutdown timeout: closed %d connections still in progress", left)

    def _stop_accepting(self) -> None:
        for by_address in self.servers.values():
            for servers in by_address.values():
                for server in servers:
                    server.close()

    async def _close_now(self) -> None:
        gw = self.gw
        self._stop_accepting()
        for client in list(gw.clients):
            client.transport.abort()
        for pool in gw.pools():
            pool.close_all()


async def _tick(gw: ProxyState) -> None:
    while True:
        await asyncio.sleep(TICK)
        try:
            gw.tick()
        except Exception:  # a bug here must not stop every future timeout: log it loudly
            log.exception("error in the worker tick")
