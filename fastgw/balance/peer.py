"""What a balancer knows about a target, the interface every balancer has, and outcomes.

Balancers are pure and deterministic: no sockets, no clock, no randomness. The same peers in
the same order give the same picks on every worker and every gateway instance.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(eq=False)
class Peer:
    """A target as the balancer sees it. ``address`` is the identity: the string as written in
    the config (consistent hashing names its points after it, never after list positions).
    The data path passes its runtime targets, which have the same attributes, so a pick
    returns the target itself. ``active`` (requests in flight) lives on the peer, not in a
    balancer, so it survives a reload that rebuilds the balancer (the runtime target is kept
    by address)."""

    address: str
    weight: int = 1
    backup: bool = False  # gets traffic only when no primary peer is available
    down: bool = False  # out of rotation (drained), like weight 0
    active: int = field(default=0, compare=False)  # attempts picked and not yet reported

    @property
    def in_rotation(self) -> bool:
        return self.weight > 0 and not self.down


class Balancer(Protocol):
    """After nginx's upstream peer interface: one pick per attempt, one report per attempt."""

    def pick(self, key: bytes | None = None, exclude: Collection | None = None):
        """The peer for this attempt (one of the peers given at construction), or None when
        none is available. ``key`` is the request's hash key, if the algorithm uses one (None
        when the request lacks it); ``exclude`` holds peers already tried by this request:
        they are skipped while another peer is available."""
        ...

    def report(self, peer, outcome: int, latency: float) -> None:
        """How the attempt on ``peer`` ended (fastgw.proxy.outcome: a response status, or a
        negative failure kind) and how long it took, in seconds. Every pick is followed by
        exactly one report."""
        ...

    def carry_over(self, previous) -> None:
        """Take over the position of ``previous`` (the balancer this one replaces on a reload),
        peer by peer, matched by address."""
        ...
