"""Compile a checked config into an immutable plan: what the data path follows per request.

The plan holds no sockets and no runtime state: the router (route conditions), per route what
it does (upstream or split, rewrites), per upstream its targets and balancing, and the
version extractor. Compiling the same file twice gives equal plans, so a reload can diff them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .balance.keys import compile_key
from .config.routes import build_versioning
from .rewrite import HeaderEdit, PathEdit
from .routing import HeaderCondition, QueryCondition, Router, RouteSpec
from .split import Split


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


@dataclass(frozen=True, eq=False)
class RouteAction:
    """What a matched route does: send to ``upstream``, or to one side of ``split``, with
    optional rewrites (None when the route has none: the fast forwarding path)."""

    name: str
    upstream: str | None
    split: Split | None
    path_edit: PathEdit | None
    request_edit: HeaderEdit | None
    response_edit: HeaderEdit | None


@dataclass(frozen=True, eq=False)
class Plan:
    router: Router
    routes: tuple[RouteAction, ...]
    upstreams: dict[str, UpstreamSpec]
    versioning: object | None  # fastgw.versioning.Versioning
    unknown_version_default: str | None  # route unknown versions as this one (else 404)


def _conditions(match) -> dict:
    headers = tuple(
        HeaderCondition(name, value=c) if isinstance(c, str)
        else HeaderCondition(name, present=c.present, regex=c.regex)
        for name, c in (match.headers or {}).items()
    )
    query = tuple(
        QueryCondition(name, value=c) if isinstance(c, str)
        else QueryCondition(name, present=c.present)
        for name, c in (match.query or {}).items()
    )
    return {
        "host": match.host, "path": match.path, "path_prefix": match.path_prefix,
        "path_regex": match.path_regex,
        "methods": tuple(m.upper() for m in match.methods) if match.methods else None,
        "headers": headers, "query": query, "version": match.version,
    }


def _action(route, versioning) -> RouteAction:
    split = None
    if route.split is not None:
        split = Split([e.upstream for e in route.split], [e.weight for e in route.split],
                      compile_key(route.sticky_on) if route.sticky_on else None)
    strip_version = versioning.strip_path if route.strip_version and versioning else None
    path_edit = None
    if route.strip_prefix or route.replace_prefix or strip_version:
        replace = route.replace_prefix
        path_edit = PathEdit(route.strip_prefix, replace.from_ if replace else None,
                             replace.to if replace else None, strip_version)

    def edit(rewrite):
        return HeaderEdit(rewrite.set, rewrite.add, rewrite.remove) if rewrite else None

    return RouteAction(route.name, route.upstream, split, path_edit,
                       edit(route.request_headers), edit(route.response_headers))


def compile_plan(config) -> Plan:
    versioning = build_versioning(config.versioning) if config.versioning else None
    specs = [RouteSpec(index=i, name=route.name, **_conditions(route.match))
             for i, route in enumerate(config.routes)]
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
    unknown_default = None
    if config.versioning is not None and config.versioning.unknown == "default":
        unknown_default = config.versioning.default
    return Plan(
        router=Router(specs),
        routes=tuple(_action(route, versioning) for route in config.routes),
        upstreams=upstreams,
        versioning=versioning,
        unknown_version_default=unknown_default,
    )
