"""Target selection algorithms. Pure: no sockets, no clock; deterministic given their inputs."""

from __future__ import annotations

from .least_conn import LeastConn
from .peer import Balancer, Peer
from .round_robin import RoundRobin

KINDS = ("round_robin", "least_conn", "consistent_hash")


def make_balancer(kind: str, peers: list[Peer]) -> Balancer:
    """The balancer for an upstream's ``balance:`` setting, over ``peers`` (config order)."""
    if kind == "round_robin":
        return RoundRobin(peers)
    if kind == "least_conn":
        return LeastConn(peers)
    if kind == "consistent_hash":
        from .consistent_hash import ConsistentHash

        return ConsistentHash(peers, RoundRobin(peers))
    raise ValueError(f"unknown balance {kind!r}: expected one of {', '.join(KINDS)}")


__all__ = [
    "Peer",
    "Balancer",
    "RoundRobin",
    "LeastConn",
    "make_balancer",
    "KINDS",
]
