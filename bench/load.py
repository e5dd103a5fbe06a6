"""Load generators: one bounded ``wrk`` run, and the idle keep-alive connections check.

Every target is a loopback address; every run is bounded in time (wrk's ``-d`` and a process
timeout on top of it).
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import time
from pathlib import Path

from .scenarios import Scenario

LOOPBACK = "127.0.0.1"


class LoadError(RuntimeError):
    """wrk failed or printed no summary."""


def run_wrk(scenario: Scenario, port: int, duration: float, connections: int,
            script_dir: Path) -> dict:
    """One ``wrk -t1`` run against ``127.0.0.1:port``; wrk's summary (see scenarios.DONE_HOOK)
    plus the wrk process's own CPU seconds."""
    script = script_dir / f"{scenario.name}.lua"
    if not script.exists():
        script.write_text(scenario.lua())
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
            "-s", str(script), f"http://{LOOPBACK}:{port}{scenario.path}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"wrk did not finish within {duration + 30:.0f}s") from exc
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result = json.loads(line[len("BENCH_JSON "):])
            result["wrk_cpu_s"] = round((after.ru_utime - before.ru_utime)
                                        + (after.ru_stime - before.ru_stime), 3)
            return result
    raise LoadError(f"wrk exited {done.returncode} without a summary: "
                    f"{(done.stderr or done.stdout).strip()[-500:]}")


def hold_idle_connections(port: int, count: int, timeout: float = 60.0) -> list[socket.socket]:
    """Open ``count`` connections, send one keep-alive GET on each and read its response whole;
    return the sockets, still open. Raises OSError if a connection fails or is closed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    deadline = time.monotonic() + timeout
    request = f"GET / HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n\r\n".encode()
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                raise OSError(f"opened only {len(held)} of {count} connections in {timeout:.0f}s")
            sock = socket.create_connection((LOOPBACK, port), timeout=10)
            held.append(sock)
            sock.sendall(request)
            _read_response(sock)
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


def _read_response(sock: socket.socket) -> None:
    """Read one response that has a Content-Length (the backend's small body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed before the response head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed inside the response body")
        rest += chunk


def still_open(held: list[socket.socket]) -> int:
    """How many of ``held`` the server has not closed (a non-blocking peek sees no EOF)."""
    alive = 0
    for sock in held:
        sock.setblocking(False)
        try:
            alive += sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive
