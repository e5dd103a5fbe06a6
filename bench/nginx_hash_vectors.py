"""Golden vectors for fastgw's consistent hash, recorded from a real nginx.

Starts one nginx (its own prefix in a temp dir, `daemon off`, loopback only, stopped and
removed at the end) that serves both sides: backend server blocks that answer with their own
address, and one front server per configuration proxying to an `upstream { hash $http_x_key
consistent; ... }`. Sends every key of a fixed, seeded key set through every front, and writes
the key list once and, per configuration, its servers (address strings as written, weights,
down flags) and, for every key, the index of the server nginx sent it to, as JSON. The tests
read that JSON and need no nginx.

    python bench/nginx_hash_vectors.py [--out tests/data/ketama_nginx.json] [--keys 2000]

Needs nginx on PATH or at /usr/sbin/nginx (Debian: apt-get install nginx-light).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "data" / "ketama_nginx.json"
DEADLINE_S = 120.0  # the whole run; nginx is killed when it is over


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_keys(n: int, seed: int = 4) -> list[str]:
    """A seeded mix of short, numeric, UUID-like, path-like, e-mail-like and long keys (no
    empty key: nginx sends those to round robin). Header-safe: printable ASCII, no leading or
    trailing space (nginx strips those from $http_*)."""
    rng = random.Random(seed)
    alnum = string.ascii_letters + string.digits
    printable = "".join(c for c in string.printable if c.isprintable())
    keys: list[str] = []
    seen: set[str] = set()
    makers = [
        lambda: "".join(rng.choice(alnum) for _ in range(rng.randint(1, 3))),  # short
        lambda: str(rng.randint(0, 10 ** rng.randint(1, 12))),  # numeric
        lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),  # UUID-like
        lambda: f"/users/{rng.randint(1, 99999)}/orders?page={rng.randint(1, 50)}",
        lambda: f"user{rng.randint(1, 10**6)}@example.{rng.choice(['com', 'org'])}",
        lambda: "".join(rng.choice(printable) for _ in range(rng.randint(100, 400))).strip(),
        lambda: "".join(rng.choice(printable) for _ in range(rng.randint(4, 40))).strip(),
    ]
    while len(keys) < n:
        key = rng.choice(makers)()
        if key and key not in seen:
            seen.add(key)
            keys.append(key)
    return keys


def points(address: str, weight: int) -> list[int]:
    """nginx's point hashes for one server (ngx_http_upstream_init_chash), only used to build a
    configuration whose points collide; the recorded answers all come from nginx."""
    host, _, port = address.rpartition(":")
    base = host.encode() + b"\0" + port.encode()
    out, prev = [], 0
    for _ in range(weight * 160):
        prev = zlib.crc32(base + prev.to_bytes(4, "little"))
        out.append(prev)
    return out


def bindable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        try:
            s.bind((host, int(port)))
            return True
        except OSError:
            return False


def colliding_pair(weight: int = 5, first_port: int = 20000) -> tuple[str, str, int]:
    """Two loopback addresses, both free, with a point hash in common (a birthday search over
    a few hundred ports), and that hash."""
    seen: dict[int, str] = {}
    for port in range(first_port, first_port + 5000):
        address = f"127.0.0.1:{port}"
        if not bindable(address):
            continue
        for h in points(address, weight):
            other = seen.setdefault(h, address)
            if other != address:
                return other, address, h
    sys.exit("no colliding pair found")


def keys_before(h: int, ring: list[int], n: int) -> list[str]:
    """``n`` keys whose crc32 falls in the arc that ends at point ``h`` (they map to it)."""
    ring = sorted(set(ring))
    i = ring.index(h)
    low = ring[i - 1] if i else -1
    keys, j = [], 0
    while len(keys) < n:
        key = f"arc-{j}"
        if low < zlib.crc32(key.encode()) <= h:
            keys.append(key)
        j += 1
    return keys


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        sys.exit("nginx not found: apt-get install -y nginx-light")
    return found


def run(out: Path, n_keys: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    tmp = Path(tempfile.mkdtemp(prefix="fastgw-ketama-"))
    os.chmod(tmp, 0o755)  # workers run as nobody when started as root: they must reach sockets
    proc = None
    try:
        p = free_ports(7)
        q = free_ports(1)[0]  # one port on several loopback hosts
        sock = [f"unix:{tmp}/b{i}.sock" for i in range(3)]
        a = [f"127.0.0.1:{port}" for port in p]
        h = [f"127.0.0.{i}:{q}" for i in (2, 3, 4)]
        c0, c1, collision = colliding_pair()
        # name -> [(server address as written, weight, down)]
        configs: dict[str, list[tuple[str, int, bool]]] = {
            "two_equal": [(a[0], 1, False), (a[1], 1, False)],
            "three_equal": [(a[0], 1, False), (a[1], 1, False), (a[2], 1, False)],
            "three_mixed": [(a[0], 2, False), (a[1], 3, False), (a[2], 5, False)],
            "five_mixed": [
                (a[0], 1, False),
                (a[1], 2, False),
                (a[2], 3, False),
                (a[3], 5, False),
                (a[4], 1, False),
            ],
            "five_mixed_reordered": [
                (a[3], 5, False),
                (a[1], 2, False),
                (a[4], 1, False),
                (a[0], 1, False),
                (a[2], 3, False),
            ],
            "five_one_down": [
                (a[0], 1, False),
                (a[1], 2, False),
                (a[2], 3, True),
                (a[3], 5, False),
                (a[4], 1, False),
            ],
            "seven_equal": [(x, 1, False) for x in a],
            "hosts_same_port": [(x, 1, False) for x in h],
            "unix_sockets": [(sock[0], 1, False), (sock[1], 2, False), (sock[2], 1, False)],
            # c0 and c1 share one point hash: which server keeps that point?
            "collision_first_listed_lower": [(c0, 5, False), (c1, 5, False)],
            "collision_first_listed_higher": [(c1, 5, False), (c0, 5, False)],
        }
        backends = sorted({s for servers in configs.values() for s, _, _ in servers})
        fronts = dict(zip(configs, free_ports(len(configs)), strict=True))

        conf = [
            "worker_processes 1;",
            f"pid {tmp}/nginx.pid;",
            "daemon off;",
            "events { worker_connections 256; }",
            "http {",
            "  access_log off;",
            f"  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;",
            f"  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi;",
            f"  scgi_temp_path {tmp}/scgi;",
            "  large_client_header_buffers 4 16k;",
        ]
        for b in backends:
            conf.append(f"  server {{ listen {b}; return 200 '{b}'; }}")
        for name, servers in configs.items():
            conf.append(f"  upstream {name} {{ hash $http_x_key consistent;")
            for s, w, down in servers:
                conf.append(f"    server {s} weight={w}{' down' if down else ''};")
            conf.append("  }")
            conf.append(
                f"  server {{ listen 127.0.0.1:{fronts[name]}; location / {{ "
                f"proxy_pass http://{name}; proxy_next_upstream off; "
                f"add_header X-Upstream $upstream_addr always; }} }}"
            )
        conf.append("}")
        (tmp / "nginx.conf").write_text("\n".join(conf) + "\n")

        nginx = nginx_binary()
        proc = subprocess.Popen(
            [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in fronts.values():  # wait until every front answers
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = (tmp / "error.log").read_text() if (tmp / "error.log").exists() else ""
                    sys.exit(f"nginx did not start: {proc.stderr.read().decode()} {err}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)

        keys = make_keys(n_keys)
        keys += keys_before(collision, points(c0, 5) + points(c1, 5), 20)
        result = {
            "generator": "bench/nginx_hash_vectors.py",
            "nginx": subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip(),
            "directive": "hash $http_x_key consistent",
            "collision": {"servers": [c0, c1], "hash": collision},
            "keys": keys,
            "configs": [],
        }
        for name, servers in configs.items():
            conn = http.client.HTTPConnection("127.0.0.1", fronts[name], timeout=5)
            mapping: dict[str, str] = {}
            for key in keys:
                if time.monotonic() > deadline:
                    sys.exit("out of time")
                conn.request("GET", "/", headers={"X-Key": key})
                resp = conn.getresponse()
                body = resp.read().decode()
                upstream = resp.getheader("X-Upstream")
                if resp.status != 200:
                    sys.exit(f"{name}: status {resp.status} for key {key!r}")
                if upstream != body and not body.startswith("unix:"):
                    sys.exit(f"{name}: backend {body!r} but $upstream_addr {upstream!r}")
                mapping[key] = body
            conn.close()
            index = {s: i for i, (s, _, _) in enumerate(servers)}
            result["configs"].append(
                {
                    "name": name,
                    "servers": [{"address": s, "weight": w, "down": d} for s, w, d in servers],
                    # per key (same order as "keys"): the index in "servers" nginx sent it to
                    "picks": [index[mapping[key]] for key in keys],
                }
            )
            counts = {s: 0 for s, _, _ in servers}
            for v in mapping.values():
                counts[v] += 1
            print(f"{name}: {len(mapping)} keys; " + ", ".join(f"{counts[s]}" for s in counts))
        out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result, indent=1)
        # one line per list of picks: the file stays small and diffable
        text = re.sub(
            r"\[\n\s+(\d+,\n\s+)*\d+\n\s+\]",
            lambda m: "[" + ",".join(m.group(0)[1:-1].split()).replace(",,", ",") + "]",
            text,
        )
        out.write_text(text + "\n")
        print(f"wrote {out}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--keys", type=int, default=2000)
    args = ap.parse_args()
    run(args.out, args.keys)


if __name__ == "__main__":
    main()
