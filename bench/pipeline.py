"""Pipelining stress: N requests written back to back on one connection, as an attacker would.

    python -m bench.pipeline [--requests 300000] [--mode local|proxied|unread] [--python-path DIR]

``local``: every request gets the gateway's own 404 (no route matches), so only the client
side is measured. ``proxied``: every request goes to a small pipelining-aware backend.
``unread``: the client writes its pipeline and never reads the answers; meanwhile a second
client's requests are timed (a worker held hostage by one connection would delay them).

It starts fastgw through its CLI (``workers: 1``) and prints answers per second and the
worker's peak resident memory (VmHWM), so two commits can be compared run against run
(``--python-path`` points at another checkout, built in place).
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .procs import descendants

REQUEST = b"GET /p HTTP/1.1\r\nHost: bench\r\nUser-Agent: pipeline\r\n\r\n"
BACKEND_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backend(port: int) -> None:
    """Answers each request head (no bodies in this benchmark) with a 2-byte 200."""
    server = socket.create_server(("127.0.0.1", port))

    def serve(conn: socket.socket) -> None:
        held = b""
        while data := conn.recv(262144):
            held += data
            n = held.count(b"\r\n\r\n")
            if n:
                held = held[held.rindex(b"\r\n\r\n") + 4:]
                conn.sendall(BACKEND_ANSWER * n)
        conn.close()

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def start_gateway(workdir: Path, listen: int, upstream: int, python_path: str | None):
    config = workdir / "pipeline.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{listen}\nworkers: 1\nlog_level: warning\n"
        f"upstreams:\n  app:\n    targets: [{{address: '127.0.0.1:{upstream}'}}]\n"
        f"routes:\n  - match: {{path_prefix: /p}}\n    upstream: app\n"
        f"  - match: {{path_prefix: /proxied}}\n    upstream: app\n"
    )
    env = dict(os.environ)
    if python_path:
        env["PYTHONPATH"] = python_path
    with open(workdir / "stderr.log", "wb") as stderr:  # the child keeps its own copy
        proc = subprocess.Popen([sys.executable, "-m", "fastgw", "run", "-c", str(config)],
                                env=env, stderr=stderr)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", listen), timeout=1).close()
            if len(descendants(proc.pid)) > 1:
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("gateway did not start: " + (workdir / "stderr.log").read_text())


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def count_answers(sock: socket.socket, want: int, deadline: float) -> int:
    """Status lines seen (every answer here is short: none is split by a body)."""
    seen, tail = 0, b""
    while seen < want and time.monotonic() < deadline:
        if not select.select([sock], [], [], 0.5)[0]:
            continue
        data = sock.recv(1 << 20)
        if not data:
            break
        data = tail + data
        seen += data.count(b"HTTP/1.1 ")
        tail = data[-8:]
        seen -= tail.count(b"HTTP/1.1 ")  # counted again with the next read
    return seen + tail.count(b"HTTP/1.1 ")


def probe_latency(port: int, stop: threading.Event, out: list[float]) -> None:
    """A well-behaved client's request every 100 ms: the worst wait it saw."""
    while not stop.is_set():
        began = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while sock.recv(65536):
                    pass
        except OSError:
            pass
        out.append(time.monotonic() - began)
        stop.wait(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--mode", choices=("local", "proxied", "unread"), default="local")
    parser.add_argument("--python-path", help="PYTHONPATH for the gateway (another checkout)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    upstream, listen = free_port(), free_port()
    threading.Thread(target=backend, args=(upstream,), daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        gateway = start_gateway(Path(tmp), listen, upstream, args.python_path)
        try:
            worker = descendants(gateway.pid)[1]
            start_kib = peak_kib(worker)
            target = b"/p" if args.mode == "proxied" else b"/nothing"
            payload = REQUEST.replace(b"/p ", target + b" ") * args.requests
            sock = socket.create_connection(("127.0.0.1", listen))
            began = time.monotonic()
            waits: list[float] = []
            stop = threading.Event()
            prober = threading.Thread(target=probe_latency, args=(listen, stop, waits))
            prober.start()
            writer = threading.Thread(target=_send_all, args=(sock, payload), daemon=True)
            writer.start()
            if args.mode == "unread":
                time.sleep(min(args.timeout, 10.0))
                answered = -1
            else:
                answered = count_answers(sock, args.requests, began + args.timeout)
            elapsed = time.monotonic() - began
            stop.set()
            prober.join()
            peak = peak_kib(worker)
            sock.shutdown(socket.SHUT_RDWR)  # wakes the writer thread, if it is blocked
            sock.close()
        finally:
            gateway.terminate()
            gateway.wait(60)
    print(f"mode {args.mode}: {args.requests} pipelined requests ({len(payload) / 1e6:.1f} MB)")
    if answered >= 0:
        print(f"  answered {answered} in {elapsed:.2f} s: {answered / elapsed:,.0f} answers/s")
    print(f"  worker peak RSS {start_kib / 1024:.1f} MiB before, {peak / 1024:.1f} MiB after")
    if waits:
        print(f"  another client meanwhile: {len(waits)} requests, "
              f"worst {max(waits) * 1000:.0f} ms")


def _send_all(sock: socket.socket, payload: bytes) -> None:
    try:
        sock.sendall(payload)
    except OSError:
        pass


if __name__ == "__main__":
    main()
