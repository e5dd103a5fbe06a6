"""Smooth weighted round robin must match nginx pick for pick."""

import random

import pytest

from fastgw.balance import LeastConn, Peer, RoundRobin, make_balancer
from fastgw.proxy.outcome import Outcome


class ReferenceWRR:
    """nginx's smooth weighted round robin over bare weights, written as plainly as in
    ngx_http_upstream_round_robin.c: the reference the optimized RoundRobin must match."""

    def __init__(self, weights):
        self.weights = list(weights)
        self.current = [0] * len(self.weights)

    def pick(self, available=None):
        best, total = -1, 0
        for i, weight in enumerate(self.weights):
            if weight <= 0 or (available is not None and not available[i]):
                continue
            self.current[i] += weight
            total += weight
            if best < 0 or self.current[i] > self.current[best]:
                best = i
        if best >= 0:
            self.current[best] -= total
        return best


def sequence(weights, n, available=None):
    down = [False] * len(weights) if available is None else [not a for a in available]
    rr = RoundRobin([Peer(f"h{i}:80", w, down=d) for i, (w, d) in enumerate(
        zip(weights, down, strict=True))])
    return "".join("-" if (i := index(rr, rr.pick())) < 0 else "abcdefgh"[i] for _ in range(n))


def index(balancer, peer):
    """The position of a picked peer in the balancer's peers (-1 for None), by identity."""
    if peer is None:
        return -1
    found = [i for i, p in enumerate(balancer.peers) if p is peer]
    assert len(found) == 1, f"pick returned {peer!r}, not one of the balancer's peers"
    return found[0]


def test_nginx_sequence_5_1_1():
    # ngx_http_upstream_round_robin.c with weights 5,1,1 yields a a b a c a a, then repeats
    assert sequence([5, 1, 1], 14) == "aabacaa" * 2


def test_equal_weights_rotate_in_order():
    assert sequence([1, 1, 1], 6) == "abcabc"


def test_weight_zero_is_never_picked():
    assert "b" not in sequence([1, 0, 1], 20)


def test_single_target():
    assert sequence([3], 4) == "aaaa"


def test_no_target_available():
    assert RoundRobin([Peer("a:1", 0), Peer("b:1", 0)]).pick() is None
    assert RoundRobin([Peer("a:1", down=True), Peer("b:1", down=True)]).pick() is None
    assert ReferenceWRR([1, 1]).pick([False, False]) == -1


def test_unavailable_targets_are_skipped_and_shares_hold():
    picks = sequence([2, 1, 1], 399, available=[True, False, True])
    assert "b" not in picks
    assert picks.count("a") == 2 * picks.count("c")


# RoundRobin: the Balancer interface over Peers


def peers(*specs):
    """peers(5, 1, (1, "backup"), (2, "down")) → Peers a, b, c, d."""
    out = []
    for n, spec in enumerate(specs):
        weight, *flags = spec if isinstance(spec, tuple) else (spec,)
        out.append(Peer(f"10.0.0.{n + 1}:80", weight, backup="backup" in flags,
                        down="down" in flags))
    return out


def picks(balancer, n):
    return "".join("-" if (i := index(balancer, balancer.pick())) < 0 else "abcdefgh"[i]
                   for _ in range(n))


def test_rr_nginx_sequence_5_1_1():
    assert picks(RoundRobin(peers(5, 1, 1)), 21) == "aabacaa" * 3


def test_rr_equal_weights_rotate_in_order():
    assert picks(RoundRobin(peers(1, 1, 1)), 6) == "abcabc"


def test_rr_down_and_weight_zero_are_out_of_rotation():
    assert picks(RoundRobin(peers(1, (1, "down"), 1)), 6) == "acacac"
    assert picks(RoundRobin(peers(1, 0, 1)), 6) == "acacac"
    # the others keep nginx's sequence for their own weights
    assert picks(RoundRobin(peers((3, "down"), 5, 0, 1, 1)), 7) == "bbdbebb"


def test_rr_backups_only_when_no_primary_in_rotation():
    assert picks(RoundRobin(peers((9, "backup"), 1, (9, "backup"), 1)), 4) == "bdbd"
    # every primary down or weight 0: the backups, with nginx's sequence for their weights
    assert picks(RoundRobin(peers((1, "down"), (5, "backup"), 0, (1, "backup"), (1, "backup"))),
                 14) == "bbdbebb" * 2


def test_rr_backup_current_weights_are_their_own():
    rr = RoundRobin(peers(1, 1, (2, "backup"), (1, "backup")))
    assert picks(rr, 4) == "abab"
    rr.set_available(0, False)
    rr.set_available(1, False)
    assert picks(rr, 6) == "cdccdc"
    rr.set_available(1, True)  # a primary is back: the backups stop, their state is kept
    assert picks(rr, 2) == "bb"
    rr.set_available(1, False)
    assert picks(rr, 3) == "cdc"


def test_rr_single_peer_needs_no_arithmetic():
    rr = RoundRobin(peers(3, 0, (2, "down"), (4, "backup")))
    assert picks(rr, 5) == "aaaaa"
    assert rr.current == [0, 0, 0, 0]
    assert picks(RoundRobin(peers((1, "down"), (7, "backup"))), 3) == "bbb"


def test_rr_nothing_available():
    assert RoundRobin([]).pick() is None
    assert RoundRobin(peers(0, (1, "down"), (0, "backup"), (1, "backup", "down"))).pick() is None


def test_rr_set_available_keeps_current_weight():
    rr = RoundRobin(peers(1, 1, 1))
    assert picks(rr, 1) == "a"
    rr.set_available(1, False)
    # current weights [-2, 1, 1]: b is skipped and keeps its +1, as nginx skips a failed peer
    assert picks(rr, 4) == "ccac"
    rr.set_available(1, True)
    assert picks(rr, 3) == "bac"


def test_rr_report_changes_nothing_yet():
    a, b = RoundRobin(peers(5, 1, 1)), RoundRobin(peers(5, 1, 1))
    for n in range(20):
        peer = a.pick()
        a.report(peer, Outcome.CONNECT_ERROR if n % 2 else 502, 0.25)
        assert index(a, peer) == index(b, b.pick())


def test_rr_matches_the_weights_only_implementation():
    rng = random.Random(4)
    for _ in range(200):
        weights = [rng.randrange(0, 6) for _ in range(rng.randrange(1, 6))]
        down = [rng.random() < 0.2 for _ in weights]
        pairs = list(zip(weights, down, strict=True))
        rr = RoundRobin([Peer(f"h{i}:80", w, down=d) for i, (w, d) in enumerate(pairs)])
        ref = ReferenceWRR([0 if d else w for w, d in pairs])
        assert [index(rr, rr.pick()) for _ in range(30)] == [ref.pick() for _ in range(30)]


def test_make_balancer():
    ps = peers(2, 1)
    assert isinstance(make_balancer("round_robin", ps), RoundRobin)
    assert isinstance(make_balancer("least_conn", ps), LeastConn)
    with pytest.raises(ValueError, match="unknown balance 'random'"):
        make_balancer("random", ps)


def test_make_balancer_consistent_hash():
    module = pytest.importorskip("fastgw.balance.consistent_hash")
    ps = peers(2, 1)
    balancer = make_balancer("consistent_hash", ps)
    assert isinstance(balancer, module.ConsistentHash)
    # no key: round robin over the same peers, nginx's sequence for weights 2, 1
    # (Peer has identity equality: list.index finds the very object given)
    assert [ps.index(balancer.pick(None)) for _ in range(6)] == [0, 1, 0] * 2
