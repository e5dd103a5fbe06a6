"""The backend and every proxy measured: their configuration files and how each one starts.

One nginx backend (``worker_processes 1``) answers a small body on every path (GET or POST,
whose body it reads and discards) and a 1 MiB static file on ``/1m``. Each proxy listens on its
own loopback port and forwards to that backend with upstream keep-alive where the peer has it.
Each nginx instance has its own prefix, pid file and temp paths under the run directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .procs import Server, ServerError, free_port

REPO = Path(__file__).resolve().parent.parent
SMALL_BODY = "hello from the benchmark backend\n"
STREAM_PATH = "/1m"
STREAM_SIZE = 1024 * 1024


def _nginx_prefix(run_dir: Path, name: str) -> Path:
    """A prefix directory nginx's unprivileged worker can use (temp paths world-writable)."""
    prefix = run_dir / name
    for sub in ("", "logs", "tmp_body", "tmp_proxy", "tmp_fastcgi", "tmp_uwsgi", "tmp_scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(prefix / sub, 0o777 if sub.startswith("tmp") else 0o755)
    return prefix


def _nginx_common(prefix: Path) -> str:
    return f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; }}
"""


def _nginx_http_common(prefix: Path) -> str:
    return f"""  access_log off;
  client_body_temp_path {prefix}/tmp_body;
  proxy_temp_path {prefix}/tmp_proxy;
  fastcgi_temp_path {prefix}/tmp_fastcgi;
  uwsgi_temp_path {prefix}/tmp_uwsgi;
  scgi_temp_path {prefix}/tmp_scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
"""


def _start_nginx(name: str, prefix: Path, conf: str, port: int) -> Server:
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return Server(name, ["nginx", "-p", str(prefix), "-c", str(path), "-g", "daemon off;"],
                  prefix / "logs" / "stdout.log", port)


def start_backend(run_dir: Path, target_ports: int = 0) -> Server:
    """The nginx every proxy forwards to; it also is the 'backend (direct)' ceiling row.

    With ``target_ports``, it also listens on that many more ports (``server.target_ports``),
    the targets of routes-1k's consistent-hash upstream, which name themselves in a header."""
    port = free_port()
    targets = sorted({free_port() for _ in range(target_ports)} - {port})
    while len(targets) < target_ports:
        targets = sorted(set(targets) | {free_port()} - {port})
    if targets:
        from .routes import backend_block  # routes imports this module
        extra = backend_block(targets)
    else:
        extra = ""
    prefix = _nginx_prefix(run_dir, "nginx-backend")
    root = prefix / "html"
    root.mkdir(exist_ok=True)
    os.chmod(root, 0o755)
    (root / STREAM_PATH.lstrip("/")).write_bytes(os.urandom(STREAM_SIZE))
    os.chmod(root / STREAM_PATH.lstrip("/"), 0o644)
    conf = _nginx_common(prefix) + f"""http {{
{_nginx_http_common(prefix)}  client_max_body_size 64m;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    default_type text/plain;
    location = {STREAM_PATH} {{ root {root}; }}
    location / {{ return 200 "{SMALL_BODY.rstrip()}\\n"; }}
  }}
{extra}}}
"""
    server = _start_nginx("backend", prefix, conf, port)
    server.target_ports = targets
    server.wait_ready()
    return server


# -- proxies -------------------------------------------------------------------------------


def _fastgw(name: str, pure: bool = False, workers: int = 1,
            checkout: Path = REPO) -> Callable[[Path, int, int], Server]:
    """fastgw from ``checkout`` (this one, or a baseline: another commit's working tree with its
    extension built) with ``workers`` worker processes."""
    def start(run_dir: Path, port: int, backend: int) -> Server:
        conf = run_dir / f"{name}.yaml"
        conf.write_text(f"""listen: "127.0.0.1:{port}"
log_level: info
{f"workers: {workers}" if workers != 1 else ""}
upstreams:
  backend:
    targets: [{{address: "127.0.0.1:{backend}"}}]
    keepalive: {{max_idle: 2048, idle_timeout: 60s}}
routes:
  - match: {{path_prefix: /}}
    upstream: backend
timeouts: {{client_idle: 300s}}
""")
        env = {"FASTGW_PURE": "1" if pure else "", "PYTHONPATH": str(checkout)}
        return Server(name, [sys.executable, "-m", "fastgw", "run", "-c", str(conf)],
                      run_dir / f"{name}.log", port, env=env, cwd=str(checkout))
    return start


def _nginx(run_dir: Path, port: int, backend: int) -> Server:
    prefix = _nginx_prefix(run_dir, "nginx-proxy")
    conf = _nginx_common(prefix) + f"""http {{
{_nginx_http_common(prefix)}  client_max_body_size 64m;
  upstream backend {{
    server 127.0.0.1:{backend};
    keepalive 256;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location / {{
      proxy_pass http://backend;
    }}
    # stream-1m: nginx's default 8 x 4 KiB buffers (and spooling to a temp file) make it
    # about half as fast on loopback; give it 64 KiB buffers like the other proxies, in memory
    location = {STREAM_PATH} {{
      proxy_pass http://backend;
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
      proxy_busy_buffers_size 128k;
      proxy_max_temp_file_size 0;
    }}
  }}
}}
"""
    return _start_nginx("nginx", prefix, conf, port)


def _haproxy(run_dir: Path, port: int, backend: int) -> Server:
    conf = run_dir / "haproxy.cfg"
    conf.write_text(f"""global
  nbthread 1
  maxconn 8000
  pidfile {run_dir}/haproxy.pid

defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 60s
  timeout http-keep-alive 300s
  http-reuse always

frontend bench
  bind 127.0.0.1:{port}
  default_backend backend

backend backend
  server b1 127.0.0.1:{backend}
""")
    return Server("haproxy", ["haproxy", "-db", "-f", str(conf)], run_dir / "haproxy.log", port)


def _aiohttp(run_dir: Path, port: int, backend: int) -> Server:
    return Server("aiohttp", [sys.executable, "-m", "bench.peers.aiohttp_proxy",
                              "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend}"],
                  run_dir / "aiohttp.log", port, cwd=str(REPO))


def _proxypy(run_dir: Path, port: int, backend: int) -> Server:
    # --threaded: the default threadless worker dies on the second request of a keep-alive
    # client connection in reverse-proxy mode (selector.modify on a closed upstream fd,
    # proxy.py 2.4.10), so it would serve nothing after the first round.
    return Server("proxy.py", [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1",
                               "--port", str(port), "--enable-reverse-proxy", "--plugins",
                               "bench.peers.proxypy_reverse.ToBackend", "--threaded",
                               "--num-acceptors", "1", "--log-level", "ERROR",
                               "--open-file-limit", "20000"],
                  run_dir / "proxy.py.log", port, cwd=str(REPO),
                  env={"BENCH_BACKEND": f"127.0.0.1:{backend}",
                       "PYTHONPATH": str(REPO)})


@dataclass(frozen=True)
class Proxy:
    """A measured proxy: its name in tables and options, a note, and how to start it."""

    name: str
    description: str
    start: Callable[[Path, int, int], Server] | None  # None: the backend itself


PROXIES: dict[str, Proxy] = {p.name: p for p in (
    Proxy("backend", "nginx backend, no proxy (the ceiling)", None),
    Proxy("fastgw", "fastgw, compiled parser, 1 worker", _fastgw("fastgw")),
    Proxy("fastgw-pure", "fastgw, pure-Python parser (FASTGW_PURE=1), 1 worker",
          _fastgw("fastgw-pure", pure=True)),
    Proxy("fastgw-w2", "fastgw, compiled parser, 2 workers", _fastgw("fastgw-w2", workers=2)),
    Proxy("nginx", "nginx 1 worker, upstream keepalive 256", _nginx),
    Proxy("haproxy", "HAProxy nbthread 1, http-reuse always", _haproxy),
    Proxy("aiohttp", "aiohttp server + pooled ClientSession, uvloop", _aiohttp),
    Proxy("proxy.py", "proxy.py reverse proxy (--threaded), no upstream pool", _proxypy),
)}


# measured only when asked for by name (or, for the baseline, by --baseline)
NOT_BY_DEFAULT = {"fastgw-w2", "fastgw-baseline"}


def add_baseline(checkout: Path) -> None:
    """Measure fastgw from another checkout too, as ``fastgw-baseline``: the same run then says
    whether a change made the data path faster or slower, against the same rounds' noise."""
    checkout = checkout.resolve()
    PROXIES["fastgw-baseline"] = Proxy(
        "fastgw-baseline", f"fastgw from {checkout}, 1 worker",
        _fastgw("fastgw-baseline", checkout=checkout))


def start_proxy(proxy: Proxy, run_dir: Path, backend: Server) -> Server:
    """Start ``proxy`` on a free port and wait until it answers through to the backend."""
    assert proxy.start is not None
    server = proxy.start(run_dir, free_port(), backend.port)
    try:
        server.wait_ready()
        if proxy.name.startswith("fastgw"):
            want = "parser: pure" if proxy.name == "fastgw-pure" else "parser: compiled"
            if want not in server.log_tail(50):
                raise ServerError(f"{proxy.name}: startup log does not say {want!r}:\n"
                                  f"{server.log_tail()}")
    except ServerError:
        server.stop()
        raise
    return server


__all__ = ["PROXIES", "Proxy", "SMALL_BODY", "STREAM_PATH", "STREAM_SIZE", "start_backend",
           "start_proxy"]
