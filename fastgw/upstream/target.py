"""Targets (one upstream server address each) and upstream groups that pick among them."""

from __future__ import annotations

from ..balance import make_balancer
from ..balance.keys import compile_key
from .pool import Pool


CONNECT_LOG_EVERY = 5.0  # seconds between two "connect failed" lines for one target


class Target:
    """One server of an upstream, with its connection pool. Identity: the address string.

    A target is also the balancer's peer (address, weight, backup, down, active), so a pick
    returns the target itself. The worker keeps one Target per (upstream, address) across
    reloads: its pool and its in-flight count carry over; weight, backup and down follow the
    newest plan."""

    __slots__ = ("address", "address_bytes", "host", "port", "weight", "backup", "down",
                 "active", "pool", "connect_failures", "connect_logged_at")

    def __init__(self, address: str, host: str, port: int, weight: int, pool: Pool,
                 backup: bool = False, down: bool = False) -> None:
        self.address = address
        self.address_bytes = address.encode()  # the Host sent when the client gave none
        self.host = host
        self.port = port
        self.weight = weight
        self.backup = backup
        self.down = down
        self.active = 0  # attempts picked and not yet reported (least_conn reads it)
        self.pool = pool
        self.connect_failures = 0  # failed connects not logged yet
        self.connect_logged_at = float("-inf")

    def connect_failed(self, now: float) -> int:
        """Count a failed connect; how many to log now, or 0 to stay quiet: one line per
        target every CONNECT_LOG_EVERY seconds, so a dead target (or a client pipelining
        thousands of requests to it) cannot flood the log."""
        self.connect_failures += 1
        if now - self.connect_logged_at < CONNECT_LOG_EVERY:
            return 0
        count, self.connect_failures = self.connect_failures, 0
        self.connect_logged_at = now
        return count

    @property
    def in_rotation(self) -> bool:
        return self.weight > 0 and not self.down


class UpstreamGroup:
    """A named upstream: its targets and the balancer that picks one per attempt."""

    __slots__ = ("name", "targets", "balancer", "key")

    def __init__(self, name: str, targets: list[Target], balance: str = "round_robin",
                 hash_on: str | None = None, previous: UpstreamGroup | None = None) -> None:
        self.name = name
        self.targets = targets
        self.balancer = make_balancer(balance, targets)
        if previous is not None:  # a reload changed this upstream: keep positions by address
            self.balancer.carry_over(previous.balancer)
        self.key = compile_key(hash_on) if hash_on else None

    def pick(self, head, client_ip: bytes, exclude=None) -> Target | None:
        """The target for this attempt, or None when none is available; targets in
        ``exclude`` (already tried by the request) only when no other is."""
        key = self.key
        return self.balancer.pick(key(head, client_ip) if key is not None else None, exclude)
