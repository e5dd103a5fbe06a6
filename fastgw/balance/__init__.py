"""Target selection algorithms. Pure: no sockets, no clock; deterministic given their inputs."""

from .round_robin import SmoothWeightedRoundRobin

__all__ = ["SmoothWeightedRoundRobin"]
