"""Processes: the master (``master.py``) and its workers (``worker.py``), the listening sockets
they share, the control messages between them and the status file ``fastgw reload`` reads.

``fastgw run`` is ``serve``; ``fastgw demo`` runs the gateway inside its own process with
``serve_in_process`` and ``run_gateway`` (no master: it has its demo upstreams to run too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from .. import __version__, _core
from ..logs import setup_logging
from ..plan import compile_plan
from . import listeners
from .master import serve

log = logging.getLogger("fastgw")


def serve_in_process(config, filename: str,
                     main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run ``main`` (which awaits ``run_gateway``) on a new uvloop loop; its exit status."""
    import uvloop

    setup_logging(config.log_level)
    log.info("fastgw %s starting with %s (parser: %s, %s)", __version__, filename,
             _core.IMPLEMENTATION, _core.WHY)
    return uvloop.run(main())


async def run_gateway(config, listening: Callable[[], None] | None = None) -> int:
    """The whole gateway inside the running loop, until SIGTERM/SIGINT; the exit status."""
    from .worker import Worker

    try:
        socks = listeners.Listeners().bind(config.listen_addresses(), [1]).of(1)
    except OSError as exc:
        log.error("%s", exc.strerror)
        return 1
    for address in socks:
        log.info("listening on %s", listeners.show(address))
    return await Worker(config, compile_plan(config), {1: socks}).run(listening)


__all__ = ["run_gateway", "serve", "serve_in_process"]
