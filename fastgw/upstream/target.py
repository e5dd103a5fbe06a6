"""Targets (one upstream server address each) and upstream groups that pick among them."""

from __future__ import annotations

from ..balance import make_balancer
from ..balance.keys import compile_key
from ..balance.peer import Peer
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

    __slots__ = ("name", "targets", "balancer", "key", "only", "reports")

    def __init__(self, name: str, targets: list[Target], peers: list[Peer],
                 balance: str = "round_robin", hash_on: str | None = None) -> None:
        self.name = name
        self.targets = targets
        self.balancer = make_balancer(balance, peers)
        self.key = compile_key(hash_on) if hash_on else None
        live = [i for i, peer in enumerate(peers) if peer.in_rotation]
        self.only = live[0] if len(live) == 1 else -1  # nothing to choose between
        # least_conn counts requests in flight: every pick must be reported back
        self.reports = balance == "least_conn" and self.only < 0

    def pick(self, head, client_ip: bytes) -> int:
        """Index of the target for this attempt, or -1 when none is available."""
        if self.only >= 0:
            return self.only
        key = self.key
        return self.balancer.pick(key(head, client_ip) if key is not None else None)
