"""A one-screen, human readable account of a loaded Config, printed by ``fastgw check``.

It shows what the gateway will do with the file (listeners, upstreams, routes in match order,
timeouts, limits), with durations and sizes spelled the way the file accepts them.
"""

from __future__ import annotations

import msgspec

from .schema import Config, Match, Upstream
from .units import Duration, Size, format_duration, format_size

__all__ = ["summarize"]


def summarize(config: Config, filename: str) -> str:
    """Say "OK: FILE" and what the gateway will do with it: one line per upstream and route."""
    lines = [
        f"OK: {filename}",
        f"listen: {', '.join(config.listen)}   log_level: {config.log_level}",
        f"workers: {config.workers}   shutdown_timeout: {format_duration(config.shutdown_timeout)}"
        f"   pidfile: {config.pidfile or 'none'}",
        f"upstreams ({len(config.upstreams)}):",
    ]
    width = max(map(len, config.upstreams), default=0)
    for name, upstream in config.upstreams.items():
        lines.append(f"  {name:<{width}}  {_targets(upstream)}")
    lines.append(f"routes ({len(config.routes)}, first match wins):")
    width = max((len(route.name) for route in config.routes), default=0)
    for route in config.routes:
        lines.append(f"  {route.name:<{width}}  {_match(route.match)} -> {_action(route)}")
    lines.append("timeouts: " + _fields(config.timeouts))
    lines.append("limits: " + _fields(config.limits))
    return "\n".join(lines)


def _targets(upstream: Upstream) -> str:
    targets = ", ".join(_target(t) for t in upstream.targets)
    keepalive = upstream.keepalive
    idle = format_duration(keepalive.idle_timeout)
    balance = upstream.balance
    if upstream.hash_on:
        balance += f" on {upstream.hash_on}"
    return (f"{balance}: {targets}; keepalive max_idle {keepalive.max_idle}, "
            f"idle_timeout {idle}")


def _target(target) -> str:
    notes = [f"weight {target.weight}"]
    if target.backup:
        notes.append("backup")
    if target.down:
        notes.append("down")
    return f"{target.address} ({', '.join(notes)})"


def _action(route) -> str:
    if route.split is None:
        return route.upstream
    sides = ", ".join(f"{e.upstream} {e.weight}" for e in route.split)
    sticky = f", sticky on {route.sticky_on}" if route.sticky_on else ""
    return f"split ({sides}{sticky})"


_MATCH_FIELDS = [field.name for field in msgspec.structs.fields(Match)]  # once: it is slow


def _match(match: Match) -> str:
    parts = [
        f"{name} {getattr(match, name)}"
        for name in _MATCH_FIELDS
        if getattr(match, name) is not None
    ]
    return ", ".join(parts) or "everything"


def _fields(struct: msgspec.Struct) -> str:
    """Each field as "name value", durations and sizes spelled with units."""
    parts = []
    for field in msgspec.structs.fields(struct):
        value = getattr(struct, field.name)
        if field.type is Duration:
            value = format_duration(value)
        elif field.type is Size:
            value = format_size(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"  # as the file spells it
        parts.append(f"{field.name} {value}")
    return ", ".join(parts)


def warnings(config: Config) -> list[str]:
    """What is valid but almost certainly a mistake: routes no request can reach."""
    from ..plan import compile_plan
    from ..routing import shadowed

    routes = config.routes
    found = [
        f"$.routes[{later}] ({routes[later].name}) can never match: "
        f"$.routes[{earlier}] ({routes[earlier].name}) takes every request it would"
        for later, earlier in shadowed(list(compile_plan(config).router.specs))
    ]
    if not config.limits.underscores_in_headers:
        found.extend(_underscore_warnings(config))
    return found


def _underscore_warnings(config: Config) -> list[str]:
    """Header names with "_" that the config reads: the gateway reads them from the request,
    but drops them from what it forwards (limits.underscores_in_headers), which an operator
    used to nginx (where such a header is invisible) may not expect."""
    read = []
    for index, route in enumerate(config.routes):
        for name in route.match.headers or {}:
            read.append((f"$.routes[{index}].match.headers.{name}", name))
        if route.sticky_on and route.sticky_on.startswith("header:"):
            read.append((f"$.routes[{index}].sticky_on", route.sticky_on[7:]))
    if config.versioning is not None and config.versioning.header:
        read.append(("$.versioning.header", config.versioning.header))
    return [f"{where}: {name} has a '_': requests are routed by it, but it is not forwarded "
            f"to the upstream (limits.underscores_in_headers is false)"
            for where, name in read if "_" in name]
