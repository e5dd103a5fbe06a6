"""Consistent hashing must be nginx's `hash $key consistent`, key for key, and move keys only
where a change in the peers requires it.

The golden vectors in tests/data/ketama_nginx.json were recorded from a real nginx by
bench/nginx_hash_vectors.py; this file needs no nginx.
"""

from __future__ import annotations

import json
import zlib
from bisect import bisect_left
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgw.balance.consistent_hash import ConsistentHash, point_hashes, split_address
from fastgw.balance.peer import Peer
from fastgw.proxy.outcome import Outcome

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "ketama_nginx.json").read_text())
KEYS = [b"key-%d" % i for i in range(100_000)]


class Fallback:
    """A stand-in for the round robin the caller passes: answers peers from a fixed list, in
    turn (None when the list is empty), and records every pick and report."""

    def __init__(self, answers: list[Peer]) -> None:
        self.answers = answers
        self.picks = 0
        self.picked: list[tuple[bytes | None, object]] = []  # (key, exclude) per pick
        self.reports: list[tuple[Peer, int, float]] = []

    def pick(self, key: bytes | None = None, exclude=None) -> Peer | None:
        self.picks += 1
        self.picked.append((key, exclude))
        return self.answers[(self.picks - 1) % len(self.answers)] if self.answers else None

    def report(self, peer: Peer, outcome: int, latency: float) -> None:
        self.reports.append((peer, outcome, latency))

    def carry_over(self, previous) -> None:
        pass


def ring(peers: list[Peer]) -> ConsistentHash:
    return ConsistentHash(peers, Fallback([]))


def indexer(peers: list[Peer]):
    """Picked peer -> its position in ``peers`` (-1 for None), by identity: a pick must be one
    of the very peer objects given."""
    positions = {id(p): i for i, p in enumerate(peers)}

    def index(peer: Peer | None) -> int:
        if peer is None:
            return -1
        i = positions.get(id(peer), -1)
        assert i >= 0 and peers[i] is peer, f"pick returned {peer!r}, not one of the peers"
        return i

    return index


def addresses(peers: list[Peer], keys: list[bytes] = KEYS) -> list[str | None]:
    """Key -> address of the peer picked (None when there was none)."""
    balancer = ring(peers)
    pick = balancer.pick
    index = indexer(peers)
    out = []
    for key in keys:
        i = index(pick(key))
        out.append(peers[i].address if i >= 0 else None)
    return out


PEERS = [
    Peer("10.0.0.1:8000", 1),
    Peer("10.0.0.2:8000", 2),
    Peer("10.0.0.3:8000", 3),
    Peer("10.0.0.4:8080", 5),
    Peer("backend.internal:9000", 1),
    Peer("unix:/run/app.sock", 2),
]


@pytest.fixture(scope="module")
def base() -> list[str | None]:
    return addresses(PEERS)


# --- nginx compatibility -------------------------------------------------------------------


@pytest.mark.parametrize("config", VECTORS["configs"], ids=lambda c: c["name"])
def test_golden_vectors_from_nginx(config):
    servers = config["servers"]
    peers = [Peer(s["address"], s["weight"], down=s["down"]) for s in servers]
    balancer = ring(peers)
    index = indexer(peers)
    wrong = [
        (key, servers[want]["address"], servers[got]["address"] if got >= 0 else None)
        for key, want in zip(VECTORS["keys"], config["picks"], strict=True)
        if (got := index(balancer.pick(key.encode()))) != want
    ]
    assert len(config["picks"]) == len(VECTORS["keys"]) >= 2000
    assert wrong == [], f"{len(wrong)} keys differ from nginx, e.g. {wrong[:3]}"


def test_vectors_show_nginx_ignores_server_order():
    by_name = {c["name"]: c for c in VECTORS["configs"]}

    def mapped(name):
        config = by_name[name]
        return [config["servers"][i]["address"] for i in config["picks"]]

    assert mapped("five_mixed") == mapped("five_mixed_reordered")


def test_equal_point_hashes_keep_the_server_listed_first_as_nginx_does():
    # Two servers sharing one point hash: nginx (glibc's stable qsort, then "keep the first")
    # gives the point to whichever is listed first, so here order does matter.
    first, second = VECTORS["collision"]["servers"]
    shared = VECTORS["collision"]["hash"]
    assert shared in point_hashes(first, 5) and shared in point_hashes(second, 5)
    arc_keys = [k.encode() for k in VECTORS["keys"] if k.startswith("arc-")]
    assert arc_keys
    for order in ([first, second], [second, first]):
        peers = [Peer(a, 5) for a in order]
        assert {addresses(peers, arc_keys)[i] for i in range(len(arc_keys))} == {order[0]}


def test_point_hashes_chain_crc32_over_host_zero_port_and_previous_hash():
    hashes = point_hashes("127.0.0.1:8080", 2)
    assert len(hashes) == 320
    assert hashes[0] == zlib.crc32(b"127.0.0.1\x008080\x00\x00\x00\x00")
    assert hashes[1] == zlib.crc32(b"127.0.0.1\x008080" + hashes[0].to_bytes(4, "little"))


@pytest.mark.parametrize(
    "address, host, port",
    [
        ("10.0.0.1:80", b"10.0.0.1", b"80"),
        ("[::1]:8080", b"[::1]", b"8080"),
        ("example.com", b"example.com", b""),  # no port written: nginx hashes none, not "80"
        ("unix:/run/a.sock", b"/run/a.sock", b""),
        ("UNIX:/run/a:b.sock", b"/run/a:b.sock", b""),
        ("a:b:c", b"a:b", b"c"),
    ],
)
def test_addresses_split_at_the_last_colon_as_nginx_does(address, host, port):
    assert split_address(address) == (host, port)


# --- key movement ---------------------------------------------------------------------------


def test_reordering_peers_moves_no_key(base):
    # (holds whenever no two peers share a point hash; see the collision test above)
    balancer = ring(PEERS)
    assert len(balancer._hashes) == sum(p.weight for p in PEERS) * 160
    assert addresses(PEERS[::-1]) == base
    assert addresses(PEERS[3:] + PEERS[:3]) == base


def test_adding_a_peer_moves_only_keys_to_it(base):
    new = Peer("10.0.0.9:8000", 2)
    after = addresses(PEERS[:2] + [new] + PEERS[2:])
    moved = [(b, a) for b, a in zip(base, after, strict=True) if b != a]
    assert {a for _, a in moved} == {new.address}
    # its share: about 2 of the 16 weight units
    assert 0.09 < len(moved) / len(KEYS) < 0.16


def test_removing_a_peer_moves_only_its_keys(base):
    gone = PEERS[2]
    after = addresses([p for p in PEERS if p is not gone])
    moved = {i for i, (b, a) in enumerate(zip(base, after, strict=True)) if b != a}
    assert moved == {i for i, b in enumerate(base) if b == gone.address}
    assert gone.address not in after


def test_weight_changes_move_keys_to_or_from_that_peer_only(base):
    changed = PEERS[0]
    heavier = addresses([Peer(changed.address, 4)] + PEERS[1:])
    gained = [(b, a) for b, a in zip(base, heavier, strict=True) if b != a]
    assert gained and {a for _, a in gained} == {changed.address}

    lighter = addresses(PEERS[:3] + [Peer(PEERS[3].address, 2)] + PEERS[4:])
    lost = [(b, a) for b, a in zip(base, lighter, strict=True) if b != a]
    assert lost and {b for b, _ in lost} == {PEERS[3].address}


def test_down_peer_is_skipped_its_keys_go_to_the_next_points(base):
    drained = PEERS[3]
    down = [Peer(p.address, p.weight, down=p is drained) for p in PEERS]
    after = addresses(down)
    # the same as if it had no points at all: its keys go to the following points' peers
    assert after == addresses([p for p in PEERS if p is not drained])
    assert all(a == b for b, a in zip(base, after, strict=True) if b != drained.address)
    assert drained.address not in after


def test_weight_zero_is_out_of_rotation(base):
    after = addresses([Peer(p.address, 0) if i == 1 else p for i, p in enumerate(PEERS)])
    assert after == addresses([p for i, p in enumerate(PEERS) if i != 1])


def test_backup_peers_get_no_points(base):
    backup = Peer("10.0.0.200:8000", 5, backup=True)
    assert addresses(PEERS + [backup]) == base
    assert addresses([backup] + PEERS) == base


def test_two_instances_give_the_same_mapping(base):
    assert addresses(list(PEERS)) == base
    assert ring(PEERS).pick(b"user-42") is ring(PEERS).pick(b"user-42")


# --- fallback -------------------------------------------------------------------------------


def test_missing_or_empty_key_goes_to_the_fallback():
    fallback = Fallback([PEERS[4], PEERS[1]])
    balancer = ConsistentHash(PEERS, fallback)
    assert balancer.pick(None) is PEERS[4]
    assert balancer.pick() is PEERS[1]
    assert balancer.pick(b"") is PEERS[4]  # nginx: an empty key uses round robin too
    assert fallback.picks == 3


def test_report_reaches_the_fallback_only_for_its_picks():
    fallback = Fallback([PEERS[4]])
    balancer = ConsistentHash(PEERS, fallback)
    hashed = balancer.pick(b"user-1")
    assert hashed is not None
    balancer.report(hashed, 200, 0.01)
    assert fallback.reports == []
    assert balancer.pick(None) is PEERS[4]
    balancer.report(PEERS[4], Outcome.CONNECT_ERROR, 0.5)
    balancer.report(PEERS[4], 200, 0.01)  # a second report for one fallback pick: not forwarded
    assert fallback.reports == [(PEERS[4], Outcome.CONNECT_ERROR, 0.5)]


def test_all_peers_down_gives_the_fallbacks_answer():
    peers = [Peer(p.address, p.weight, down=True) for p in PEERS]
    assert ConsistentHash(peers, Fallback([])).pick(b"k") is None
    assert ConsistentHash(peers, Fallback([peers[2]])).pick(b"k") is peers[2]
    assert ConsistentHash([], Fallback([])).pick(b"k") is None
    only_backups = [Peer("10.0.0.1:1", 1, backup=True)]
    assert ConsistentHash(only_backups, Fallback([only_backups[0]])).pick(b"k") is only_backups[0]


def test_after_21_unavailable_points_nginx_gives_up_and_falls_back():
    # A heavy peer that is down owns long runs of points; keys whose next 21 points all
    # belong to it go to the fallback (which answers the backup, 2), the others to peer 0.
    peers = [
        Peer("10.0.0.1:80", 1),
        Peer("10.0.0.2:80", 100, down=True),
        Peer("10.0.0.3:80", 1, backup=True),
    ]
    points = sorted(
        (h, i) for i, p in enumerate(peers[:2]) for h in point_hashes(p.address, p.weight)
    )
    assert len({h for h, _ in points}) == len(points)
    hashes = [h for h, _ in points]
    owners = [i for _, i in points]
    balancer = ConsistentHash(peers, Fallback([peers[2]]))
    index = indexer(peers)
    seen = set()
    for key in KEYS[:20_000]:
        start = bisect_left(hashes, zlib.crc32(key))
        window = [owners[(start + t) % len(owners)] for t in range(21)]
        want = 0 if 0 in window else 2
        assert index(balancer.pick(key)) == want
        seen.add(want)
    assert seen == {0, 2}


# --- a reference implementation, for any key ------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_any_key_maps_to_the_first_point_at_or_after_its_hash(key):
    balancer = ring(PEERS)
    points = sorted((h, i) for i, p in enumerate(PEERS) for h in point_hashes(p.address, p.weight))
    h = zlib.crc32(key)
    want = next((i for ph, i in points if ph >= h), points[0][1])
    assert balancer.pick(key) is PEERS[want]
