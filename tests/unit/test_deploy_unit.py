"""The systemd unit in deploy/: what it must say, and that systemd itself accepts it.

The unit is read with a small parser of our own (systemd allows a key to repeat: ExecReload=
runs its commands in order, which configparser would collapse). ``systemd-analyze verify`` runs
when the binary exists; it reports problems on its output without always failing, so the test
reads both.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import msgspec
import pytest

from fastgw.config.schema import Config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "fastgw.service"
DOCS = ROOT / "docs" / "production.md"

BINARY = "/opt/fastgw/venv/bin/fastgw"
CONFIG = "/etc/fastgw/fastgw.yaml"
PIDFILE = "/run/fastgw/fastgw.pid"

Unit = dict[str, dict[str, list[str]]]


def read_unit(text: str) -> Unit:
    """Sections → key → every value given, in order. Handles comments and ``\\`` continuations."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section is not None, f"{UNIT}: not a key=value line in a section: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"{UNIT}: [{section}] has no {key}="
    assert len(values) == 1, f"{UNIT}: [{section}] {key}= is given {len(values)} times"
    return values[0]


def seconds(span: str) -> float:
    """A systemd time span as used in this unit: ``40``, ``40s``, ``1min``, ``1min 30s``."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for part in span.split():
        number = part.rstrip("abcdefghijklmnopqrstuvwxyz")
        total += float(number) * units[part[len(number):]]
    return total


@pytest.fixture(scope="module")
def unit() -> Unit:
    return read_unit(UNIT.read_text())


@pytest.fixture(scope="module")
def service(unit: Unit) -> dict[str, list[str]]:
    return unit["Service"]


def test_start_checks_the_config_then_runs_with_the_pidfile(unit: Unit) -> None:
    assert shlex.split(one(unit, "Service", "ExecStartPre")) == [BINARY, "check", "-c", CONFIG]
    start = shlex.split(one(unit, "Service", "ExecStart"))
    assert start[:4] == [BINARY, "run", "-c", CONFIG]
    assert start[start.index("--pidfile") + 1] == one(unit, "Service", "PIDFile") == PIDFILE
    assert one(unit, "Service", "Type") in ("simple", "exec")


def test_reload_validates_then_waits_for_the_master(service: dict[str, list[str]]) -> None:
    commands = [shlex.split(line) for line in service["ExecReload"]]
    assert commands == [
        [BINARY, "check", "-c", CONFIG],
        [BINARY, "reload", "--pidfile", PIDFILE],
    ]


def test_pidfile_lives_in_the_runtime_directory(unit: Unit) -> None:
    pidfile = PurePosixPath(one(unit, "Service", "PIDFile"))
    assert pidfile.parent == PurePosixPath("/run") / one(unit, "Service", "RuntimeDirectory")


def test_stop_is_graceful_and_outlasts_shutdown_timeout(unit: Unit) -> None:
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    assert one(unit, "Service", "KillMode") == "mixed"
    default = next(f.default for f in msgspec.structs.fields(Config) if f.name == "shutdown_timeout")
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > max(default, 30)


def test_restarts_on_failure_only(unit: Unit) -> None:
    assert one(unit, "Service", "Restart") == "on-failure"
    assert seconds(one(unit, "Service", "RestartSec")) > 0


def test_open_files_limit(unit: Unit) -> None:
    soft = one(unit, "Service", "LimitNOFILE").partition(":")[0]
    assert int(soft) >= 65536


def test_runs_unprivileged_and_binds_low_ports_by_capability(unit: Unit) -> None:
    service = unit["Service"]
    assert service.get("DynamicUser") == ["yes"] or service.get("User", ["root"])[-1] != "root"
    assert one(unit, "Service", "CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    assert one(unit, "Service", "AmbientCapabilities") == "CAP_NET_BIND_SERVICE"


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
}


@pytest.mark.parametrize("key", HARDENING)
def test_hardening(unit: Unit, key: str) -> None:
    assert one(unit, "Service", key) == HARDENING[key]


def test_docs_use_the_units_paths() -> None:
    docs = DOCS.read_text()
    for path in (BINARY, CONFIG, PIDFILE, "deploy/fastgw.service"):
        assert path in docs, f"{DOCS} does not mention {path}"


def _verify(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    """Run ``systemd-analyze verify`` on TEXT with the binary path pointed at this venv's fastgw
    (verify checks that ExecStart= and friends are executable). Returns the exit status and the
    output lines about this unit."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was parsed but not verified")
    fastgw = Path(sys.executable).parent / "fastgw"
    if not fastgw.exists():
        fastgw = Path(shutil.which("fastgw") or fastgw)
    assert fastgw.exists(), "no fastgw console script: install the package (pip install -e .)"
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(BINARY, str(fastgw)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in lines if UNIT.name in line]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    status, complaints = _verify(tmp_path, UNIT.read_text())
    assert (status, complaints) == (0, [])


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above has teeth: a misspelt key only prints a warning, and is still caught."""
    text = UNIT.read_text().replace("KillMode=", "KilMode=")
    status, complaints = _verify(tmp_path, text)
    assert any("Unknown key" in line and "KilMode" in line for line in complaints), complaints
