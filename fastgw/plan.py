"""Compile a checked config into an immutable plan: what the data path follows per request.

The plan holds no sockets and no runtime state; compiling the same file twice gives equal
plans, so a later reload can diff them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .routing import CompiledRoute, Router


@dataclass(frozen=True)
class TargetSpec:
    address: str
    host: str
    port: int
    weight: int
    backup: bool = False
    down: bool = False


@dataclass(frozen=True)
class UpstreamSpec:
    name: str
    targets: tuple[TargetSpec, ...]
    max_idle: int
    idle_timeout: float
    balance: str = "round_robin"
    hash_on: str | None = None


@dataclass(frozen=True)
class Plan:
    router: Router
    upstreams: dict[str, UpstreamSpec]


def compile_plan(config) -> Plan:
    routes = [
        CompiledRoute(i, route.name, route.upstream, route.match.host, route.match.path,
                      route.match.path_prefix)
        for i, route in enumerate(config.routes)
    ]
    upstreams = {
        name: UpstreamSpec(
            name=name,
            targets=tuple(TargetSpec(t.address, t.host, t.port, t.weight, t.backup, t.down)
                          for t in up.targets),
            max_idle=up.keepalive.max_idle,
            idle_timeout=up.keepalive.idle_timeout,
            balance=up.balance,
            hash_on=up.hash_on,
        )
        for name, up in config.upstreams.items()
    }
    return Plan(router=Router(routes), upstreams=upstreams)
