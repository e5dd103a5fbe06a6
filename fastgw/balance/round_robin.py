"""nginx's smooth weighted round robin (ngx_http_upstream_round_robin.c), pick for pick.

Each pick adds every available peer's weight to its current weight, takes the peer with the
highest current weight (the first one on ties) and subtracts the total from it. Weights 5,1,1
give a a b a c a a. A peer with weight 0 is never picked.
"""

from __future__ import annotations


class SmoothWeightedRoundRobin:
    __slots__ = ("weights", "current", "_single")

    def __init__(self, weights: list[int]) -> None:
        self.weights = list(weights)
        self.current = [0] * len(self.weights)
        live = [i for i, w in enumerate(self.weights) if w > 0]
        # One live peer: no arithmetic per pick.
        self._single = live[0] if len(live) == 1 else None

    def pick(self, available=None) -> int:
        """Index of the next peer, or -1 if none is available.

        ``available`` optionally maps index → bool (e.g. health); unavailable peers are skipped
        and their current weight is left alone, as in nginx.
        """
        if self._single is not None and available is None:
            return self._single
        best = -1
        total = 0
        weights = self.weights
        current = self.current
        for i, weight in enumerate(weights):
            if weight <= 0 or (available is not None and not available[i]):
                continue
            current[i] += weight
            total += weight
            if best < 0 or current[i] > current[best]:
                best = i
        if best >= 0:
            current[best] -= total
        return best
