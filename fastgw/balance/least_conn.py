"""Weighted least connections, after nginx's ngx_http_upstream_least_conn_module.

The peer with the fewest in-flight requests relative to its weight wins (a beats b when
active_a * weight_b < active_b * weight_a, compared in integers). When several peers tie, the
smooth weighted round robin of round_robin.py chooses among the tied ones only, using the same
current weights nginx keeps. ``pick`` counts the request as in flight on the chosen peer
(``peer.active``) and ``report`` ends it; the count lives on the peer, so it stays right
across a reload that rebuilds this balancer. Backup peers are used only when no primary peer
is available. This module must not know about sockets or clocks: the data path tells it when
an attempt starts and ends.
"""

from __future__ import annotations

from collections.abc import Collection

from .peer import Peer
from .round_robin import carry_current, excluding, rotation


class LeastConn:
    """Weighted least in-flight requests over ``peers`` (the Balancer interface)."""

    __slots__ = ("peers", "current", "index", "_out", "_tier", "_single")

    def __init__(self, peers: list[Peer]) -> None:
        self.peers = list(peers)
        self.current = [0] * len(self.peers)  # nginx's current_weight, for ties
        self.index = {p.address: i for i, p in enumerate(self.peers)}
        self._out: set[int] = set()  # runtime unavailable (health); empty until health exists
        self._rebuild()

    @property
    def conns(self) -> list[int]:
        """In-flight attempts per peer, in peer order."""
        return [p.active for p in self.peers]

    def _rebuild(self) -> None:
        self._tier = rotation(self.peers, self._out)
        self._single = self.peers[self._tier[0][0]] if len(self._tier) == 1 else None

    def set_available(self, index: int, available: bool) -> None:
        """Take peer ``index`` out of rotation, or put it back (the hook for health). Requests
        already in flight on it still end with ``report``."""
        if available:
            self._out.discard(index)
        else:
            self._out.add(index)
        self._rebuild()

    def pick(self, key: bytes | None = None, exclude: Collection | None = None):
        if exclude:
            tier = excluding(self.peers, self._out, self._tier, exclude)
        elif self._single is not None:
            self._single.active += 1
            return self._single
        else:
            tier = self._tier
        peers = self.peers
        best = -1
        best_conns = best_weight = 0
        many = False
        for i, weight in tier:
            c = peers[i].active
            if best < 0 or c * best_weight < best_conns * weight:
                best, best_conns, best_weight = i, c, weight
                many = False
            elif c * best_weight == best_conns * weight:
                many = True
        if best < 0:
            return None
        if many:
            # Smooth weighted round robin among the peers tied with the best.
            current = self.current
            total = 0
            top = 0
            best = -1
            for i, weight in tier:
                if peers[i].active * best_weight != best_conns * weight:
                    continue
                cw = current[i] + weight
                current[i] = cw
                total += weight
                if best < 0 or cw > top:
                    best = i
                    top = cw
            current[best] = top - total
        peer = peers[best]
        peer.active += 1
        return peer

    def report(self, peer, outcome: int, latency: float) -> None:
        """The attempt on ``peer`` ended (either way): it is no longer in flight."""
        if peer.active > 0:
            peer.active -= 1

    def carry_over(self, previous) -> None:
        carry_current(self, previous)
