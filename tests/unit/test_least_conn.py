"""Weighted least connections must follow nginx's least_conn module, including its ties."""

from fastgw.balance import LeastConn, Peer
from fastgw.proxy.outcome import Outcome

OK, FAILED = 200, Outcome.CONNECT_ERROR  # a response status; a failure kind


def peers(*specs):
    """peers(3, 1, (1, "backup"), (2, "down")) → Peers a, b, c, d."""
    out = []
    for n, spec in enumerate(specs):
        weight, *flags = spec if isinstance(spec, tuple) else (spec,)
        out.append(Peer(f"10.0.0.{n + 1}:80", weight, backup="backup" in flags,
                        down="down" in flags))
    return out


def index(balancer, peer):
    """The position of a picked peer in the balancer's peers (-1 for None), by identity."""
    if peer is None:
        return -1
    found = [i for i, p in enumerate(balancer.peers) if p is peer]
    assert len(found) == 1, f"pick returned {peer!r}, not one of the balancer's peers"
    return found[0]


def picks(balancer, n, report=False):
    out = []
    for _ in range(n):
        peer = balancer.pick()
        i = index(balancer, peer)
        out.append("-" if i < 0 else "abcdefgh"[i])
        if report and i >= 0:
            balancer.report(peer, OK, 0.01)
    return "".join(out)


def report(balancer, i, outcome=OK):
    balancer.report(balancer.peers[i], outcome, 0.01)


def set_active(balancer, counts):
    """In-flight counts live on the peers (``conns`` is a read-only view of them)."""
    for peer, count in zip(balancer.peers, counts, strict=True):
        peer.active = count


def test_in_flight_requests_follow_the_weights():
    lc = LeastConn(peers(3, 1, 1))
    # worked by hand from ngx_http_upstream_get_least_conn_peer
    assert picks(lc, 10) == "abcaacabaa"
    assert lc.conns == [6, 2, 2]


def test_the_emptied_peer_is_picked_next():
    lc = LeastConn(peers(3, 1, 1))
    picks(lc, 10)
    report(lc, 1, OK)
    report(lc, 1, FAILED)  # a failure ends the request too
    assert lc.conns == [6, 0, 2]
    assert picks(lc, 1) == "b"
    assert lc.conns == [6, 1, 2]


def test_weights_are_compared_as_cross_products():
    lc = LeastConn(peers(2, 1))
    set_active(lc, [3, 1])  # 3/2 > 1/1
    assert picks(lc, 1) == "b"
    set_active(lc, [1, 1])  # 1/2 < 1/1
    assert picks(lc, 1) == "a"


def test_ties_follow_smooth_weighted_round_robin():
    # every request ends before the next: always all tied, so nginx's WRR sequence
    assert picks(LeastConn(peers(5, 1, 1)), 14, report=True) == "aabacaa" * 2
    assert picks(LeastConn(peers(1, 1, 1)), 6, report=True) == "abcabc"


def test_only_the_tied_peers_move_in_the_rotation():
    lc = LeastConn(peers(1, 1, 1))
    set_active(lc, [1, 0, 0])  # b and c tie; a is busier and keeps its current weight
    assert picks(lc, 1) == "b"
    assert lc.current == [0, -1, 1]
    set_active(lc, [0, 0, 0])
    assert picks(lc, 3, report=True) == "cab"


def test_report_never_goes_below_zero():
    lc = LeastConn(peers(1, 1))
    report(lc, 0, OK)
    report(lc, 1, FAILED)
    assert lc.conns == [0, 0]
    assert index(lc, lc.pick()) == 0
    report(lc, 0, OK)
    report(lc, 0, OK)
    assert lc.conns == [0, 0]


def test_down_and_weight_zero_are_out_of_rotation():
    lc = LeastConn(peers(1, (1, "down"), 0, 1))
    # untied picks leave the tie-break weights alone (nginx), hence not strictly alternating
    assert picks(lc, 8) == "addaadda"
    assert lc.conns == [4, 0, 0, 4]


def test_backups_only_when_no_primary_in_rotation():
    assert picks(LeastConn(peers((1, "backup"), 1, 1)), 4) == "bccb"
    lc = LeastConn(peers((1, "down"), (2, "backup"), 0, (1, "backup")))
    assert picks(lc, 6) == "bdbdbb"
    assert lc.conns == [0, 4, 0, 2]


def test_set_available_moves_traffic_and_in_flight_still_ends():
    lc = LeastConn(peers(1, 1, (1, "backup")))
    assert picks(lc, 2) == "ab"
    lc.set_available(0, False)
    assert picks(lc, 2) == "bb"
    lc.set_available(1, False)
    assert picks(lc, 1) == "c"
    report(lc, 0)
    assert lc.conns == [0, 3, 1]
    lc.set_available(0, True)
    assert picks(lc, 1) == "a"


def test_single_peer_counts_in_flight():
    lc = LeastConn(peers(4, 0, (1, "backup")))
    assert picks(lc, 3) == "aaa"
    assert lc.conns == [3, 0, 0]
    report(lc, 0)
    assert lc.conns == [2, 0, 0]
    assert lc.current == [0, 0, 0]


def test_nothing_available():
    assert LeastConn([]).pick() is None
    lc = LeastConn(peers(0, (1, "down"), (1, "backup", "down")))
    assert lc.pick() is None
    assert lc.conns == [0, 0, 0]


def test_deterministic():
    def run():
        lc = LeastConn(peers(3, 2, 1, (1, "backup")))
        out = []
        for n in range(200):
            i = index(lc, lc.pick())
            out.append(i)
            if n % 3:
                report(lc, out[n // 2], OK if n % 5 != 0 else Outcome.TIMEOUT)
        return out, lc.conns

    assert run() == run()
