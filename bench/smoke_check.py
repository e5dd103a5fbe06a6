"""A smoke check of the benchmark harness itself: one short run end to end.

Not collected by any default pytest run (its name matches no ``python_files`` pattern); run it
by naming the file, after ``pip install -e '.[test,bench]'``:

    .venv/bin/pytest bench/smoke_check.py

It needs wrk and nginx (the harness installs them with apt-get when it runs as root) and takes
about 20 seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_quick_run_writes_table_chart_and_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--rounds", "1", "--duration", "1",
         "--warmup", "0", "--scenarios", "get-keepalive,idle-1k",
         "--proxies", "backend,fastgw,nginx", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = json.loads((tmp_path / "quick.json").read_text())
    summary = run["scenarios"]["get-keepalive"]["summary"]
    for name in ("backend", "fastgw", "nginx"):
        assert summary[name]["rounds"] == 1, summary[name]
        assert summary[name]["rps"] > 0
        assert summary[name]["errors"] == 0
    assert summary["fastgw"]["rps_vs_nginx"] > 0
    assert summary["fastgw"]["user_us_per_req"] > 0
    assert run["idle"]["fastgw"]["open"] == 1000
    assert "| fastgw |" in (tmp_path / "quick.md").read_text()
    assert (tmp_path / "quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
