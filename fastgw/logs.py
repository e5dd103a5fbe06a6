"""Logging to stderr: one line per event, with a timestamp and a level."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger("fastgw")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
