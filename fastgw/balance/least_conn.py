"""Weighted least connections, after nginx's ngx_http_upstream_least_conn_module.

The peer with the fewest in-flight requests relative to its weight wins (a beats b when
conns_a * weight_b < conns_b * weight_a, compared in integers). When several peers tie, the
smooth weighted round robin of round_robin.py chooses among the tied ones only, using the same
current weights nginx keeps. ``pick`` counts the request as in flight on the chosen peer and
``report`` ends it. Backup peers are used only when no primary peer is available. This module
must not know about sockets or clocks: the data path tells it when a request starts and ends.
"""

from __future__ import annotations

from .peer import Peer
from .round_robin import rotation


class LeastConn:
    """Weighted least in-flight requests over ``peers`` (the Balancer interface)."""

    __slots__ = ("peers", "conns", "current", "_out", "_tier", "_single")

    def __init__(self, peers: list[Peer]) -> None:
        self.peers = list(peers)
        self.conns = [0] * len(self.peers)  # in-flight requests, per peer
        self.current = [0] * len(self.peers)  # nginx's current_weight, for ties
        self._out: set[int] = set()  # runtime unavailable (health); empty until health exists
        self._rebuild()

    def _rebuild(self) -> None:
        self._tier = rotation(self.peers, self._out)
        self._single = self._tier[0][0] if len(self._tier) == 1 else -1

    def set_available(self, index: int, available: bool) -> None:
        """Take peer ``index`` out of rotation, or put it back (the hook for health). Requests
        already in flight on it still end with ``report``."""
        if available:
            self._out.discard(index)
        else:
            self._out.add(index)
        self._rebuild()

    def pick(self, key: bytes | None = None) -> int:
        conns = self.conns
        if self._single >= 0:
            conns[self._single] += 1
            return self._single
        best = -1
        best_conns = best_weight = 0
        many = False
        for i, weight in self._tier:
            c = conns[i]
            if best < 0 or c * best_weight < best_conns * weight:
                best, best_conns, best_weight = i, c, weight
                many = False
            elif c * best_weight == best_conns * weight:
                many = True
        if best < 0:
            return -1
        if many:
            # Smooth weighted round robin among the peers tied with the best.
            current = self.current
            total = 0
            top = 0
            best = -1
            for i, weight in self._tier:
                if conns[i] * best_weight != best_conns * weight:
                    continue
                cw = current[i] + weight
                current[i] = cw
                total += weight
                if best < 0 or cw > top:
                    best = i
                    top = cw
            current[best] = top - total
        conns[best] += 1
        return best

    def report(self, index: int, ok: bool) -> None:
        """The attempt on ``index`` ended (either way): it is no longer in flight."""
        if self.conns[index] > 0:
            self.conns[index] -= 1
