"""Scenario 5, ``routes-1k``: 1,000 routes and one consistent-hash upstream keyed by a header.

Both proxies get the same table and the same upstream:

- 900 host-less routes ``path_prefix: /svc{i}/`` (nginx: ``location /svc{i}/``) and 100
  host routes ``host: t{k}.example.com`` + ``path_prefix: /api/`` (nginx: one ``server`` block
  per host with ``location /api/``), all to one upstream;
- the upstream: ``balance: consistent_hash``, ``hash_on: "header:X-User-Id"`` (nginx:
  ``hash $http_x_user_id consistent``) over ``TARGETS`` backend ports, the target addresses
  written identically (``127.0.0.1:PORT``), so both pick the same port for the same user;
- the backend nginx listens on those ports too and names the port that answered in an
  ``X-Backend-Port`` response header.

The wrk script cycles through ``REQUESTS`` precomputed requests (deterministic: every route,
10,000 distinct X-User-Id values, one request in ten to a host route). Before measuring,
``precheck`` sends a sample of the same requests through both proxies: every one must get 200
from a target port, and both proxies must pick the same port for the same request.
"""

from __future__ import annotations

import http.client
import sys
from pathlib import Path

from .procs import Server, ServerError, free_port
from .scenarios import DONE_HOOK
from .servers import REPO, SMALL_BODY, _nginx_common, _nginx_http_common, _nginx_prefix, \
    _start_nginx

PATH_ROUTES = 900
HOST_ROUTES = 100
ROUTES = PATH_ROUTES + HOST_ROUTES
TARGETS = 4
USERS = 10_000
REQUESTS = 4_000
PROXIES = ("fastgw", "nginx")
READY_PATH = "/svc0/ready"
HASH_HEADER = "X-User-Id"
PORT_HEADER = "X-Backend-Port"


def requests() -> list[tuple[str | None, str, str]]:
    """The request cycle: (Host or None for the default, path, X-User-Id), deterministic.

    Request j goes to route (j * 7919) mod 1000 (a permutation: every route once per 1,000
    requests, neighbours far apart) with user (j * 104729) mod 10000."""
    out = []
    for j in range(REQUESTS):
        route = (j * 7919) % ROUTES
        user = f"user-{(j * 104729 + 17) % USERS:05d}"
        if route < PATH_ROUTES:
            out.append((None, f"/svc{route}/items/{j % 97}", user))
        else:
            out.append((f"t{route - PATH_ROUTES}.example.com", f"/api/orders/{j % 89}", user))
    return out


def lua() -> str:
    """wrk script: the requests above, built once per thread in ``init``, sent in a cycle."""
    rows = []
    for host, path, user in requests():
        host_lua = f'"{host}"' if host else "nil"
        rows.append(f'{{{host_lua},"{path}","{user}"}}')
    table = ",\n".join(rows)
    return f"""-- routes-1k: {REQUESTS} requests over {ROUTES} routes and {USERS} X-User-Id values
local spec = {{
{table}
}}
local reqs = {{}}
local n = 0
local i = 0

init = function(args)
  local default_host = wrk.headers["Host"]
  for _, s in ipairs(spec) do
    n = n + 1
    reqs[n] = wrk.format("GET", s[2], {{["Host"] = s[1] or default_host, ["{HASH_HEADER}"] = s[3]}})
  end
end

request = function()
  i = i % n + 1
  return reqs[i]
end
{DONE_HOOK}"""


# -- configs ---------------------------------------------------------------------------------


def backend_block(ports: list[int]) -> str:
    """Server block for the backend nginx: the target ports, each naming itself in a header."""
    listens = "".join(f"    listen 127.0.0.1:{p} backlog=4096;\n" for p in ports)
    return f"""  server {{
{listens}    default_type text/plain;
    add_header {PORT_HEADER} $server_port always;
    location / {{ return 200 "{SMALL_BODY.rstrip()}\\n"; }}
  }}
"""


def _fastgw(run_dir: Path, port: int, targets: list[int]) -> Server:
    lines = [f'listen: "127.0.0.1:{port}"', "log_level: info", "upstreams:", "  u:",
             "    balance: consistent_hash", f'    hash_on: "header:{HASH_HEADER}"',
             "    targets:"]
    lines += [f'      - {{address: "127.0.0.1:{p}"}}' for p in targets]
    lines += ["    keepalive: {max_idle: 2048, idle_timeout: 60s}", "routes:"]
    # host routes first: a host-less /svc{i}/ route would not take their /api/ paths anyway
    lines += [f"  - {{name: t{k}-api, match: {{host: t{k}.example.com, path_prefix: /api/}}, "
              "upstream: u}" for k in range(HOST_ROUTES)]
    lines += [f"  - {{name: svc{i}, match: {{path_prefix: /svc{i}/}}, upstream: u}}"
              for i in range(PATH_ROUTES)]
    lines.append("timeouts: {client_idle: 300s}")
    conf = run_dir / "fastgw-routes.yaml"
    conf.write_text("\n".join(lines) + "\n")
    return Server("fastgw", [sys.executable, "-m", "fastgw", "run", "-c", str(conf)],
                  run_dir / "fastgw.log", port, env={"FASTGW_PURE": ""}, cwd=str(REPO))


def _nginx(run_dir: Path, port: int, targets: list[int]) -> Server:
    prefix = _nginx_prefix(run_dir, "nginx-proxy")
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in targets)
    locations = "".join(f"    location /svc{i}/ {{ proxy_pass http://u; }}\n"
                        for i in range(PATH_ROUTES))
    hosts = "".join(f"  server {{\n    listen 127.0.0.1:{port};\n"
                    f"    server_name t{k}.example.com;\n"
                    "    location /api/ { proxy_pass http://u; }\n  }\n"
                    for k in range(HOST_ROUTES))
    conf = _nginx_common(prefix) + f"""http {{
{_nginx_http_common(prefix)}  client_max_body_size 64m;
  server_names_hash_bucket_size 64;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  upstream u {{
    hash $http_x_user_id consistent;
{servers}    keepalive 256;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }}
  server {{
    listen 127.0.0.1:{port} default_server backlog=4096;
{locations}  }}
{hosts}}}
"""
    return _start_nginx("nginx", prefix, conf, port)


def start_proxy(name: str, run_dir: Path, targets: list[int]) -> Server:
    """Start fastgw or nginx with the 1,000-route table; wait until a route answers 200."""
    start = {"fastgw": _fastgw, "nginx": _nginx}[name]
    server = start(run_dir, free_port(), targets)
    try:
        server.wait_ready(READY_PATH)
        if name == "fastgw" and "parser: compiled" not in server.log_tail(50):
            raise ServerError(f"fastgw: startup log does not say 'parser: compiled':\n"
                              f"{server.log_tail()}")
    except ServerError:
        server.stop()
        raise
    return server


# -- the check before measuring --------------------------------------------------------------


def _get(port: int, host: str | None, path: str, user: str | None) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Host": host or f"127.0.0.1:{port}"}
        if user is not None:
            headers[HASH_HEADER] = user
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader(PORT_HEADER)
    finally:
        conn.close()


def precheck(servers: dict[str, Server], targets: list[int], sample: int = 200) -> dict:
    """Send ``sample`` of the wrk requests (every ``REQUESTS // sample``-th, host routes
    included) through each proxy: each must answer 200 from one of ``targets``; where both
    proxies run, they must pick the same target port for every request. Also: a path no
    route takes gets 404 from each. Raises AssertionError on any failure; returns counts."""
    reqs = requests()[:: max(1, REQUESTS // sample)]
    picks: dict[str, list[int]] = {}
    for name, server in servers.items():
        got = []
        for host, path, user in reqs:
            status, port = _get(server.port, host, path, user)
            assert status == 200, f"{name}: {host or ''}{path} ({user}) answered {status}"
            assert port is not None and int(port) in targets, \
                f"{name}: {host or ''}{path} ({user}) answered from port {port!r}"
            got.append(int(port))
        status, _ = _get(server.port, None, "/nosuch/route", "user-00001")
        assert status == 404, f"{name}: /nosuch/route answered {status}, not 404"
        picks[name] = got
    out: dict = {"requests": len(reqs), "targets": len(targets),
                 "ports_used": {name: len(set(p)) for name, p in picks.items()}}
    for name, got in picks.items():
        assert len(set(got)) == len(targets), \
            f"{name}: {len(reqs)} requests reached only {len(set(got))} of {len(targets)} targets"
    if len(picks) == 2:
        a, b = picks.values()
        disagree = [(r, x, y) for r, x, y in zip(reqs, a, b, strict=True) if x != y]
        out["hash_agreement"] = f"{len(reqs) - len(disagree)}/{len(reqs)}"
        assert not disagree, ("fastgw and nginx picked different targets for "
                              f"{len(disagree)} of {len(reqs)} requests, e.g. {disagree[:3]}")
    return out
