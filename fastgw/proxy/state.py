"""What the protocols of one worker share: the plan, runtime targets, limits and a coarse clock.

The clock (``now``) is refreshed by the worker's tick, so the hot path never calls time();
deadlines are checked by the same tick instead of one timer handle per request.
"""

from __future__ import annotations

from .. import _core
from ..plan import Plan, UpstreamSpec
from ..steps import request_steps, response_steps
from ..upstream.pool import Pool
from ..upstream.target import Target, UpstreamGroup

# Write buffer limits, set explicitly on every transport (uvloop's default low-water mark is
# 16 bytes, which would resume a paused peer only when the buffer is nearly empty).
WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024


class RouteRuntime:
    """A plan's route bound to this worker's upstream groups, with its compiled steps."""

    __slots__ = ("name", "group", "split", "groups", "request_steps", "response_steps")

    def __init__(self, action, groups: dict[str, UpstreamGroup], versioning=None) -> None:
        self.name = action.name
        self.group = groups[action.upstream] if action.upstream is not None else None
        self.split = action.split
        self.groups = [groups[name] for name in action.split.names] if action.split else None
        self.request_steps = request_steps(action)
        self.response_steps = response_steps(action, versioning)

    def upstream_for(self, head, client_ip: bytes) -> UpstreamGroup:
        if self.split is None:
            return self.group
        return self.groups[self.split.choose(head, client_ip)]


class ProxyState:
    """One worker's view of the plan, swapped whole by ``apply`` between two callbacks."""

    def __init__(self, loop, config, plan: Plan) -> None:
        self.loop = loop
        self.now = loop.time()
        self.write_high = WRITE_HIGH
        self.write_low = WRITE_LOW
        self.clients: set = set()
        self.closing = False
        # called with every Exchange once it ends (exchange.finish): counters, the access log
        self.finishers: tuple = ()
        self.specs: dict[str, UpstreamSpec] = {}
        self.groups: dict[str, UpstreamGroup] = {}
        self.apply(config, plan)

    def apply(self, config, plan: Plan) -> None:
        """Serve ``plan`` from the next request on (a reload). What did not change carries
        over: an unchanged upstream keeps its balancer (and its position), a target that stays
        keeps its pool; removed or drained targets get no new requests, their idle
        connections close now and the ones in flight close when their response is done."""
        limits = config.limits
        timeouts = config.timeouts
        self.parser = _core.RequestParser(limits.max_request_line, limits.max_header_bytes,
                                          limits.max_headers, limits.underscores_in_headers)
        self.response_parser = _core.ResponseParser(max(limits.max_header_bytes, 65536),
                                                    max(limits.max_headers, 200))
        self.max_body = limits.max_body_bytes
        self.request_buffer = limits.request_buffer
        self.header_timeout = timeouts.client_header
        self.idle_timeout = timeouts.client_idle
        self.connect_timeout = timeouts.upstream_connect
        self.read_timeout = timeouts.upstream_read
        self.send_timeout = timeouts.client_send
        self.shutdown_timeout = config.shutdown_timeout

        old_groups = self.groups
        # one Target per (upstream, address) for as long as the address stays in the plan:
        # its pool and in-flight count carry over, its settings follow the new plan
        old_targets = {(name, t.address): t for name, g in old_groups.items() for t in g.targets}
        groups: dict[str, UpstreamGroup] = {}
        for name, spec in plan.upstreams.items():
            if self.specs.get(name) == spec:
                groups[name] = old_groups[name]
                continue
            targets = []
            for t in spec.targets:
                target = old_targets.get((name, t.address))
                if target is None:
                    target = Target(t.address, t.host, t.port, t.weight,
                                    Pool(spec.max_idle, spec.idle_timeout), t.backup, t.down)
                else:
                    target.weight, target.backup, target.down = t.weight, t.backup, t.down
                target.pool.idle_timeout = spec.idle_timeout
                target.pool.limit(spec.max_idle if t.weight > 0 and not t.down else 0)
                targets.append(target)
            groups[name] = UpstreamGroup(name, targets, spec.balance, spec.hash_on,
                                         previous=old_groups.get(name))
        kept = {id(t) for g in groups.values() for t in g.targets}
        for target in old_targets.values():
            if id(target) not in kept:  # its target is gone: drain
                target.pool.limit(0)
        self.specs = dict(plan.upstreams)
        self.groups = groups
        # per route, what it does, with upstream names resolved to groups once
        self.routes = [RouteRuntime(action, groups, plan.versioning) for action in plan.routes]
        self.router = plan.router
        self.versioning = plan.versioning
        self.unknown_version_default = plan.unknown_version_default

    def tick(self) -> None:
        """Advance the clock, fire expired deadlines, expire idle pooled connections."""
        now = self.now = self.loop.time()
        for client in [c for c in self.clients if 0 < c.deadline <= now]:
            client.on_deadline()
        for group in self.groups.values():
            for target in group.targets:
                if target.pool.idle:
                    target.pool.expire(now)

    def pools(self):
        for group in self.groups.values():
            for target in group.targets:
                yield target.pool
