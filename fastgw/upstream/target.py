"""Targets (one upstream server address each) and upstream groups that pick among them."""

from __future__ import annotations

from ..balance import SmoothWeightedRoundRobin
from .pool import Pool


class Target:
    """One server of an upstream, with its connection pool. Identity: the address string."""

    __slots__ = ("address", "address_bytes", "host", "port", "weight", "pool")

    def __init__(self, address: str, host: str, port: int, weight: int, pool: Pool) -> None:
        self.address = address
        self.address_bytes = address.encode()  # the Host sent when the client gave none
        self.host = host
        self.port = port
        self.weight = weight
        self.pool = pool


class UpstreamGroup:
    """A named upstream: its targets and the balancer that picks one per attempt."""

    __slots__ = ("name", "targets", "balancer", "only")

    def __init__(self, name: str, targets: list[Target]) -> None:
        self.name = name
        self.targets = targets
        self.balancer = SmoothWeightedRoundRobin([t.weight for t in targets])
        live = [t for t in targets if t.weight > 0]
        self.only = live[0] if len(live) == 1 else None  # nothing to choose between

    def pick(self) -> Target | None:
        if self.only is not None:
            return self.only
        index = self.balancer.pick()
        return self.targets[index] if index >= 0 else None
