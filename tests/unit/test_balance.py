"""Smooth weighted round robin must match nginx pick for pick."""

from fastgw.balance import SmoothWeightedRoundRobin


def sequence(weights, n, available=None):
    rr = SmoothWeightedRoundRobin(weights)
    return "".join("abcdefgh"[rr.pick(available)] for _ in range(n))


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
    assert SmoothWeightedRoundRobin([0, 0]).pick() == -1
    assert SmoothWeightedRoundRobin([1, 1]).pick([False, False]) == -1


def test_unavailable_targets_are_skipped_and_shares_hold():
    picks = sequence([2, 1, 1], 399, available=[True, False, True])
    assert "b" not in picks
    assert picks.count("a") == 2 * picks.count("c")
