"""What a reload from one loaded Config to another would change, as short grep-able lines.

Sans-IO: it compares two Configs already in memory; it reads no file, prints nothing and needs
no clock. Identity is by name (upstreams, routes) and by address (targets), so an edit that
only reorders shows up as "reordered", never as removals and additions. For consistent-hash
upstreams it measures the share of keys that move by running sample keys through the real
balancer, next to the least share any change of those weights would have to move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from fractions import Fraction

import msgspec

from .balance import make_balancer
from .balance.peer import Peer
from .config.schema import Config, Match, Route, SplitEntry, Target, Upstream
from .config.units import Duration, Size, format_duration, format_size

__all__ = ["checksum", "describe_changes"]

SECTIONS = ("timeouts", "limits")  # top-level Structs reported one line per changed field
REWRITES = ("strip_prefix", "replace_prefix", "strip_version", "request_headers",
            "response_headers")
ROUTE_FIELDS_WITH_OWN_LINES = {"name", "match", "upstream", "split", "sticky_on", *REWRITES}


def describe_changes(old: Config, new: Config, sample_keys: int = 20_000) -> list[str]:
    """One line per change from ``old`` to ``new``, or ``["no changes"]``.

    Order is fixed: settings, listeners, upstreams (new-config order, then removed ones),
    routes. ``sample_keys`` is how many keys measure a consistent-hash remap.
    """
    if sample_keys < 1:
        raise ValueError(f"sample_keys must be at least 1, got {sample_keys}")
    lines = [
        *_settings(old, new),
        *_listeners(old.listen, new.listen),
        *_upstreams(old.upstreams, new.upstreams, sample_keys),
        *_routes(old.routes, new.routes),
    ]
    return lines or ["no changes"]


def checksum(data: bytes) -> str:
    """A short fingerprint of a config file's bytes, to say which file a plan was made from."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


def _show(value: object, kind: object = None) -> str:
    """A value the way the config file spells it: "30s", "64MiB", "none" for unset."""
    if value is None:
        return "none"
    if kind is Duration:
        return format_duration(value)  # type: ignore[arg-type]
    if kind is Size:
        return format_size(value)  # type: ignore[arg-type]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_plain(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float))


def _field_changes(old: msgspec.Struct, new: msgspec.Struct) -> Iterator[tuple[str, str, str]]:
    """(field, old text, new text) for each field that differs between two Structs."""
    for field in msgspec.structs.fields(old):
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before != after:
            yield field.name, _show(before, field.type), _show(after, field.type)


def _struct_lines(old: msgspec.Struct, new: msgspec.Struct, skip: tuple[str, ...],
                  nested: Callable[[str, object], bool], sep: tuple[str, str]
                  ) -> Iterator[str]:
    """A line per field that differs between two Structs of one type (``skip`` aside):
    the fields of a nested Struct one by one (where ``nested(name, value)``), plain values as
    "was → now", anything else as "changed". ``sep``: after the name, before a nested field's
    name and before the values ("timeouts.client_idle: ..." vs "keepalive max_idle ...")."""
    for field in msgspec.structs.fields(old):
        name = field.name
        before, after = getattr(old, name), getattr(new, name)
        if name in skip or before == after:
            continue
        if nested(name, before) and type(before) is type(after):
            for part, was, now in _field_changes(before, after):
                yield f"{name}{sep[0]}{part}{sep[1]} {was} → {now}"
        elif _is_plain(before) and _is_plain(after):
            yield f"{name}{sep[1]} {_show(before, field.type)} → {_show(after, field.type)}"
        else:
            yield f"{name} changed"


AT_START = {"pidfile": "the running gateway keeps its pidfile"}  # settings read once


def _settings(old: Config, new: Config) -> Iterator[str]:
    for line in _struct_lines(old, new, ("listen", "upstreams", "routes"),
                              lambda name, _value: name in SECTIONS, (".", ":")):
        name = line.partition(":")[0]
        if name in AT_START:
            line += f" (at the next start: {AT_START[name]})"
        yield line


def _listeners(old: list[str], new: list[str]) -> Iterator[str]:
    yield from (f"listen added: {address}" for address in new if address not in old)
    yield from (f"listen removed: {address}" for address in old if address not in new)


def _upstreams(
    old: dict[str, Upstream], new: dict[str, Upstream], sample_keys: int
) -> Iterator[str]:
    for name, upstream in new.items():
        was = old.get(name)
        if was is None:
            count = len(upstream.targets)
            targets = f"{count} target" + ("" if count == 1 else "s")
            yield f"upstream added: {name} ({targets}, {upstream.balance})"
        elif was != upstream:
            for change in _upstream_changes(was, upstream, sample_keys):
                yield f"upstream {name}: {change}"
    yield from (f"upstream removed: {name} (drains)" for name in old if name not in new)


def _upstream_changes(old: Upstream, new: Upstream, sample_keys: int) -> Iterator[str]:
    yield from _struct_lines(old, new, ("targets",),
                             lambda _name, value: isinstance(value, msgspec.Struct), (" ", ""))
    yield from _target_changes(old.targets, new.targets)
    if _ring_moves(old, new):
        yield _key_moves(old.targets, new.targets, sample_keys)


def _target_changes(old: list[Target], new: list[Target]) -> Iterator[str]:
    before = {target.address: target for target in old}
    after = {target.address: target for target in new}
    for target in new:
        was = before.get(target.address)
        if was is None:
            notes = [f"weight {target.weight}"] + [
                note for note, on in (("backup", target.backup), ("down", target.down)) if on]
            yield f"target {target.address} added ({', '.join(notes)})"
        else:
            yield from (f"target {target.address} {change}" for change in _state(was, target))
    yield from (f"target {t.address} removed (drains)" for t in old if t.address not in after)
    if [a for a in before if a in after] != [a for a in after if a in before]:
        yield "targets reordered"


def _state(old: Target, new: Target) -> Iterator[str]:
    """How one target's place in the rotation changes: weight, down/up, backup/primary."""
    if old.weight != new.weight:
        yield f"weight {old.weight} → {new.weight}" + (" (drains)" if new.weight == 0 else "")
    if old.down != new.down:
        yield "down (drains)" if new.down else "up"
    if old.backup != new.backup:
        yield "primary → backup" if new.backup else "backup → primary"


def _ring_moves(old: Upstream, new: Upstream) -> bool:
    """Whether keys of a consistent-hash upstream can land elsewhere after the reload.

    Not reported when ``hash_on`` changes too: the keys themselves are different then.
    """
    hashed = old.balance == new.balance == "consistent_hash" and old.hash_on == new.hash_on
    return hashed and _ring(old.targets) != _ring(new.targets)


def _ring(targets: list[Target]) -> dict[str, tuple[int, bool, bool]]:
    """What the ring is built from, by address: list order moves no key."""
    return {t.address: (t.weight, t.backup, t.down) for t in targets}


def _key_moves(old: list[Target], new: list[Target], sample_keys: int) -> str:
    """ "24.8% of keys move (ideal 25.0%)": measured on sample keys, and the least possible."""
    keys = [f"key-{i}".encode() for i in range(sample_keys)]
    before, after = _owners(old, keys), _owners(new, keys)
    moved = Fraction(sum(was != now for was, now in zip(before, after, strict=True)), sample_keys)
    return f"{_percent(moved)} of keys move (ideal {_percent(_ideal(old, new))})"


def _owners(targets: list[Target], keys: list[bytes]) -> list[str | None]:
    """The address each key goes to (None: no target available), picked by the real balancer.

    Keys are never empty, so the ring answers and the round-robin fallback only when 21 ring
    points in a row belong to unavailable targets, as in the gateway.
    """
    peers = [Peer(t.address, t.weight, t.backup, t.down) for t in targets]
    balancer = make_balancer("consistent_hash", peers)
    picks = (balancer.pick(key) for key in keys)
    return [peer.address if peer is not None else None for peer in picks]


def _shares(targets: list[Target]) -> dict[str, Fraction]:
    """Each address's share of traffic: weight over the total of primaries in rotation."""
    live = [t for t in targets if not t.backup and not t.down and t.weight > 0]
    total = sum(t.weight for t in live)
    return {t.address: Fraction(t.weight, total) for t in live}


def _ideal(old: list[Target], new: list[Target]) -> Fraction:
    """The least share of keys that must move: total variation distance of the shares."""
    before, after = _shares(old), _shares(new)
    return sum((max(Fraction(0), share - after.get(address, 0))
                for address, share in before.items()), Fraction(0))


def _percent(share: Fraction) -> str:
    return f"{float(share * 100):.1f}%"


def _routes(old: list[Route], new: list[Route]) -> Iterator[str]:
    before = {route.name: route for route in old}
    after = {route.name: route for route in new}
    for route in new:
        was = before.get(route.name)
        if was is None:
            yield f"route added: {route.name} ({_where(route.match)} → {_action(route)})"
        elif was != route:
            yield from (f"route {route.name}: {change}" for change in _route_changes(was, route))
    yield from (f"route removed: {route.name}" for route in old if route.name not in after)
    if [name for name in before if name in after] != [name for name in after if name in before]:
        yield "routes reordered (first match wins)"


def _route_changes(old: Route, new: Route) -> Iterator[str]:
    if old.split is not None and new.split is not None:
        if old.split != new.split:
            yield "split " + _split_changes(old.split, new.split)
    elif old.split is None and new.split is None:
        if old.upstream != new.upstream:
            yield f"upstream {old.upstream} → {new.upstream}"
    else:  # one upstream <-> a split
        yield f"{_destination(old)} → {_destination(new)}"
    if old.match != new.match:
        yield "match changed"
    if any(getattr(old, name) != getattr(new, name) for name in REWRITES):
        yield "rewrites changed"
    if old.sticky_on != new.sticky_on:
        yield f"sticky_on {_show(old.sticky_on)} → {_show(new.sticky_on)}"
    if any(getattr(old, field.name) != getattr(new, field.name)
           for field in msgspec.structs.fields(Route)
           if field.name not in ROUTE_FIELDS_WITH_OWN_LINES):
        yield "changed"


def _split_changes(old: list[SplitEntry], new: list[SplitEntry]) -> str:
    """ "v1 90 → 75, v3 added (5), v2 removed": only the sides that changed."""
    before = {entry.upstream: entry.weight for entry in old}
    after = {entry.upstream: entry.weight for entry in new}
    parts = []
    for name, weight in after.items():
        if name not in before:
            parts.append(f"{name} added ({weight})")
        elif before[name] != weight:
            parts.append(f"{name} {before[name]} → {weight}")
    parts += [f"{name} removed" for name in before if name not in after]
    return ", ".join(parts) or "reordered"


def _action(route: Route) -> str:
    """Where a route sends requests: "v2", or "split v1 90, v2 10"."""
    if route.split is None:
        return str(route.upstream)
    return "split " + ", ".join(f"{entry.upstream} {entry.weight}" for entry in route.split)


def _destination(route: Route) -> str:
    """ "upstream blue" or "split v1 90, v2 10", for a route that changes from one to the other."""
    return _action(route) if route.split is not None else f"upstream {route.upstream}"


def _where(match: Match) -> str:
    """A short account of what a route takes: "GET api.example.com/beta/* +headers"."""
    path = match.path or (match.path_prefix and f"{match.path_prefix}*") or (
        match.path_regex and f"~{match.path_regex}") or ""
    text = (match.host or "") + path or "everything"
    if match.methods:
        text = f"{','.join(match.methods)} {text}"
    extras = [f"+{name}" for name in ("headers", "query", "version") if getattr(match, name)]
    return " ".join([text, *extras])
