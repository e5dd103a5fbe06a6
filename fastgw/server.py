"""One gateway process: listeners on uvloop, the worker tick, and graceful shutdown.

SIGTERM/SIGINT: stop accepting, close idle connections, let requests in flight finish (their
responses carry ``Connection: close``), then exit 0; connections still open after
``SHUTDOWN_TIMEOUT`` are closed and counted in the log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from . import __version__, _core
from .logs import setup_logging
from .plan import compile_plan
from .proxy.client import ClientConnection
from .proxy.state import ProxyState

log = logging.getLogger("fastgw")

TICK = 0.25  # seconds between deadline sweeps: the granularity of every timeout
SHUTDOWN_TIMEOUT = 30.0


def serve(config, filename: str,
          main: Callable[[], Coroutine[Any, Any, int]] | None = None) -> int:
    """Run the gateway on a new uvloop loop until SIGTERM/SIGINT; returns the exit status.

    ``main``, when given, runs instead of ``run_gateway(config)`` and must await it itself:
    ``fastgw demo`` starts its upstreams before the gateway and stops them after.
    """
    setup_logging(config.log_level)
    log.info("fastgw %s starting with %s (parser: %s, %s)", __version__, filename,
             _core.IMPLEMENTATION, _core.WHY)
    return uvloop.run(main() if main is not None else run_gateway(config))


async def run_gateway(config, listening: Callable[[], None] | None = None) -> int:
    """The gateway inside the running loop: listen, serve until SIGTERM/SIGINT, shut down
    gracefully. ``listening`` is called once every listener is open. Returns the exit status."""
    loop = asyncio.get_running_loop()
    gw = ProxyState(loop, config, compile_plan(config))
    servers = []
    for host, port in config.listen_addresses():
        try:
            server = await loop.create_server(lambda: ClientConnection(gw), host, port,
                                              reuse_address=True, backlog=1024)
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
            for s in servers:
                s.close()
            return 1
        servers.append(server)
        log.info("listening on %s:%d", host, port)
    if listening is not None:
        listening()

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ticker = loop.create_task(_tick(gw))
    await stop.wait()

    log.info("shutting down: %d connections open", len(gw.clients))
    gw.closing = True
    for server in servers:
        server.close()
    deadline = loop.time() + SHUTDOWN_TIMEOUT
    while gw.clients and loop.time() < deadline:
        for client in list(gw.clients):
            client.close_if_idle()
        if gw.clients:
            await asyncio.sleep(0.05)
    left = len(gw.clients)
    for client in list(gw.clients):
        client.transport.abort()
    for pool in gw.pools():
        pool.close_all()
    ticker.cancel()
    if left:
        log.warning("shutdown timeout: closed %d connections still in progress", left)
    log.info("stopped")
    return 0


async def _tick(gw: ProxyState) -> None:
    while True:
        await asyncio.sleep(TICK)
        try:
            gw.tick()
        except Exception:  # a bug here must not stop every future timeout: log it loudly
            log.exception("error in the worker tick")
