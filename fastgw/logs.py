"""Logging to stderr: one line per event, with a timestamp, the level and which process said it
(``master`` or ``worker N``)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "info", process: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    tag = f"[{process}] " if process else ""
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s.%(msecs)03d %(levelname)s {tag}%(name)s: %(message)s",
        "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger("fastgw")
    root.handlers[:] = [handler]
    root.propagate = False
    set_level(level)


def set_level(level: str) -> None:
    logging.getLogger("fastgw").setLevel(level.upper())
