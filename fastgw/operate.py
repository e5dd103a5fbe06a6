"""``fastgw reload`` and ``fastgw plan``: an operator's view of a running gateway, through its
pidfile and status file (see ``server/status.py``)."""

from __future__ import annotations

import os
import signal
import sys
import time

from .config import ConfigError, load_config, load_config_bytes, read_config_file
from .server.status import StatusError, read_pid, read_status


def reload(args) -> int:
    """Send SIGHUP to the master and wait until its status file reports the outcome of the
    first reload begun after the signal (with several callers at once, each gets its own)."""
    try:
        pidfile = _pidfile(args.pidfile, args.config)
        pid = read_pid(pidfile)
        read_status(pidfile)  # fail now, not after a timeout, if there is none
        sent = time.time()
        os.kill(pid, signal.SIGHUP)
    except (ConfigError, StatusError) as exc:
        return _fail(exc)
    except ProcessLookupError:
        return _fail(f"no process {pid} (from {pidfile}): is fastgw running?")
    except PermissionError:
        return _fail(f"not allowed to signal process {pid} (from {pidfile})")
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            status = read_status(pidfile)
        except StatusError:  # the master has gone (or is replacing the file): look again
            status = None
        ours = next((r for r in (status or {}).get("reloads", []) if r["began"] >= sent), None)
        if ours is not None:
            break
        if time.monotonic() > deadline:
            return _fail(f"no outcome from process {pid} within {args.timeout:g}s")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:  # stopped meanwhile (a reload during shutdown is ignored)
            return _fail(f"process {pid} exited before reloading")
        time.sleep(0.02)
    if not ours["ok"]:
        return _fail(f"reload failed, still serving generation {ours['generation']}: "
                     f"{ours['error']}")
    print(f"reloaded to generation {ours['generation']} ({ours['checksum']}, "
          f"{ours['workers']} workers)")
    for line in ours["changes"]:
        print(f"  {line}")
    return 0


def plan(args) -> int:
    """Print what reloading to ``args.config`` would change, against ``--against OLD`` or the
    configuration the running gateway serves."""
    from .plan_diff import checksum, describe_changes

    try:
        data = read_config_file(args.config)
        new = load_config_bytes(data, args.config)
        if args.against:
            old = load_config(args.against)
            label = args.against
        else:
            pidfile = _pidfile(args.pidfile, None, new.pidfile)
            status = read_status(pidfile)
            running = status["config"]
            old = load_config_bytes(running["text"].encode(), running["path"])
            label = f"running generation {status['generation']} ({running['path']})"
    except (ConfigError, StatusError) as exc:
        return _fail(exc)
    print(f"plan: {label} -> {args.config} ({checksum(data)})")
    for line in describe_changes(old, new):
        print(line)
    return 0


def _pidfile(given: str | None, config_path: str | None, configured: str | None = None) -> str:
    if given:
        return given
    if config_path:
        configured = load_config(config_path).pidfile
    if configured:
        return configured
    raise StatusError("no pidfile: pass --pidfile PATH (or a config whose pidfile setting "
                      "names it); without one there is no running gateway to talk to"
                      + ("" if config_path else "; for plan, --against OLD compares two files"))


def _fail(problem) -> int:
    print(f"fastgw: {problem}", file=sys.stderr)
    return 1
