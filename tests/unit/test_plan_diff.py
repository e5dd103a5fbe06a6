"""describe_changes: the lines a reload plan prints, exact for the simple cases.

Configs are written as YAML and loaded through ``load_config_bytes``, so the diff sees what
the gateway would load (durations in seconds, generated route names). Each case edits a base
text with ``edit``, which fails if the text to replace is missing, so no test passes because
its edit silently did nothing.
"""

from __future__ import annotations

import re

import pytest

from fastgw.balance import make_balancer
from fastgw.balance.peer import Peer
from fastgw.config import Config, load_config_bytes
from fastgw.plan_diff import checksum, describe_changes

BASE = """\
listen: "127.0.0.1:8080"
upstreams:
  blue: {targets: [{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9002"}]}
  green: {targets: [{address: "127.0.0.1:9003"}]}
routes:
  - {name: app, match: {path_prefix: /}, upstream: blue}
"""

CANARY = """\
listen: "127.0.0.1:8080"
upstreams:
  v1: {targets: [{address: "127.0.0.1:9001"}]}
  v2: {targets: [{address: "127.0.0.1:9002"}]}
  v3: {targets: [{address: "127.0.0.1:9003"}]}
routes:
  - name: api
    match: {path_prefix: /api/}
    split: [{upstream: v1, weight: 90}, {upstream: v2, weight: 10}]
  - {name: web, match: {path_prefix: /}, upstream: v1}
"""

# Ketama gives each of these four (equal weight) close to a quarter of the keys, and the
# fifth close to a fifth; other addresses can be a few points off (160 points per weight).
RING = """\
listen: "127.0.0.1:8080"
upstreams:
  users:
    balance: consistent_hash
    hash_on: "header:X-User-Id"
    targets:
      - {address: "10.0.0.1:8000"}
      - {address: "10.0.0.2:8000"}
      - {address: "10.0.0.3:8000"}
      - {address: "10.0.0.4:8000"}
routes:
  - {name: app, match: {path_prefix: /}, upstream: users}
"""

MOVE = re.compile(r"upstream users: (\d+\.\d)% of keys move \(ideal (\d+\.\d)%\)")


def load(text: str) -> Config:
    return load_config_bytes(text.encode(), "x.yaml")


def edit(text: str, *pairs: str) -> str:
    """``text`` with each (old, new) pair replaced once; the old text must be there."""
    for old, new in zip(pairs[::2], pairs[1::2], strict=True):
        assert text.count(old) == 1, f"{old!r} is not in the text exactly once"
        text = text.replace(old, new)
    return text


def diff(old: str, new: str, **options: int) -> list[str]:
    return describe_changes(load(old), load(new), **options)


def test_identical_configs_give_no_changes() -> None:
    assert diff(BASE, BASE) == ["no changes"]
    assert diff(RING, RING) == ["no changes"]


def test_a_pidfile_change_says_it_waits_for_the_next_start() -> None:
    """The master writes its pidfile once: a reload does not move it, and says so."""
    new = edit(BASE, 'listen: "127.0.0.1:8080"\n', 'listen: "127.0.0.1:8080"\npidfile: /run/b.pid\n')
    assert diff(BASE, new) == ["pidfile: none → /run/b.pid (at the next start: the running "
                               "gateway keeps its pidfile)"]


def test_blue_green_switch_of_a_route() -> None:
    new = edit(BASE, "upstream: blue}", "upstream: green}")
    assert diff(BASE, new) == ["route app: upstream blue → green"]


def test_canary_step_lists_only_the_sides_that_changed() -> None:
    step = edit(CANARY, "weight: 90}, {upstream: v2, weight: 10}",
                "weight: 75}, {upstream: v2, weight: 25}")
    assert diff(CANARY, step) == ["route api: split v1 90 → 75, v2 10 → 25"]
    one_side = edit(CANARY, "weight: 90}", "weight: 80}")
    assert diff(CANARY, one_side) == ["route api: split v1 90 → 80"]


def test_split_sides_added_and_removed() -> None:
    added = edit(CANARY, "weight: 10}]", "weight: 10}, {upstream: v3, weight: 5}]")
    assert diff(CANARY, added) == ["route api: split v3 added (5)"]
    swapped = edit(CANARY, "{upstream: v1, weight: 90}", "{upstream: v3, weight: 90}")
    assert diff(CANARY, swapped) == ["route api: split v3 added (90), v1 removed"]


def test_route_between_one_upstream_and_a_split() -> None:
    new = edit(CANARY, "upstream: v1}", "split: [{upstream: v1, weight: 1}, {upstream: v2, "
               "weight: 1}]}")
    assert diff(CANARY, new) == ["route web: upstream v1 → split v1 1, v2 1"]
    assert diff(new, CANARY) == ["route web: split v1 1, v2 1 → upstream v1"]


def test_target_added_and_removed() -> None:
    added = edit(BASE, '{address: "127.0.0.1:9003"}',
                 '{address: "127.0.0.1:9003"}, {address: "127.0.0.1:9004", weight: 3}')
    assert diff(BASE, added) == ["upstream green: target 127.0.0.1:9004 added (weight 3)"]
    backup = edit(BASE, '{address: "127.0.0.1:9003"}',
                  '{address: "127.0.0.1:9003"}, {address: "127.0.0.1:9004", backup: true}')
    assert diff(BASE, backup) == [
        "upstream green: target 127.0.0.1:9004 added (weight 1, backup)"]
    removed = edit(BASE, ', {address: "127.0.0.1:9002"}', "")
    assert diff(BASE, removed) == ["upstream blue: target 127.0.0.1:9002 removed (drains)"]


def test_target_weight_down_and_backup() -> None:
    weight = edit(BASE, '{address: "127.0.0.1:9002"}', '{address: "127.0.0.1:9002", weight: 3}')
    assert diff(BASE, weight) == ["upstream blue: target 127.0.0.1:9002 weight 1 → 3"]
    drained = edit(BASE, '{address: "127.0.0.1:9002"}', '{address: "127.0.0.1:9002", weight: 0}')
    assert diff(BASE, drained) == ["upstream blue: target 127.0.0.1:9002 weight 1 → 0 (drains)"]
    down = edit(BASE, '{address: "127.0.0.1:9002"}', '{address: "127.0.0.1:9002", down: true}')
    assert diff(BASE, down) == ["upstream blue: target 127.0.0.1:9002 down (drains)"]
    assert diff(down, BASE) == ["upstream blue: target 127.0.0.1:9002 up"]
    backup = edit(BASE, '{address: "127.0.0.1:9002"}', '{address: "127.0.0.1:9002", backup: true}')
    assert diff(BASE, backup) == ["upstream blue: target 127.0.0.1:9002 primary → backup"]
    assert diff(backup, BASE) == ["upstream blue: target 127.0.0.1:9002 backup → primary"]


def test_targets_are_identified_by_address_not_position() -> None:
    swapped = edit(BASE, '{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9002"}',
                   '{address: "127.0.0.1:9002"}, {address: "127.0.0.1:9001"}')
    assert diff(BASE, swapped) == ["upstream blue: targets reordered"]


def test_upstream_settings() -> None:
    new = edit(BASE, "blue: {targets:", "blue: {balance: least_conn, keepalive: {max_idle: 64, "
               "idle_timeout: 30s}, targets:")
    assert diff(BASE, new) == [
        "upstream blue: keepalive max_idle 1024 → 64",
        "upstream blue: keepalive idle_timeout 1m → 30s",
        "upstream blue: balance round_robin → least_conn",
    ]
    rehashed = edit(RING, "header:X-User-Id", "cookie:uid")
    assert diff(RING, rehashed) == ["upstream users: hash_on header:X-User-Id → cookie:uid"]


def test_upstream_added_and_removed() -> None:
    new = edit(BASE, "  green: {targets: [{address: \"127.0.0.1:9003\"}]}\n",
               "  canary: {targets: [{address: \"127.0.0.1:9005\"}, {address: "
               "\"127.0.0.1:9006\"}]}\n")
    assert diff(BASE, new) == [
        "upstream added: canary (2 targets, round_robin)",
        "upstream removed: green (drains)",
    ]


def ring_move(old: str, new: str, **options: int) -> tuple[float, float]:
    lines = diff(old, new, **options)
    found = [MOVE.fullmatch(line) for line in lines]
    moves = [m for m in found if m]
    assert len(moves) == 1, lines
    return float(moves[0][1]), float(moves[0][2])


def test_consistent_hash_removing_one_of_four_moves_a_quarter() -> None:
    new = edit(RING, '      - {address: "10.0.0.4:8000"}\n', "")
    assert diff(RING, new)[0] == "upstream users: target 10.0.0.4:8000 removed (drains)"
    measured, ideal = ring_move(RING, new)
    assert ideal == 25.0
    assert abs(measured - 25.0) <= 1.5


def test_consistent_hash_adding_a_fifth_moves_a_fifth() -> None:
    new = edit(RING, '      - {address: "10.0.0.4:8000"}\n',
               '      - {address: "10.0.0.4:8000"}\n      - {address: "10.0.0.5:8000"}\n')
    measured, ideal = ring_move(RING, new)
    assert ideal == 20.0
    assert abs(measured - 20.0) <= 1.5


def test_consistent_hash_move_is_measured_on_the_real_ring() -> None:
    """Removing a target moves exactly the keys the ring gave it: count those independently."""
    keys = [f"key-{i}".encode() for i in range(2000)]
    peers = [Peer(f"10.0.0.{i}:8000") for i in range(1, 5)]
    ring = make_balancer("consistent_hash", peers)
    picked = [ring.pick(key) for key in keys]
    assert all(any(peer is p for p in peers) for peer in picked)
    on_removed = sum(peer.address == "10.0.0.1:8000" for peer in picked)
    new = edit(RING, '      - {address: "10.0.0.1:8000"}\n', "")
    lines = diff(RING, new, sample_keys=2000)
    assert f"upstream users: {on_removed / 20:.1f}% of keys move (ideal 25.0%)" in lines


def test_consistent_hash_weight_change() -> None:
    new = edit(RING, '{address: "10.0.0.4:8000"}', '{address: "10.0.0.4:8000", weight: 2}')
    lines = diff(RING, new)
    assert lines[0] == "upstream users: target 10.0.0.4:8000 weight 1 → 2"
    measured, ideal = ring_move(RING, new)
    assert ideal == 15.0  # three targets go from 1/4 to 1/5 of the traffic
    assert 0.0 < measured < 30.0


def test_consistent_hash_reorder_moves_no_key() -> None:
    new = edit(RING, '- {address: "10.0.0.1:8000"}\n      - {address: "10.0.0.2:8000"}',
               '- {address: "10.0.0.2:8000"}\n      - {address: "10.0.0.1:8000"}')
    assert diff(RING, new) == ["upstream users: targets reordered"]


def test_no_move_line_for_round_robin_upstreams() -> None:
    removed = edit(BASE, ', {address: "127.0.0.1:9002"}', "")
    assert not any("of keys move" in line for line in diff(BASE, removed))


def test_listeners() -> None:
    new = edit(BASE, 'listen: "127.0.0.1:8080"', 'listen: ["127.0.0.1:9090", "[::1]:8080"]')
    assert diff(BASE, new) == [
        "listen added: 127.0.0.1:9090",
        "listen added: [::1]:8080",
        "listen removed: 127.0.0.1:8080",
    ]


def test_settings() -> None:
    new = BASE + (
        "workers: 2\nlog_level: debug\nshutdown_timeout: 10s\npidfile: /run/fastgw.pid\n"
        "timeouts: {client_idle: 90s, upstream_read: 2m}\n"
        "limits: {max_headers: 50, max_body_bytes: 1MiB, underscores_in_headers: true}\n"
    )
    assert diff(BASE, new) == [
        "log_level: info → debug",
        "workers: 1 → 2",
        "pidfile: none → /run/fastgw.pid (at the next start: the running gateway keeps its "
        "pidfile)",
        "shutdown_timeout: 30s → 10s",
        "timeouts.client_idle: 75s → 90s",
        "timeouts.upstream_read: 1m → 2m",
        "limits.max_headers: 100 → 50",
        "limits.max_body_bytes: 64MiB → 1MiB",
        "limits.underscores_in_headers: false → true",
    ]


def test_versioning_is_one_line() -> None:
    new = BASE + 'versioning: {header: X-Api-Version, default: "1"}\n'
    assert diff(BASE, new) == ["versioning changed"]
    other = BASE + 'versioning: {header: X-Api-Version, default: "2"}\n'
    assert diff(new, other) == ["versioning changed"]


def test_routes_added_removed_and_reordered() -> None:
    added = edit(CANARY, "  - {name: web,",
                 "  - {name: beta, match: {host: beta.example.com, path_prefix: /x/, methods: "
                 "[GET]}, upstream: v3}\n  - {name: web,")
    assert diff(CANARY, added) == ["route added: beta (GET beta.example.com/x/* → v3)"]
    assert diff(added, CANARY) == ["route removed: beta"]
    reordered = edit(CANARY, "  - {name: web, match: {path_prefix: /}, upstream: v1}\n", "")
    reordered = edit(reordered, "routes:\n",
                     "routes:\n  - {name: web, match: {path_prefix: /}, upstream: v1}\n")
    assert diff(CANARY, reordered) == ["routes reordered (first match wins)"]


def test_route_added_with_a_split_and_no_path() -> None:
    new = edit(CANARY, "  - {name: web,", "  - {name: all, split: [{upstream: v2, weight: 3}, "
               "{upstream: v3, weight: 1}]}\n  - {name: web,")
    assert diff(CANARY, new) == ["route added: all (everything → split v2 3, v3 1)"]


def test_route_match_rewrites_and_sticky_on() -> None:
    new = edit(CANARY, "match: {path_prefix: /api/}", "match: {path_prefix: /api/v1/}")
    new = edit(new, "    split:", '    sticky_on: "header:X-User-Id"\n    strip_prefix: /api\n'
               "    split:")
    assert diff(CANARY, new) == [
        "route api: match changed",
        "route api: rewrites changed",
        "route api: sticky_on none → header:X-User-Id",
    ]


def test_unnamed_routes_are_compared_by_generated_name() -> None:
    old = edit(BASE, "{name: app, ", "{")
    new = edit(old, "upstream: blue}", "upstream: green}")
    assert diff(old, new) == ["route route-0: upstream blue → green"]


def test_order_of_lines_is_fixed_and_repeatable() -> None:
    """Settings, listeners, upstreams (new order, then removed), routes (then removed)."""
    new = edit(
        CANARY,
        'listen: "127.0.0.1:8080"', 'listen: "127.0.0.1:8081"\nworkers: 4',
        '  v3: {targets: [{address: "127.0.0.1:9003"}]}\n', "",
        '  v1: {targets: [{address: "127.0.0.1:9001"}]}\n',
        '  v1: {targets: [{address: "127.0.0.1:9001", down: true}, {address: "127.0.0.1:9004"}]}\n'
        '  v0: {targets: [{address: "127.0.0.1:9000"}]}\n',
        "{upstream: v2, weight: 10}", "{upstream: v2, weight: 20}",
        "upstream: v1}", "upstream: v0}",
    )
    expected = [
        "workers: 1 → 4",
        "listen added: 127.0.0.1:8081",
        "listen removed: 127.0.0.1:8080",
        "upstream v1: target 127.0.0.1:9001 down (drains)",
        "upstream v1: target 127.0.0.1:9004 added (weight 1)",
        "upstream added: v0 (1 target, round_robin)",
        "upstream removed: v3 (drains)",
        "route api: split v2 10 → 20",
        "route web: upstream v1 → v0",
    ]
    assert diff(CANARY, new) == expected
    assert diff(CANARY, new) == expected


def test_sample_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sample_keys"):
        diff(BASE, BASE, sample_keys=0)


def test_checksum() -> None:
    assert checksum(b"") == "sha256:e3b0c44298fc"
    assert checksum(b"listen: x") != checksum(b"listen: y")
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", checksum(BASE.encode()))
