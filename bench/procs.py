"""Processes the harness starts, and what /proc says about them: CPU ticks, RSS, the machine's load.

Only processes started here are stopped here, each by its own process group. Nothing in this
module sends traffic.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a fresh scan of /proc, so workers forked late count)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """Sum of (utime, stime) in seconds over ``pids``; a process that is gone counts 0."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # after the command: state(0) ppid(1) ... utime(11) stime(12)
        user += int(fields[11])
        system += int(fields[12])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def pss_kib(pids: list[int]) -> int:
    """Proportional set size summed over ``pids``: each shared page counted once in all, so a
    master and its forked workers are not charged twice for the code they share (RSS is)."""
    total = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("Pss:"))
    return total


def memory_kib(pids: list[int], field: str) -> int:
    """Sum of one /proc/PID/status field (``VmRSS``, ``VmHWM``) in KiB over ``pids``."""
    total = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith(field + ":"):
                total += int(line.split()[1])
    return total


def _all_processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, utime + stime ticks, command name) for every process now in /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            head, _, rest = text.rpartition(")")
            fields = rest.split()
            out[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                               head.partition("(")[2])
    return out


class OtherProcesses:
    """CPU used by processes that are neither the harness's (nor below it) nor kernel threads,
    between ``start()`` and ``stop()``: the noise from anything else running on the machine."""

    def start(self) -> None:
        self._before = _all_processes()

    def stop(self) -> tuple[float, list[tuple[str, float]]]:
        """(CPU seconds, the three busiest such processes as (name, seconds))."""
        after = _all_processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in after.items():
            children.setdefault(ppid, []).append(pid)
        ours, todo = set(), [os.getpid(), 2]  # 2: kthreadd, parent of kernel threads
        while todo:
            pid = todo.pop()
            ours.add(pid)
            todo.extend(children.get(pid, ()))
        used = {}
        for pid, (_, total, name) in after.items():
            if pid not in ours:
                before = self._before.get(pid)
                ticks = total - (before[1] if before and before[2] == name else 0)
                if ticks > 0:
                    used[f"{name}[{pid}]"] = ticks / CLOCK_TICKS
        busiest = sorted(used.items(), key=lambda item: -item[1])[:3]
        return sum(used.values()), busiest


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle since boot (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already inside user and nice
    return (sum(fields) - idle - guest) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerError(RuntimeError):
    """A server the harness started did not come up; the message carries its log's tail."""


class Server:
    """One server process (and its children) started in its own session, logging to a file."""

    def __init__(self, name: str, argv: list[str], log: Path, port: int,
                 env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.name = name
        self.port = port
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        return descendants(self.proc.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, path: str = "/", timeout: float = 20.0) -> None:
        """Until GET ``path`` answers 200; ServerError if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode}:\n"
                                  f"{self.log_tail()}")
            try:
                status = http_get_status("127.0.0.1", self.port, path)
                if status == 200:
                    return
                last = f"status {status}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise ServerError(f"{self.name} not ready on port {self.port} after {timeout:.0f}s "
                          f"({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the process group this server leads, SIGKILL after 10 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log_file.close()


def http_get_status(host: str, port: int, path: str, timeout: float = 2.0) -> int:
    """Status code of one ``GET path`` over a fresh connection (headers only are read)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
                     .encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"not an HTTP response: {head[:60]!r}")
    return int(parts[1])
