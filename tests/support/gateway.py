"""Runs fastgw as a real subprocess (``python -m fastgw run -c FILE``) for the integration tests.

The config is built from a dict and written as YAML; the gateway's stderr goes to a file that
failure messages quote. Memory is read from /proc (VmRSS of the gateway and its children).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Self

import yaml

from . import wait_until


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_config(upstream: str, port: int, **overrides) -> dict:
    """A config with one listener and one upstream; ``timeouts={...}`` etc. are merged in."""
    config = {
        "listen": f"127.0.0.1:{port}",
        "upstreams": {"app": {"targets": [{"address": upstream}]}},
        "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
        "timeouts": {"client_header": "10s", "client_idle": "75s",
                     "upstream_connect": "5s", "upstream_read": "60s"},
        "limits": {"max_request_line": 8192, "max_header_bytes": 32768, "max_headers": 100,
                   "max_body_bytes": "64MiB", "request_buffer": "64KiB"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the field after the ")" that closes the command name: state, then ppid
        fields = stat[stat.rfind(b")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _vmrss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS:")


def _reset_peak(pid: int) -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of ``pid``; False where not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Gateway:
    preexec = None  # run in the child before fastgw starts (a subclass sets resource limits)

    def __init__(self, config: dict, workdir: Path, name: str = "gateway",
                 env: dict[str, str] | None = None) -> None:
        self.config = copy.deepcopy(config)
        self.env = {**os.environ, **(env or {})}
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / f"{name}.yaml"
        self.log_path = self.workdir / f"{name}.stderr.log"
        self.proc: subprocess.Popen | None = None
        self.killed = False
        self.stopped = False  # stop() was called (an exit after it is not a crash)
        host, _, port = str(self.config["listen"]).rpartition(":")
        self.host = host
        self.port = int(port)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "gateway stderr (tail):\n" + "\n".join(self.log().splitlines()[-lines:])

    def start(self, timeout: float = 20.0) -> Gateway:
        self.write_config(self.config)
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 (held until stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastgw", "run", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=self._log_file,
            cwd=self.workdir, env=self.env, preexec_fn=self.preexec,
        )
        marker = f"listening on {self.address}"

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"fastgw exited with {self.proc.returncode} before "
                                     f"listening\n{self.log_tail()}")
            return marker in self.log()

        wait_until(ready, timeout, f"fastgw to log {marker!r}", interval=0.02,
                   details=self.log_tail)
        # the line may be logged a moment before the socket accepts (e.g. a master/worker split)
        wait_until(self._accepts, timeout, f"{self.address} to accept connections",
                   interval=0.02, details=self.log_tail)
        return self

    def _accepts(self) -> bool:
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
            return True
        except OSError:
            return False

    # --- reloads -----------------------------------------------------------------------------

    @property
    def pidfile(self) -> Path:
        """Where the master writes its pid (set in the config by ``start``)."""
        return self.workdir / f"{self.config_path.stem}.pid"

    def write_config(self, config: dict | str) -> None:
        """Replace the file the gateway reads on reload (a dict as YAML, or raw text)."""
        text = config if isinstance(config, str) else yaml.safe_dump(
            {**config, "pidfile": str(self.pidfile)}, sort_keys=False)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)  # a reload never reads half a file

    def fastgw(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run another fastgw command (``reload``, ``plan``...) next to this gateway."""
        return subprocess.run([sys.executable, "-m", "fastgw", *args], capture_output=True,
                              text=True, cwd=self.workdir, env=self.env, timeout=timeout)

    def reload(self, config: dict | str | None = None) -> subprocess.CompletedProcess:
        """``fastgw reload`` (after writing ``config``, if given): waits for the outcome."""
        if config is not None:
            self.write_config(config)
        return self.fastgw("reload", "--pidfile", str(self.pidfile))

    def status(self) -> dict:
        return json.loads(Path(f"{self.pidfile}.status").read_text())

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return sorted(_children(self.proc.pid))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status (``killed`` tells
        whether SIGTERM was not enough)."""
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                for child in self.pids()[1:]:
                    try:
                        os.kill(child, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait(5)
        if not self._log_file.closed:
            self._log_file.close()
        return self.proc.returncode

    def pids(self) -> list[int]:
        """The gateway process and all its descendants."""
        assert self.proc is not None
        pids = [self.proc.pid]
        i = 0
        while i < len(pids):
            pids.extend(_children(pids[i]))
            i += 1
        return pids

    def rss_kb(self) -> int:
        """Resident memory of the gateway and its children, in KiB."""
        return sum(_vmrss_kb(pid) for pid in self.pids())


class PeakRSS:
    """The peak RSS of a gateway while a ``with`` block runs: the kernel's own peak counter
    (VmHWM, reset on entry) where the kernel allows resetting it, and samples taken by a
    background thread in any case."""

    def __init__(self, gateway: Gateway, interval: float = 0.005) -> None:
        self.gateway = gateway
        self.interval = interval
        self.baseline_kb = 0
        self.peak_kb = 0
        self.samples = 0
        self.kernel_peak = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        pids = self.gateway.pids()
        while not self._done.is_set():
            rss = sum(_vmrss_kb(pid) for pid in pids)
            self.peak_kb = max(self.peak_kb, rss)
            self.samples += 1
            self._done.wait(self.interval)

    def __enter__(self) -> Self:
        self._pids = self.gateway.pids()
        reset = [_reset_peak(pid) for pid in self._pids]  # every one, no short-circuit
        self.kernel_peak = all(reset)
        self.baseline_kb = self.gateway.rss_kb()
        self.peak_kb = self.baseline_kb
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self.peak_kb = max(self.peak_kb, self.gateway.rss_kb())
        if self.kernel_peak:
            self.peak_kb = max(self.peak_kb, sum(_status_kb(pid, "VmHWM:") for pid in self._pids))

    @property
    def growth_kb(self) -> int:
        return self.peak_kb - self.baseline_kb

    def report(self, what: str) -> str:
        return (f"fastgw RSS during {what}: baseline {self.baseline_kb / 1024:.1f} MiB, "
                f"peak {self.peak_kb / 1024:.1f} MiB, growth {self.growth_kb / 1024:.1f} MiB "
                f"({'kernel VmHWM + ' if self.kernel_peak else ''}{self.samples} samples)")


__all__ = ["Gateway", "PeakRSS", "free_port", "make_config"]
