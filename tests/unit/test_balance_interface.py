"""The Balancer interface, for every balancer: pick returns the peer objects it was given,
``exclude`` skips peers a request already tried, least_conn's in-flight counts live on the
peers (one report per pick), and ``carry_over`` keeps nginx's position across a reload."""

from __future__ import annotations

import random
import zlib
from bisect import bisect_left
from collections import Counter

import pytest

from fastgw.balance import KINDS, LeastConn, Peer, RoundRobin, make_balancer
from fastgw.balance.consistent_hash import MAX_TRIES, ConsistentHash, point_hashes
from fastgw.proxy.outcome import Outcome

OUTCOMES = [200, 503, Outcome.CONNECT_ERROR, Outcome.TIMEOUT, Outcome.ABANDONED]

# (kind, key): consistent_hash is exercised on its ring (a key) and on its fallback (none)
PICKERS = [
    ("round_robin", None),
    ("least_conn", None),
    ("consistent_hash", None),
    ("consistent_hash", b"user-7"),
]
PICKER_IDS = ["round_robin", "least_conn", "consistent_hash-nokey", "consistent_hash-key"]


def peers(*specs, base=1):
    """peers(5, 1, (1, "backup"), (2, "down")) → Peers 10.0.0.1 … 10.0.0.4."""
    out = []
    for n, spec in enumerate(specs):
        weight, *flags = spec if isinstance(spec, tuple) else (spec,)
        out.append(Peer(f"10.0.0.{n + base}:80", weight, backup="backup" in flags,
                        down="down" in flags))
    return out


def named(*specs):
    """named(("A", 4), ("B", 2, "backup")) → Peers with those addresses, fresh objects."""
    return [Peer(f"{name}:80", weight, backup="backup" in flags, down="down" in flags)
            for name, weight, *flags in specs]


def is_one_of(peer, candidates) -> bool:
    return any(peer is p for p in candidates)


def pick_and_end(balancer, key=None, exclude=None, outcome=200):
    """One attempt that ends at once (least_conn: its count goes back down)."""
    peer = balancer.pick(key, exclude)
    if peer is not None:
        balancer.report(peer, outcome, 0.01)
    return peer


class Target:
    """A duck-typed peer like fastgw.upstream.target.Target (slots, identity equality)."""

    __slots__ = ("address", "weight", "backup", "down", "active")

    def __init__(self, address: str, weight: int = 1, backup: bool = False) -> None:
        self.address, self.weight, self.backup, self.down, self.active = (
            address, weight, backup, False, 0)

    @property
    def in_rotation(self) -> bool:
        return self.weight > 0 and not self.down


# --- pick returns the given peers -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make_peer", [Peer, Target], ids=["Peer", "Target"])
def test_pick_returns_the_peer_objects_given(kind, make_peer):
    ps = [make_peer(f"10.0.0.{i}:80", w) for i, w in enumerate((3, 2, 1), 1)]
    twins = [make_peer(p.address, p.weight) for p in ps]  # equal fields, other objects
    balancer = make_balancer(kind, ps)
    seen = []
    for n in range(60):
        key = None if n % 2 else b"key-%d" % n
        peer = pick_and_end(balancer, key)
        assert is_one_of(peer, ps), peer
        assert not is_one_of(peer, twins)
        seen.append(peer)
    assert {id(p) for p in seen} == {id(p) for p in ps}
    assert all(p.active == 0 for p in ps)


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_available_is_none(kind):
    for ps in ([], peers(0, (1, "down"), (1, "backup", "down"))):
        balancer = make_balancer(kind, ps)
        assert balancer.pick() is None
        assert balancer.pick(b"k") is None
        assert balancer.pick(b"k", exclude=set(ps)) is None
        assert all(p.active == 0 for p in ps)


# --- exclude --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, key", PICKERS, ids=PICKER_IDS)
@pytest.mark.parametrize("container", [set, list, tuple, frozenset])
def test_exclude_skips_a_tried_peer_while_another_is_available(kind, key, container):
    ps = peers(1, 1, 1, (1, "backup"))
    primaries = ps[:3]
    for tried in primaries:
        balancer = make_balancer(kind, ps)
        got = [pick_and_end(balancer, key, container([tried])) for _ in range(12)]
        assert all(is_one_of(p, primaries) and p is not tried for p in got), (tried, got)
        if key is None:  # round robin among the two left: both get traffic
            assert {id(p) for p in got} == {id(p) for p in primaries if p is not tried}
    for left in primaries:
        balancer = make_balancer(kind, ps)
        tried = container([p for p in primaries if p is not left])
        assert all(pick_and_end(balancer, key, tried) is left for _ in range(6))


@pytest.mark.parametrize("kind, key", PICKERS, ids=PICKER_IDS)
def test_exclude_never_picks_a_down_peer(kind, key):
    ps = peers(1, (1, "down"), 0, (1, "backup"))
    balancer = make_balancer(kind, ps)
    assert all(pick_and_end(balancer, key, {ps[0]}) is ps[3] for _ in range(5))


@pytest.mark.parametrize("kind, key", PICKERS, ids=PICKER_IDS)
def test_exclude_falls_back_to_the_backups_when_every_primary_was_tried(kind, key):
    ps = peers(1, 1, (1, "backup"), (2, "backup"))
    balancer = make_balancer(kind, ps)
    got = [pick_and_end(balancer, key, {ps[0], ps[1]}) for _ in range(6)]
    assert all(is_one_of(p, ps[2:]) for p in got), got
    if key is None or kind != "consistent_hash":
        # the backups' own smooth WRR, weights 1, 2: d c d, d c d
        assert [ps.index(p) for p in got] == [3, 2, 3] * 2
    assert all(pick_and_end(balancer, key, [ps[0], ps[1], ps[3]]) is ps[2] for _ in range(4))
    assert all(pick_and_end(balancer, key, [ps[0], ps[1], ps[2]]) is ps[3] for _ in range(4))


@pytest.mark.parametrize("kind, key", PICKERS, ids=PICKER_IDS)
def test_a_tried_peer_again_only_when_nothing_else_exists(kind, key):
    single = peers(1)
    balancer = make_balancer(kind, single)
    assert all(pick_and_end(balancer, key, single) is single[0] for _ in range(3))

    ps = peers(1, 1)
    balancer = make_balancer(kind, ps)
    assert all(is_one_of(pick_and_end(balancer, key, ps), ps) for _ in range(4))

    ps = peers(1, (1, "backup"))  # everything tried, backups too
    balancer = make_balancer(kind, ps)
    assert all(is_one_of(pick_and_end(balancer, key, ps), ps) for _ in range(4))

    ps = peers(1, (1, "down"), 0)  # the one in rotation again, never one out of it
    balancer = make_balancer(kind, ps)
    assert all(pick_and_end(balancer, key, {ps[0]}) is ps[0] for _ in range(3))


def reference_tier(ps, exclude):
    """nginx's rule, written plainly: primaries in rotation and not tried; else backups in
    rotation and not tried; else (everything tried) the peers a pick without exclude uses."""
    tried = {id(p) for p in exclude}
    for skip in (tried, set()):
        for backup in (False, True):
            tier = [i for i, p in enumerate(ps)
                    if p.backup is backup and p.in_rotation and id(p) not in skip]
            if tier:
                return tier
    return []


def reference_pick(ps, current, tier):
    best, total = -1, 0
    for i in tier:
        current[i] += ps[i].weight
        total += ps[i].weight
        if best < 0 or current[i] > current[best]:
            best = i
    if best >= 0:
        current[best] -= total
    return best


@pytest.mark.parametrize("kind", ["round_robin", "least_conn"])
def test_exclude_matches_a_plain_smooth_wrr_over_what_is_left(kind):
    """Random peers and random tried sets: every pick is nginx's smooth WRR step over the
    peers left, sharing one set of current weights (least_conn: all idle, so all tie)."""
    rng = random.Random(7)
    for _ in range(300):
        ps = [Peer(f"h{i}:80", rng.randrange(0, 5), backup=rng.random() < 0.3,
                   down=rng.random() < 0.15) for i in range(rng.randrange(1, 7))]
        balancer = make_balancer(kind, ps)
        current = [0] * len(ps)
        for _ in range(25):
            exclude = [p for p in ps if rng.random() < 0.4]
            peer = pick_and_end(balancer, None, exclude)
            got = -1 if peer is None else ps.index(peer)
            assert got == reference_pick(ps, current, reference_tier(ps, exclude))


# --- least_conn: one report per pick, counts on the peers ------------------------------------


def test_least_conn_every_pick_is_balanced_by_one_report():
    rng = random.Random(11)
    for _ in range(100):
        ps = peers(*[(rng.randrange(1, 4), *(("backup",) if rng.random() < 0.3 else ()))
                     for _ in range(rng.randrange(1, 6))])
        lc = LeastConn(ps)
        in_flight = []
        for _ in range(80):
            if in_flight and rng.random() < 0.45:
                peer = in_flight.pop(rng.randrange(len(in_flight)))
                lc.report(peer, rng.choice(OUTCOMES), rng.random())
            else:
                exclude = {p for p in ps if rng.random() < 0.4} if rng.random() < 0.6 else None
                peer = lc.pick(None, exclude)
                assert is_one_of(peer, ps)
                in_flight.append(peer)
            counts = Counter(id(p) for p in in_flight)
            assert [p.active for p in ps] == [counts[id(p)] for p in ps]
            assert lc.conns == [p.active for p in ps]
        for peer in in_flight:
            lc.report(peer, 200, 0.01)
        assert [p.active for p in ps] == [0] * len(ps)


def test_least_conn_exclude_counts_the_pick_it_makes():
    ps = peers(1, 1, 1)
    lc = LeastConn(ps)
    first = lc.pick()
    assert first is ps[0]
    retry = lc.pick(exclude={first})  # b and c tie: smooth WRR among them
    assert retry is ps[1]
    assert lc.conns == [1, 1, 0]
    lc.report(first, Outcome.CONNECT_ERROR, 0.2)
    again = lc.pick(exclude={first, retry})
    assert again is ps[2]
    assert lc.conns == [0, 1, 1]
    everything = lc.pick(exclude=ps)  # all tried: still one of them, still counted once
    assert is_one_of(everything, ps)
    assert sum(lc.conns) == 3
    for peer in (retry, again, everything):
        lc.report(peer, 200, 0.01)
    assert lc.conns == [0, 0, 0]


def test_least_conn_exclude_prefers_an_untried_busier_peer():
    ps = peers(1, 1)
    lc = LeastConn(ps)
    ps[1].active = 5
    assert lc.pick(exclude={ps[0]}) is ps[1]
    assert lc.conns == [0, 6]


# --- carry_over -----------------------------------------------------------------------------

# 4, 2, 1 never tie for the highest current weight, so the order of the peers cannot change a
# pick: a rebuilt balancer that kept nginx's current weights picks exactly what the old would.
TIE_FREE = (("A", 4), ("B", 2), ("C", 1))


def continued(kind, k, new_specs, carry=True, n=14):
    """Pick ``k`` times on an old balancer, rebuild over ``new_specs`` (fresh Peer objects),
    pick ``n`` more: (addresses the rebuilt one picked, addresses the old one goes on to)."""
    old, twin = make_balancer(kind, named(*TIE_FREE)), make_balancer(kind, named(*TIE_FREE))
    for _ in range(k):
        assert pick_and_end(old).address == pick_and_end(twin).address
    new_peers = named(*new_specs)
    new = make_balancer(kind, new_peers)
    if carry:
        new.carry_over(old)
    got = []
    for _ in range(n):
        peer = pick_and_end(new)
        assert is_one_of(peer, new_peers)
        got.append(peer.address)
    return got, [pick_and_end(twin).address for _ in range(n)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("new_specs", [
    (("C", 1), ("A", 4), ("B", 2)),
    (("B", 2), ("C", 1), ("A", 4)),
    (("C", 1), ("E", 3, "backup"), ("A", 4), ("B", 2), ("F", 1, "down")),
], ids=["rotated", "rotated-back", "reordered-extended"])
def test_carry_over_continues_the_sequence_across_a_rebuild(kind, new_specs):
    restarted = 0
    for k in range(8):  # every position of the period (4 + 2 + 1)
        got, want = continued(kind, k, new_specs)
        assert got == want, k
        fresh, want = continued(kind, k, new_specs, carry=False)
        restarted += fresh != want
    assert restarted > 0  # without carry_over the sequence would start over


class AddressWRR:
    """Smooth WRR written plainly, its current weights kept by address."""

    def __init__(self, specs, current=None):
        self.specs = [(f"{name}:80", weight) for name, weight, *_ in specs]
        self.current = {a: (current or {}).get(a, 0) for a, _ in self.specs}

    def pick(self):
        best, total = None, 0
        for address, weight in self.specs:
            self.current[address] += weight
            total += weight
            if best is None or self.current[address] > self.current[best]:
                best = address
        self.current[best] -= total
        return best


@pytest.mark.parametrize("kind", KINDS)
def test_carry_over_matches_peers_by_address_when_peers_come_and_go(kind):
    new_specs = (("C", 1), ("D", 3), ("A", 4))  # B removed, D added (starts at 0)
    for k in range(8):
        old = make_balancer(kind, named(*TIE_FREE))
        ref_old = AddressWRR(TIE_FREE)
        for _ in range(k):
            assert pick_and_end(old).address == ref_old.pick()
        new = make_balancer(kind, named(*new_specs))
        new.carry_over(old)
        ref_new = AddressWRR(new_specs, ref_old.current)
        assert [pick_and_end(new).address for _ in range(16)] == [
            ref_new.pick() for _ in range(16)], k


@pytest.mark.parametrize("kind", ["round_robin", "least_conn"])
def test_carry_over_copies_current_weights_by_address(kind):
    old = make_balancer(kind, named(*TIE_FREE))
    for _ in range(3):
        pick_and_end(old)
    before = dict(zip((p.address for p in old.peers), old.current, strict=True))
    new = make_balancer(kind, named(("C", 1), ("D", 3), ("A", 4)))
    new.carry_over(old)
    assert new.current == [before["C:80"], 0, before["A:80"]]
    assert old.current == list(before.values())  # the old one is left as it was


def test_least_conn_rebuilt_over_the_same_peers_sees_their_in_flight_counts():
    ps = peers(1, 1, 1)
    old = make_balancer("least_conn", ps)
    a, b = old.pick(), old.pick()
    assert (a, b) == (ps[0], ps[1])
    new = make_balancer("least_conn", [ps[2], ps[1], ps[0]])  # reloaded, reordered
    new.carry_over(old)
    assert new.conns == [0, 1, 1]
    c = new.pick()
    assert c is ps[2]  # the only idle one
    # a and b tie (one each): b is ahead in the current weights carried over ([-2, 0, 2])
    assert new.pick(exclude={c}) is ps[1]
    assert new.conns == [1, 2, 1]
    # attempts picked before the reload end on the old balancer; the new one sees it
    old.report(a, 200, 0.01)
    old.report(b, Outcome.RESET, 0.3)
    assert new.conns == [1, 1, 0]
    assert new.pick() is ps[0]


def test_least_conn_rebuilt_counts_steer_the_next_pick():
    ps = peers(1, 1, 1)
    old = LeastConn(ps)
    held = [old.pick() for _ in range(5)]  # worked by hand from nginx: a b c c b
    assert [ps.index(p) for p in held] == [0, 1, 2, 2, 1]
    new = LeastConn(list(reversed(ps)))
    new.carry_over(old)
    assert new.conns == [2, 2, 1]
    assert new.pick() is ps[0]
    for peer in held:
        new.report(peer, 200, 0.01)
    new.report(ps[0], 200, 0.01)
    assert [p.active for p in ps] == [0, 0, 0]


@pytest.mark.parametrize("old_kind", KINDS)
@pytest.mark.parametrize("new_kind", KINDS)
def test_carry_over_between_kinds_keeps_picking(old_kind, new_kind):
    old = make_balancer(old_kind, named(*TIE_FREE))
    for _ in range(3):
        pick_and_end(old)
    new_peers = named(("B", 2), ("A", 4))
    new = make_balancer(new_kind, new_peers)
    new.carry_over(old)
    assert all(is_one_of(pick_and_end(new, key), new_peers) for key in (None, b"k", None))


def test_consistent_hash_carry_over_keeps_its_ring_and_its_fallback_position():
    keys = [b"user-%d" % i for i in range(500)]
    old = make_balancer("consistent_hash", named(*TIE_FREE))
    twin = make_balancer("consistent_hash", named(*TIE_FREE))
    for _ in range(3):
        assert old.pick(None).address == twin.pick(None).address
    by_key = [old.pick(k).address for k in keys]
    new = make_balancer("consistent_hash", named(("C", 1), ("A", 4), ("B", 2)))
    new.carry_over(old)
    assert [new.pick(k).address for k in keys] == by_key
    assert [new.pick(None).address for _ in range(14)] == [
        twin.pick(None).address for _ in range(14)]


# --- consistent_hash: exclude walks the ring; reports only for the fallback's picks --------


class Spy:
    """Wraps the real fallback: records its picks (with key and exclude) and its reports."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.picks: list[tuple] = []
        self.reports: list[tuple] = []

    def pick(self, key=None, exclude=None):
        peer = self.inner.pick(key, exclude)
        self.picks.append((key, exclude, peer))
        return peer

    def report(self, peer, outcome, latency):
        self.reports.append((peer, outcome, latency))
        self.inner.report(peer, outcome, latency)

    def carry_over(self, previous):
        self.inner.carry_over(previous)


RING_PEERS = (("A", 1), ("B", 2), ("C", 3), ("D", 1, "down"), ("E", 2), ("F", 1, "backup"))


def manual_ring(ps):
    """The ring as nginx builds it: points of primary peers with weight > 0, by hash, the
    first of equal hashes kept."""
    points = sorted(((h, i) for i, p in enumerate(ps) if not p.backup and p.weight > 0
                     for h in point_hashes(p.address, p.weight)), key=lambda x: x[0])
    hashes, owners = [], []
    for h, i in points:
        if not hashes or hashes[-1] != h:
            hashes.append(h)
            owners.append(i)
    return hashes, owners


def test_consistent_hash_exclude_walks_to_the_next_points_peer():
    ps = named(*RING_PEERS)
    spy = Spy(RoundRobin(ps))
    ch = ConsistentHash(ps, spy)
    hashes, owners = manual_ring(ps)
    rng = random.Random(3)
    walked = fell_back = 0
    for n in range(3000):
        key = b"key-%d" % n
        start = bisect_left(hashes, zlib.crc32(key))
        first = owners[start % len(owners)]
        if n % 3 == 0:
            exclude = {ps[first]}  # the retry after the key's own peer failed
        else:
            exclude = {p for p in ps if rng.random() < 0.5}
        want = next((owners[(start + t) % len(owners)] for t in range(MAX_TRIES + 1)
                     if ps[owners[(start + t) % len(owners)]].in_rotation
                     and ps[owners[(start + t) % len(owners)]] not in exclude), None)
        before = len(spy.picks)
        got = ch.pick(key, exclude)
        if want is not None:
            assert got is ps[want], (key, exclude)
            assert len(spy.picks) == before
            walked += ps[want] is not ps[first]
        else:
            assert len(spy.picks) == before + 1
            assert spy.picks[-1] == (key, exclude, got)
            fell_back += 1
        ch.report(got, 200, 0.01)
    assert walked > 1000
    assert fell_back > 0


def test_consistent_hash_every_primary_tried_goes_to_the_fallbacks_backup():
    ps = named(*RING_PEERS)
    ch = make_balancer("consistent_hash", ps)
    tried = [p for p in ps if not p.backup]
    assert all(ch.pick(b"key-%d" % n, tried) is ps[5] for n in range(50))


def test_consistent_hash_reports_reach_the_fallback_only_for_its_picks():
    ps = named(*RING_PEERS)
    spy = Spy(RoundRobin(ps))
    ch = ConsistentHash(ps, spy)
    rng = random.Random(5)
    forwarded = []
    for n in range(2000):
        key = None if n % 7 == 0 else b"key-%d" % n
        exclude = {p for p in ps if rng.random() < 0.3} if n % 2 else None
        before = len(spy.picks)
        peer = ch.pick(key, exclude)
        outcome, latency = OUTCOMES[n % len(OUTCOMES)], n / 1000
        ch.report(peer, outcome, latency)
        if len(spy.picks) > before:
            forwarded.append((peer, outcome, latency))
    assert spy.reports == forwarded
    assert len(forwarded) > 250


def test_consistent_hash_in_flight_reports_forward_once_per_fallback_pick():
    ps = named(*RING_PEERS)
    spy = Spy(RoundRobin(ps))
    ch = ConsistentHash(ps, spy)
    rng = random.Random(9)
    in_flight = []
    for n in range(1500):
        key = None if n % 4 == 0 else b"key-%d" % n
        exclude = {p for p in ps if rng.random() < 0.5} if n % 3 == 0 else None
        in_flight.append(ch.pick(key, exclude))
    rng.shuffle(in_flight)
    for peer in in_flight:
        ch.report(peer, 200, 0.01)
    assert Counter(id(p) for p, _, _ in spy.reports) == Counter(
        id(p) for _, _, p in spy.picks if p is not None)
