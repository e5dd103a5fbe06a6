"""Run fuzz cases against a real fastgw: the harness, the client side, and the report.

``Harness`` starts the recording backend and fastgw (``python -m fastgw run``, through
tests/support/gateway.py) with short timeouts and small limits, so that every timeout and every
limit is reached by some cases and a connection that is neither answered nor closed is noticed
within seconds. ``Harness.run(seed, numbers)`` sends the cases, many connections at a time, and
judges each one with the oracle as soon as the backend has nothing of it in progress.
``Harness.finish()`` then checks the gateway itself: still running, a plain request still
answered, and no traceback or ERROR line in its log.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from tests.support.gateway import Gateway, free_port, make_config

from .backend import PROBE_ADDRESS, RecordingBackend, case_address
from .mutate import Case, make_case
from .oracle import Context, Finding, Seen, check_case
from .strict import Rules, frame_response

XFF_UNKNOWN = re.compile(rb"\r\nX-Forwarded-For: (?:[^\r\n]*, )?unknown\r\n")
TIMEOUTS = {"client_header": "1s", "client_idle": "1s", "upstream_connect": "2s",
            "upstream_read": "2s"}
# small limits, so that seeds near them and mutations reach 413/414/431; bodies over 1 KiB
# stream (validated as they pass) instead of being held whole
LIMITS = {"max_request_line": 1024, "max_header_bytes": 4096, "max_headers": 32,
          "max_body_bytes": 16 * 1024, "request_buffer": 1024}
RULES = Rules("client", client=True, max_request_line=LIMITS["max_request_line"],
              max_header_bytes=LIMITS["max_header_bytes"], max_headers=LIMITS["max_headers"],
              max_body=LIMITS["max_body_bytes"])
# a connection must be answered or closed by then: the longest timeout (2 s), the deadline
# sweep (0.25 s), and room for a loaded machine
DEADLINE = 8.0
SETTLE = 3.0  # how long the backend may still be inside a case's request after its client ended
GRACE = 0.05  # the least time the backend (another thread) gets to read what fastgw sent
RECENT = 20000  # judged cases kept, to judge again with what reached the backend late
PARSERS = {"compiled": {}, "pure": {"FASTGW_PURE": "1"}}
# connections in flight: most of a case's time is waiting (for the gateway, the backend
# thread, a timeout), so more in flight keeps a loaded machine's cores busy
CONCURRENCY = 96


@dataclass
class Report:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    endings: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    forwarded: int = 0
    slowest: float = 0.0  # the longest a connection took to end
    findings: list[Finding] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # all findings, also those not kept
    keep_per_kind: int = 20
    on_finding: Callable[[Finding], None] | None = None  # e.g. save it at once (long runs)

    def add(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.kinds[finding.kind] += 1
            if self.kinds[finding.kind] <= self.keep_per_kind:
                self.findings.append(finding)
                if self.on_finding is not None:
                    self.on_finding(finding)

    def summary(self) -> str:
        rate = self.cases / self.seconds if self.seconds else 0.0
        lines = [f"fuzz seed {self.seed}: {self.cases} cases in {self.seconds:.1f}s "
                 f"({rate:.0f}/s); {self.forwarded} requests reached the backend",
                 f"  connection endings: {dict(self.endings)}, the slowest after "
                 f"{self.slowest:.2f}s",
                 f"  final statuses: {dict(sorted(self.statuses.items()))}",
                 f"  findings: {dict(self.kinds) or 'none'}"]
        return "\n".join(lines)


class Harness:
    """A recording backend and a fastgw in front of it, for one campaign."""

    def __init__(self, workdir: Path, parser: str = "compiled") -> None:
        self.workdir = Path(workdir)
        self.parser = parser
        self.backend = RecordingBackend()
        self.gateway: Gateway | None = None
        self.upstream = b""  # the backend's address, as fastgw sends it for a missing Host
        self.last_seen: Seen | None = None  # of the last case judged (for a replay)
        self.last_forwarded: list = []
        self.recent: OrderedDict[int, tuple] = OrderedDict()  # case -> (case, seen, fwd, found)

    def start(self) -> Harness:
        self.backend.start()
        config = make_config(self.backend.address, free_port(), timeouts=TIMEOUTS, limits=LIMITS,
                             log_level="info")
        env = dict(PARSERS[self.parser])
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(Path(__file__).parents[2]),
                                                         os.environ.get("PYTHONPATH", "")] if p)
        self.gateway = Gateway(config, self.workdir, name=f"fuzz-{self.parser}", env=env).start()
        if f"parser: {self.parser}" not in self.gateway.log():
            raise RuntimeError(f"fastgw did not start with the {self.parser} parser\n"
                               f"{self.gateway.log_tail()}")
        self.upstream = self.backend.address.encode()
        return self

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        self.backend.stop()

    def __enter__(self) -> Harness:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- running cases ----------------------------------------------------------------------

    def run(self, seed: int, numbers: Iterable[int], concurrency: int = CONCURRENCY,
            progress: float = 0.0, on_finding: Callable[[Finding], None] | None = None,
            ) -> Report:
        """Send and judge cases ``numbers`` of campaign ``seed``. ``progress``: print the
        summary every so many seconds (0: never); ``on_finding``: called with each finding
        kept, as it is found."""
        report = Report(seed, on_finding=on_finding)
        started = time.monotonic()
        uvloop.run(self._run(seed, iter(numbers), concurrency, report, progress))
        report.seconds = time.monotonic() - started
        report.add(self.strays(seed))
        return report

    async def _run(self, seed: int, numbers, concurrency: int, report: Report,
                   progress: float) -> None:
        started = last = time.monotonic()

        async def worker() -> None:
            nonlocal last
            for number in numbers:
                case = make_case(seed, number, RULES)
                report.add(await self.judge(case, report))
                if progress and time.monotonic() - last > progress:
                    last = time.monotonic()
                    report.seconds = last - started
                    print(report.summary(), file=sys.stderr, flush=True)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def judge(self, case: Case, report: Report | None = None) -> list[Finding]:
        """Send one case, wait for the backend to settle, and check everything."""
        seen = await send_case(case, self.gateway.host, self.gateway.port)
        # the backend runs in another thread: give it a moment to have read what fastgw sent
        # before the client's connection ended, then wait while it is inside a request
        await asyncio.sleep(GRACE)
        settle = time.monotonic() + SETTLE
        while self.backend.is_busy(case.number) and time.monotonic() < settle:
            await asyncio.sleep(0.01)
        forwarded = self.backend.take(case.number)
        findings = self._check(case, seen, forwarded)
        self.recent[case.number] = (case, seen, forwarded, findings)
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)
        self.last_seen, self.last_forwarded = seen, forwarded
        if report is not None:
            report.cases += 1
            report.slowest = max(report.slowest, seen.seconds)
            report.endings[seen.ending] += 1
            report.forwarded += sum(1 for f in forwarded if f.complete)
            for status in _statuses(seen.received):
                report.statuses[status] += 1
        return findings + self.strays(case.seed)

    def _check(self, case: Case, seen: Seen, forwarded: list) -> list[Finding]:
        ctx = Context(RULES, self.upstream, case_address(case.number).encode())
        return check_case(case, seen, forwarded, ctx)

    def strays(self, seed: int) -> list[Finding]:
        """Requests that reached the backend after their case was judged (on a loaded machine
        the backend thread can lag): the case is judged again with them. Those that belong to
        no recent case are findings of their own."""
        findings = []
        for item in self.backend.take_strays():
            if item.case in self.recent:
                case, seen, forwarded, before = self.recent[item.case]
                forwarded = [*forwarded, item]
                again = self._check(case, seen, forwarded)
                self.recent[item.case] = (case, seen, forwarded, before + again)
                known = {(f.kind, f.detail) for f in before}
                findings += [f for f in again if (f.kind, f.detail) not in known]
                continue
            placeholder = Case(seed, -1, b"", [], True, ["(no case: see the detail)"])
            if item.case is None and XFF_UNKNOWN.search(item.raw):
                findings.append(Finding("xff-unknown", "a request reached the backend with "
                                        "the client address 'unknown' in X-Forwarded-For (its "
                                        f"client had gone already?): {item.describe()}",
                                        placeholder))
                continue
            findings.append(Finding("forwarded-stray", f"case {item.case}: {item.describe()}",
                                    placeholder))
        return findings

    def replay(self, seed: int, number: int) -> tuple[Case, list[Finding]]:
        """Run one case alone (to reproduce a finding)."""
        case = make_case(seed, number, RULES)
        return case, uvloop.run(self.judge(case))

    # -- the gateway after a campaign -----------------------------------------------------

    def finish(self) -> list[str]:
        """What is wrong with the gateway itself after the cases: [] when nothing."""
        problems = []
        gw = self.gateway
        if not gw.alive():
            problems.append(f"fastgw exited with status {gw.proc.returncode}")
        else:
            answer = probe(gw.host, gw.port)
            if answer is not None:
                problems.append(answer)
        for line in gw.log().splitlines():
            if "Traceback" in line or " ERROR " in line or " CRITICAL " in line:
                problems.append(f"fastgw logged: {line}")
        if problems:
            problems.append(gw.log_tail(60))
        return problems


def _statuses(received: bytes) -> list[int]:
    out = []
    for line in received.split(b"\r\n"):
        if line.startswith(b"HTTP/1.") and line[9:12].isdigit():
            out.append(int(line[9:12]))
    return out


async def send_case(case: Case, host: str, port: int, deadline: float = DEADLINE) -> Seen:
    """Connect from the case's own address, send its pieces (half-closing if it says so),
    then read until the gateway closes or the deadline passes.

    Plain non-blocking sockets, not a transport: a transport that fails to write closes
    itself and drops what it had not read yet, while the gateway's answer is usually there
    (a refusal while the client still sends)."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    end = started + deadline
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # thousands of short connections: their ports (TIME_WAIT ones too) must not keep another
    # test's SO_REUSEADDR listener off a port it was given (Linux checks both sockets' flag)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    received = bytearray()
    try:
        sock.bind((case_address(case.number), 0))
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), deadline)
        except (OSError, TimeoutError) as exc:
            return Seen(f"{exc!r}".encode(), "refused", time.monotonic() - started)
        sent_all = await _send(case, sock, loop)
        if case.abandon is not None:
            await asyncio.sleep(case.abandon)
            if case.reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return Seen(b"", "abandoned", time.monotonic() - started, sent_all)
        ending = "eof"
        while True:
            left = end - time.monotonic()
            if left <= 0:
                ending = "timeout"
                break
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65536), left)
            except TimeoutError:
                ending = "timeout"
                break
            except OSError:
                ending = "reset"
                break
            if not data:
                break
            received += data
    finally:
        sock.close()
    return Seen(bytes(received), ending, time.monotonic() - started, sent_all)


async def _send(case: Case, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> bool:
    try:
        pieces = case.pieces
        for i, piece in enumerate(pieces):
            await loop.sock_sendall(sock, piece)
            if i < len(pieces) - 1:
                await asyncio.sleep(0.002)  # separate reads on the gateway's side
        if case.half_close:
            sock.shutdown(socket.SHUT_WR)
        return True
    except OSError:
        return False  # the gateway refused and closed early: reading tells the rest


def probe(host: str, port: int) -> str | None:
    """A plain request after the campaign: None if answered 200 by the backend."""
    try:
        with socket.create_connection((host, port), timeout=5,
                                      source_address=(PROBE_ADDRESS, 0)) as sock:
            sock.sendall(b"GET /probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError as exc:
        return f"the plain request after the campaign failed: {exc!r}"
    try:
        msg = frame_response(data, 0, b"GET", eof=True)
    except Exception as exc:  # noqa: BLE001 (any failure to frame is the finding)
        return f"the plain request after the campaign got {data[:300]!r}: {exc}"
    if msg is None or msg.status != 200 or msg.body != b"ok":
        return f"the plain request after the campaign got {data[:300]!r}"
    return None
