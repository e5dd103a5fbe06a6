"""Shared helpers for the integration tests: deadlines instead of sleeps.

Nothing here touches fastgw itself; the backend, the gateway process and the raw client live in
their own modules next to this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Deadline:
    """A point in time, measured on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.005,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns a truthy value, or fail after ``timeout`` seconds.

    ``what`` names the condition in the failure message; ``details`` adds context (a log tail,
    the backend's records) computed only when the wait fails.
    """
    deadline = Deadline(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if deadline.expired():
            extra = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(min(interval, deadline.left()))
