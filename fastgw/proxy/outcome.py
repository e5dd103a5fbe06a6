"""How an upstream attempt ended: the response status, or one of the failure kinds below.

An outcome is a plain int so that the common case costs nothing: a positive value is the
status of the response the target gave (100-599); a negative value is an ``Outcome``. Retries,
passive health and breakers (later issues) decide from this classification alone, and the
balancer gets it with every ``report``.
"""

from __future__ import annotations

from enum import IntEnum


class Outcome(IntEnum):
    CONNECT_ERROR = -1
    """The connection could not be opened: refused, unreachable, reset while connecting."""
    CONNECT_TIMEOUT = -2
    """Opening the connection took longer than ``timeouts.upstream_connect``."""
    RESET = -3
    """The connection closed or was reset before a complete response head arrived."""
    TIMEOUT = -4
    """No response head within ``timeouts.upstream_read`` after the request was sent, or the
    body stalled for that long between two reads."""
    BAD_RESPONSE = -5
    """The response head was malformed, or its body broke its framing or was cut short."""
    ABANDONED = -6
    """The gateway ended the attempt for the client's sake (the client left, its request body
    broke or stalled): it says nothing about the target."""


def describe(outcome: int) -> str:
    """``"200"`` for a status, the failure kind's name in lowercase otherwise (for logs)."""
    return str(outcome) if outcome > 0 else Outcome(outcome).name.lower()


def target_failed(outcome: int) -> bool:
    """Whether the outcome counts against the target (no usable response from it)."""
    return outcome < 0 and outcome != Outcome.ABANDONED
