"""Traffic splits between upstreams (canary, blue/green): which side a request takes.

Without a sticky key the sides alternate by nginx's smooth weighted round robin, so the shares
are exact (90/10 gives 9 of every 10 requests to the first side). With ``sticky_on`` every key
is hashed with weighted rendezvous hashing: each side scores ``weight / -ln(u)`` where ``u`` is
a uniform hash of (key, side name), and the best score wins. The same key always lands on the
same side, shares follow the weights, and raising one side's weight only raises that side's
scores, so keys only ever move toward it (a user in the 5% canary stays in it at 10%).
A request without the key falls back to the round robin. Pure and deterministic.
"""

from __future__ import annotations

import hashlib
import math

from .balance.round_robin import RoundRobin
from .balance.peer import Peer

_SCALE = 1.0 / 18446744073709551616.0  # 2**-64


def _unit(key: bytes, salt: bytes) -> float:
    """A uniform number in (0, 1) from (key, side): stable across processes and machines."""
    digest = hashlib.blake2b(key, digest_size=8, key=salt).digest()
    return (int.from_bytes(digest, "little") + 0.5) * _SCALE


class Split:
    __slots__ = ("names", "weights", "key", "rotation", "_side", "_salts")

    def __init__(self, names: list[str], weights: list[int], key=None) -> None:
        """``names``: the sides' upstream names (they salt the hash, so reordering the split
        moves no key); ``key``: a function (head, client_ip) -> bytes | None, or None."""
        self.names = names
        self.weights = weights
        self.key = key
        self.rotation = RoundRobin([Peer(name, weight) for name, weight in zip(names, weights,
                                                                                strict=True)])
        self._side = {name: index for index, name in enumerate(names)}
        self._salts = [name.encode()[:64] for name in names]

    def choose(self, head, client_ip: bytes) -> int:
        """Index of the side this request takes."""
        key = self.key(head, client_ip) if self.key is not None else None
        if key is None:
            return self._side[self.rotation.pick().address]
        return self.sticky(key)

    def sticky(self, key: bytes) -> int:
        best = -1
        best_score = 0.0
        for index, weight in enumerate(self.weights):
            if weight <= 0:
                continue
            score = weight / -math.log(_unit(key, self._salts[index]))
            if best < 0 or score > best_score:
                best, best_score = index, score
        return best
