"""The benchmark run: set up, start the backend, then per scenario start every proxy and run
wrk against each in interleaved rounds (A B C … A B C …), reading each proxy's CPU and memory
from /proc around every run; then the idle-connections check and locust; then the report.

Only loopback addresses are loaded, and every load is bounded in time. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import install, report, routes
from .load import LoadError, hold_idle_connections, run_wrk, still_open
from .procs import (OtherProcesses, Server, ServerError, cpu_seconds, machine_busy_seconds,
                    memory_kib, pss_kib)
from .scenarios import DEFAULT_SCENARIOS, SCENARIOS, Scenario
from .servers import NOT_BY_DEFAULT, PROXIES, add_baseline, start_backend, start_proxy

BENCH_DIR = Path(__file__).resolve().parent
LOCUSTFILE = BENCH_DIR / "locustfile.py"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark fastgw against nginx, HAProxy, aiohttp and proxy.py on loopback.")
    p.add_argument("--scenarios", help="comma-separated: " + ", ".join(SCENARIOS)
                   + f", or 'all' (default: {','.join(DEFAULT_SCENARIOS)})")
    default = [name for name in PROXIES if name not in NOT_BY_DEFAULT]
    p.add_argument("--proxies", default=",".join(default),
                   help="comma-separated subset of: " + ", ".join(PROXIES)
                   + f" (default: {','.join(default)})")
    p.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                   help="also measure fastgw from this checkout (another commit, extension "
                        "built) as fastgw-baseline, e.g. a `git worktree` of main")
    p.add_argument("--rounds", type=int, help="interleaved rounds per scenario (default 5)")
    p.add_argument("--duration", type=float, help="seconds per wrk run (default 5)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--warmup", type=float, default=1.0,
                   help="seconds of unmeasured load per proxy before the rounds (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 rounds × 2 s unless given; writes quick.* not latest.*")
    p.add_argument("--locust", action="store_true",
                   help="also run bench/locustfile.py headless against fastgw (alone if "
                        "--scenarios is not given)")
    p.add_argument("--locust-time", type=int, default=20, help="locust run time, s (default 20)")
    p.add_argument("--locust-users", type=int, default=20, help="locust users (default 20)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results",
                   help="where results go (default bench/results)")
    p.add_argument("--name",
                   help="name of the table, chart and JSON copy written beside the timestamped "
                        "JSON (default: latest, or quick with --quick), e.g. routes-1k")
    p.add_argument("--keep", action="store_true", help="keep the run directory (configs, logs)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    duration = args.duration or (2.0 if args.quick else 5.0)
    if args.scenarios is None:
        names = [] if args.locust else list(DEFAULT_SCENARIOS)
    elif args.scenarios == "all":
        names = list(SCENARIOS)
    else:
        names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    proxies = [n.strip() for n in args.proxies.split(",") if n.strip()]
    if args.baseline is not None:
        add_baseline(args.baseline)
        if "fastgw-baseline" not in proxies:
            proxies.insert(proxies.index("fastgw") + 1 if "fastgw" in proxies else 0,
                           "fastgw-baseline")
    for name in names:
        if name not in SCENARIOS:
            sys.exit(f"bench: unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    for name in proxies:
        if name not in PROXIES:
            sys.exit(f"bench: unknown proxy {name!r}; choose from {', '.join(PROXIES)}")
    notes: list[str] = []
    if not names and not args.locust:
        return 2
    with_routes = any(SCENARIOS[n].kind == "routes" for n in names)

    install.ensure_tools(["wrk", "nginx"] + (["haproxy"] if "haproxy" in proxies else []))
    install.ensure_python_packages(
        ["matplotlib"] + (["aiohttp"] if "aiohttp" in proxies else [])
        + (["proxy"] if "proxy.py" in proxies else []) + (["locust"] if args.locust else []))
    install.ensure_fastgw_compiled()

    run = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": install.machine_info(),
        "options": {"rounds": rounds, "duration": duration, "connections": args.connections,
                    "warmup": args.warmup, "proxies": proxies, "scenarios": names},
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "scenarios": {},
        "notes": notes,
    }
    run_dir = Path(tempfile.mkdtemp(prefix="fastgw-bench-", dir="/tmp"))
    os.chmod(run_dir, 0o755)
    print(f"bench: run directory {run_dir}", flush=True)
    failed = False
    backend = start_backend(run_dir, routes.TARGETS if with_routes else 0)
    try:
        for name in names:
            scenario = SCENARIOS[name]
            if scenario.kind in ("wrk", "routes"):
                run["scenarios"][name] = _wrk_scenario(scenario, proxies, backend, run_dir,
                                                       rounds, duration, args)
            elif scenario.kind == "idle":
                run["idle"] = _idle_scenario(scenario, proxies, backend, run_dir)
        if args.locust:
            run["locust"] = _locust(backend, run_dir, args.locust_time, args.locust_users)
    except BaseException:
        failed = True
        raise
    finally:
        backend.stop()
        if failed or args.keep:
            print(f"bench: logs and configs kept in {run_dir}", flush=True)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    run["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    stem = ("quick-" if args.quick else "") + run["started"][:19].replace(":", "")
    written = report.write(run, args.out, stem,
                           args.name or ("quick" if args.quick else "latest"))
    print()
    print(report.markdown(run))
    print("bench: wrote " + ", ".join(str(p) for p in written))
    return 0


def _wrk_scenario(scenario: Scenario, proxies: list[str], backend: Server, run_dir: Path,
                  rounds: int, duration: float, args: argparse.Namespace) -> dict:
    print(f"\n== {scenario.name}: {scenario.description}", flush=True)
    is_routes = scenario.kind == "routes"
    if is_routes:
        skipped = [n for n in proxies if n not in routes.PROXIES]
        if skipped:
            print(f"bench: {scenario.name} runs fastgw and nginx only; not {', '.join(skipped)}",
                  flush=True)
        proxies = [n for n in proxies if n in routes.PROXIES]
    servers: dict[str, Server] = {}
    results: dict[str, list[dict]] = {name: [] for name in proxies}
    scenario_dir = run_dir / scenario.name
    scenario_dir.mkdir(mode=0o755)
    precheck: dict = {}
    try:
        for name in proxies:
            if name == "backend":
                servers[name] = backend
                continue
            try:
                if is_routes:
                    servers[name] = routes.start_proxy(name, scenario_dir, backend.target_ports)
                else:
                    servers[name] = start_proxy(PROXIES[name], scenario_dir, backend)
            except ServerError as exc:
                print(f"bench: {name} did not start: {exc}", flush=True)
                results[name] = [{"round": 0, "error": f"did not start: {exc}"}]
        if is_routes and servers:
            # routing and hashing must be right before anything is measured: a failure stops
            # the run (the AssertionError names the request)
            precheck = routes.precheck(servers, backend.target_ports)
            print(f"bench: {scenario.name} pre-check passed: {precheck}", flush=True)
        for name, server in servers.items():
            if args.warmup > 0:
                try:
                    run_wrk(scenario, server.port, args.warmup, args.connections, run_dir)
                except LoadError as exc:
                    print(f"bench: warm-up of {name} failed: {exc}", flush=True)
        for round_no in range(1, rounds + 1):
            for name, server in list(servers.items()):
                result = _measure(scenario, name, server, backend, duration, args.connections,
                                  run_dir, round_no)
                results[name].append(result)
                print(_progress(scenario.name, round_no, rounds, name, result), flush=True)
                if server.proc.poll() is not None:
                    print(f"bench: {name} exited ({server.proc.returncode}); dropped:\n"
                          f"{server.log_tail()}", flush=True)
                    results[name].append({"round": round_no, "error":
                                          f"exited with {server.proc.returncode}"})
                    del servers[name]
                time.sleep(0.5)
    finally:
        for server in servers.values():
            if server is not backend:
                server.stop()
    out = {"description": scenario.description, "rounds": results,
           "summary": report.summarize(results)}
    if precheck:
        out["precheck"] = precheck
    return out


def _measure(scenario: Scenario, name: str, server: Server, backend: Server, duration: float,
             connections: int, run_dir: Path, round_no: int) -> dict:
    """One wrk run with the proxy's and the backend's CPU read from /proc around it."""
    pids, backend_pids = server.pids(), backend.pids()
    user0, sys0 = cpu_seconds(pids)
    buser0, bsys0 = cpu_seconds(backend_pids)
    busy0 = machine_busy_seconds()
    others = OtherProcesses()
    others.start()
    try:
        result = run_wrk(scenario, server.port, duration, connections, run_dir)
    except LoadError as exc:
        return {"round": round_no, "error": str(exc)}
    busy1 = machine_busy_seconds()
    other_cpu, busiest_others = others.stop()
    pids = server.pids()
    user1, sys1 = cpu_seconds(pids)
    buser1, bsys1 = cpu_seconds(backend.pids())
    requests = max(result["requests"], 1)
    errors = result["errors"]
    own = (user1 - user0) + (sys1 - sys0)
    backend_cpu = 0.0 if server is backend else (buser1 - buser0) + (bsys1 - bsys0)
    result.update({
        "round": round_no,
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "error_count": sum(errors.values()),
        "user_us_per_req": (user1 - user0) / requests * 1e6,
        "sys_us_per_req": (sys1 - sys0) / requests * 1e6,
        "backend_user_us_per_req": (buser1 - buser0) / requests * 1e6,
        "backend_sys_us_per_req": (bsys1 - bsys0) / requests * 1e6,
        "other_cpu_s": round(other_cpu, 2),
        "other_busiest": busiest_others,
        "unattributed_cpu_s": round(max(0.0, (busy1 - busy0) - own - backend_cpu
                                        - result["wrk_cpu_s"] - other_cpu), 2),
        "rss_kib": memory_kib(pids, "VmRSS"),
        "hwm_kib": memory_kib(pids, "VmHWM"),
        "processes": len(pids),
    })
    return result


def _progress(scenario: str, round_no: int, rounds: int, name: str, r: dict) -> str:
    head = f"[{scenario} {round_no}/{rounds}] {name:12}"
    if "error" in r:
        return f"{head} error: {r['error']}"
    return (f"{head} {r['rps']:9,.0f} req/s  p50 {r['latency_us']['p50'] / 1000:6.2f} ms  "
            f"p99 {r['latency_us']['p99'] / 1000:6.2f} ms  user {r['user_us_per_req']:6.1f} "
            f"sys {r['sys_us_per_req']:6.1f} µs/req  RSS {r['rss_kib'] / 1024:6.1f} MiB  "
            f"errors {r['error_count']}  other CPU {r['other_cpu_s']:.2f} s"
            + (f" ({', '.join(n for n, _ in r['other_busiest'])})" if r['other_cpu_s'] >= 0.1
               else ""))


def _idle_scenario(scenario: Scenario, proxies: list[str], backend: Server,
                   run_dir: Path) -> dict:
    """Per proxy (fresh process): RSS before and while holding N idle keep-alive connections."""
    count = scenario.idle_connections
    print(f"\n== {scenario.name}: {scenario.description}", flush=True)
    out: dict[str, dict] = {}
    scenario_dir = run_dir / scenario.name
    scenario_dir.mkdir(mode=0o755)
    for name in proxies:
        if name == "backend":
            continue
        try:
            server = start_proxy(PROXIES[name], scenario_dir, backend)
        except ServerError as exc:
            out[name] = {"error": f"did not start: {exc}"}
            print(f"[{scenario.name}] {name:12} did not start: {exc}", flush=True)
            continue
        try:
            time.sleep(0.5)
            before = memory_kib(server.pids(), "VmRSS")
            held = hold_idle_connections(server.port, count)
            try:
                time.sleep(1.0)
                pids = server.pids()
                out[name] = {"connections": count, "open": still_open(held),
                             "rss_before_mib": before / 1024,
                             "rss_mib": memory_kib(pids, "VmRSS") / 1024,
                             "hwm_mib": memory_kib(pids, "VmHWM") / 1024,
                             "pss_mib": pss_kib(pids) / 1024,
                             "processes": len(pids)}
            finally:
                for sock in held:
                    sock.close()
            r = out[name]
            print(f"[{scenario.name}] {name:12} RSS {r['rss_before_mib']:6.1f} -> "
                  f"{r['rss_mib']:6.1f} MiB (PSS {r['pss_mib']:.1f}) with {r['open']}/{count} "
                  "connections open",
                  flush=True)
        except OSError as exc:
            out[name] = {"error": str(exc)}
            print(f"[{scenario.name}] {name:12} failed: {exc}", flush=True)
        finally:
            server.stop()
    return out


def _locust(backend: Server, run_dir: Path, run_time: int, users: int) -> dict:
    """bench/locustfile.py, headless, against a fresh fastgw, for ``run_time`` seconds."""
    print(f"\n== locust: {users} users for {run_time}s against fastgw", flush=True)
    try:
        locust_dir = run_dir / "locust"
        locust_dir.mkdir(mode=0o755)
        server = start_proxy(PROXIES["fastgw"], locust_dir, backend)
    except ServerError as exc:
        return {"error": f"fastgw did not start: {exc}"}
    prefix = run_dir / "locust-stats"
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(users), "-r", str(max(1, users // 2)), "--run-time", f"{run_time}s",
            "--stop-timeout", "5", "--host", f"http://127.0.0.1:{server.port}",
            "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=run_time + 60)
    except subprocess.TimeoutExpired:
        return {"error": f"locust did not finish within {run_time + 60}s"}
    finally:
        server.stop()
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        return {"error": f"locust exited {done.returncode}: {done.stderr.strip()[-500:]}"}
    with stats.open() as f:
        rows = list(csv.DictReader(f))
    print((done.stdout + done.stderr).strip()[-3000:], flush=True)
    return {"users": users, "run_time": f"{run_time}s", "exit_code": done.returncode,
            "rows": rows}
