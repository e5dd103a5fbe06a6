# cython: boundscheck=True, wraparound=True, annotation_typing=False
"""nginx's smooth weighted round robin (ngx_http_upstream_round_robin.c), pick for pick.

Each pick adds every available peer's weight to its current weight, takes the peer with the
highest current weight (the first one on ties) and subtracts the total from it. Weights 5,1,1
give a a b a c a a. A peer with weight 0 or ``down`` is never picked. Backup peers are a
second list with their own current weights, used only when no primary peer is available.

Which peers are available is decided in one place, ``rotation()``, recomputed when
availability changes (never per pick); the pick loops only walk what it returns. This module
must not know about sockets, clocks or health policy: it is told who is out.
"""

from __future__ import annotations

from collections.abc import Collection

from .peer import Peer


def rotation(peers: list[Peer], out: Collection[int] = ()) -> tuple[tuple[int, int], ...]:
    """The (index, weight) pairs a pick chooses among: the primary peers in rotation and not
    ``out`` (runtime unavailable), or, when there are none, the backup peers likewise."""
    for backup in (False, True):
        tier = tuple((i, p.weight) for i, p in enumerate(peers)
                     if p.backup is backup and p.in_rotation and i not in out)
        if tier:
            return tier
    return ()


def excluding(peers: list[Peer], out: Collection[int], tier, exclude: Collection):
    """``tier`` without the peers in ``exclude`` (already tried by this request), falling back
    to the backups when every primary was tried; ``tier`` itself when nothing else is left."""
    tried = {i for i, p in enumerate(peers) if p in exclude}
    return rotation(peers, {*out, *tried}) or tier


def smooth_pick(tier, current: list[int]) -> int:
    """One smooth weighted round robin step over ``tier``; the chosen index (-1 if empty)."""
    best = -1
    best_weight = total = 0
    for i, weight in tier:
        cw = current[i] + weight
        current[i] = cw
        total += weight
        if best < 0 or cw > best_weight:
            best = i
            best_weight = cw
    if best >= 0:
        current[best] = best_weight - total
    return best


def carry_current(balancer, previous) -> None:
    """Copy nginx's current weights from ``previous`` to ``balancer``, peer by address."""
    old_index = getattr(previous, "index", None)
    old_current = getattr(previous, "current", None)
    if not old_index or old_current is None:
        return
    for i, peer in enumerate(balancer.peers):
        j = old_index.get(peer.address)
        if j is not None:
            balancer.current[i] = old_current[j]


class RoundRobin:
    """Smooth weighted round robin over ``peers`` (the Balancer interface)."""

    __slots__ = ("peers", "current", "index", "_out", "_tier", "_total", "_single")

    def __init__(self, peers: list[Peer]) -> None:
        self.peers = list(peers)
        self.current = [0] * len(self.peers)  # nginx's current_weight, per peer
        self.index = {p.address: i for i, p in enumerate(self.peers)}
        self._out: set[int] = set()  # runtime unavailable (health); empty until health exists
        self._rebuild()

    def _rebuild(self) -> None:
        self._tier = rotation(self.peers, self._out)
        self._total = sum(w for _, w in self._tier)
        # One peer to choose from: no arithmetic per pick.
        self._single = self.peers[self._tier[0][0]] if len(self._tier) == 1 else None

    def set_available(self, index: int, available: bool) -> None:
        """Take peer ``index`` out of rotation, or put it back (the hook for health checks and
        passive health). Its current weight is kept meanwhile, as nginx does."""
        if available:
            self._out.discard(index)
        else:
            self._out.add(index)
        self._rebuild()

    def pick(self, key: bytes | None = None, exclude: Collection | None = None):
        if exclude:
            index = smooth_pick(excluding(self.peers, self._out, self._tier, exclude),
                                self.current)
            return self.peers[index] if index >= 0 else None
        if self._single is not None:
            return self._single
        current = self.current
        best = -1
        best_weight = 0
        for i, weight in self._tier:
            cw = current[i] + weight
            current[i] = cw
            if best < 0 or cw > best_weight:
                best = i
                best_weight = cw
        if best < 0:
            return None
        current[best] = best_weight - self._total
        return self.peers[best]

    def report(self, peer, outcome: int, latency: float) -> None:
        """Nothing yet: passive health (next issues) will call ``set_available`` from here."""

    def carry_over(self, previous) -> None:
        carry_current(self, previous)
