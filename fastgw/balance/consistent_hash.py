"""nginx's ``hash $key consistent`` (ngx_http_upstream_hash_module.c), key for key.

The ring is ketama as nginx builds it: every primary peer gets ``weight * 160`` points, named
after its address (never its position), so reordering peers moves no key. A point's hash is
``crc32(host, b"\\0", port, previous point's hash as 4 little-endian bytes)``, the previous hash
starting at 0, where host and port are the address split at its last ':' (``unix:PATH`` has
host PATH and no port). Points are sorted by hash; of equal hashes only the first is kept. A
key goes to the first point whose hash is >= crc32(key), wrapping to the first point; points
of unavailable peers are skipped, and after 21 points nginx gives up and uses round robin.

Pure and deterministic: no sockets, no clock, no randomness. It must not pick a backup peer
itself: backups (and a missing key) are the fallback balancer's business.
"""

from __future__ import annotations

import struct
import zlib
from bisect import bisect_left
from collections.abc import Collection

from .peer import Balancer, Peer

POINTS_PER_WEIGHT = 160  # nginx: npoints = peer->weight * 160
MAX_TRIES = 20  # nginx: after hp->tries > 20 it falls back to round robin (21 points looked at)

_PREV = struct.Struct("<I")


def split_address(address: str) -> tuple[bytes, bytes]:
    """Host and port bytes of ``address`` the way nginx names a server's points: ``unix:``
    (any case) gives the rest as host and no port; otherwise split at the last ':'; without a
    ':' the whole address is the host and the port is empty (nginx does not add ``80``)."""
    raw = address.encode()
    if raw[:5].lower() == b"unix:":
        return raw[5:], b""
    host, colon, port = raw.rpartition(b":")
    if not colon:
        return raw, b""
    return host, port


def point_hashes(address: str, weight: int) -> list[int]:
    """The ``weight * 160`` point hashes of one server, in the order nginx generates them."""
    host, port = split_address(address)
    base = host + b"\0" + port
    pack = _PREV.pack
    out = []
    prev = 0
    for _ in range(weight * POINTS_PER_WEIGHT):
        prev = zlib.crc32(base + pack(prev))
        out.append(prev)
    return out


class ConsistentHash:
    """Ketama over the primary peers; ``fallback`` (round robin over the same peers, built by
    the caller) answers when the key is missing or empty, or when no point's peer is available
    within nginx's 20 extra tries."""

    __slots__ = ("peers", "index", "_fallback", "_hashes", "_owners", "_up", "_all_up",
                 "_fallback_picks")

    def __init__(self, peers: list[Peer], fallback: Balancer) -> None:
        self.peers = list(peers)
        self.index = {p.address: i for i, p in enumerate(self.peers)}
        self._fallback = fallback
        points: list[tuple[int, int]] = []
        for index, peer in enumerate(self.peers):
            # nginx gives points to every server of a hash upstream, `down` ones included
            # (they are skipped at pick time); weight 0 (a drain here, invalid in nginx) has none.
            if peer.backup or peer.weight <= 0:
                continue
            points.extend((h, index) for h in point_hashes(peer.address, peer.weight))
        # Equal hashes: nginx keeps the first after its qsort. glibc's qsort is a merge sort
        # (stable) for arrays this size, so the first is the one from the server listed first;
        # Python's sort is stable too, so the same peer wins here.
        points.sort(key=lambda p: p[0])
        hashes: list[int] = []
        owners: list[int] = []
        last = -1
        for h, index in points:
            if h != last:
                hashes.append(h)
                owners.append(index)
                last = h
        self._hashes = hashes
        self._owners = owners
        # Availability per peer: static for now (in rotation); health will flip it later.
        self._up = [p.in_rotation and not p.backup for p in self.peers]
        self._all_up = all(self._up[i] for i in set(owners))
        # Picks the fallback made and not yet reported, per peer index, so that report() can
        # tell whose pick it was (every pick is followed by exactly one report).
        self._fallback_picks = [0] * len(self.peers)

    def pick(self, key: bytes | None = None, exclude: Collection | None = None):
        """The peer for ``key``, or the fallback's answer (None when none is available).
        Peers in ``exclude`` are walked past on the ring like unavailable ones."""
        hashes = self._hashes
        if key and hashes:
            n = len(hashes)
            i = bisect_left(hashes, zlib.crc32(key))
            if self._all_up and not exclude:
                return self.peers[self._owners[i % n]]
            owners = self._owners
            up = self._up
            peers = self.peers
            for t in range(MAX_TRIES + 1):
                index = owners[(i + t) % n]
                if up[index] and not (exclude and peers[index] in exclude):
                    return peers[index]
        peer = self._fallback.pick(key, exclude)
        if peer is not None:
            self._fallback_picks[self.index[peer.address]] += 1
        return peer

    def report(self, peer, outcome: int, latency: float) -> None:
        """Forwarded to the fallback when the pick on ``peer`` was the fallback's."""
        index = self.index.get(peer.address, -1)
        if index >= 0 and self._fallback_picks[index]:
            self._fallback_picks[index] -= 1
            self._fallback.report(peer, outcome, latency)

    def carry_over(self, previous) -> None:
        """The ring needs nothing carried; the fallback's position is carried over."""
        old = getattr(previous, "_fallback", None)
        if old is not None:
            self._fallback.carry_over(old)
