"""What a balancer knows about a target, and the interface every balancer has.

Balancers are pure and deterministic: no sockets, no clock, no randomness. The same peers in
the same order give the same picks on every worker and every gateway instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Peer:
    """A target as the balancer sees it. ``address`` is the identity: the string as written in
    the config (consistent hashing names its points after it, never after list positions)."""

    address: str
    weight: int = 1
    backup: bool = False  # gets traffic only when no primary peer is available
    down: bool = False  # out of rotation (drained), like weight 0

    @property
    def in_rotation(self) -> bool:
        return self.weight > 0 and not self.down


class Balancer(Protocol):
    """After nginx's upstream peer interface: one pick per attempt, one report per outcome."""

    def pick(self, key: bytes | None = None) -> int:
        """Index (into the peers list given at construction) of the peer for this attempt, or
        -1 when none is available. ``key`` is the request's hash key, if the algorithm uses
        one (None when the request lacks it)."""
        ...

    def report(self, index: int, ok: bool) -> None:
        """Outcome of an attempt on peer ``index`` (every pick is followed by one report)."""
        ...
