"""Setup before measuring: the system tools (apt) and Python peers (pip) the harness needs, the
compiled fastgw extension, and a description of the machine for the results file.

Everything installed is announced on stdout first. Nothing here measures anything.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APT_TOOLS = {"wrk": "wrk", "nginx": "nginx-light", "haproxy": "haproxy"}
APT_PACKAGES = ["wrk", "nginx-light", "haproxy"]
PIP_MODULES = {"aiohttp": "aiohttp", "proxy": "proxy.py", "matplotlib": "matplotlib",
               "locust": "locust"}


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/local/sbin")


def ensure_tools(tools: list[str]) -> None:
    """apt-get install the packages when one of ``tools`` is missing (root only)."""
    for sbin in ("/usr/sbin", "/sbin"):  # nginx and haproxy live there; a user's PATH may lack it
        if sbin not in os.environ.get("PATH", "").split(":"):
            os.environ["PATH"] = os.environ.get("PATH", "") + ":" + sbin
    missing = [tool for tool in tools if _which(tool) is None]
    if not missing:
        return
    command = ["apt-get", "install", "-y", *APT_PACKAGES]
    if os.geteuid() != 0:
        sys.exit(f"bench: missing {', '.join(missing)}; install them with: "
                 f"sudo {' '.join(command)}")
    print(f"bench: {', '.join(missing)} not found; running apt-get update && "
          f"{' '.join(command)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(command, check=True, env=env)
    if "nginx" in missing and shutil.which("systemctl") is None:
        print("bench: note: Debian's nginx package may have started a system nginx on port 80; "
              "it stays idle during the benchmark", flush=True)
    still = [tool for tool in tools if _which(tool) is None]
    if still:
        sys.exit(f"bench: still missing after apt-get: {', '.join(still)}")


def ensure_python_packages(modules: list[str]) -> None:
    """pip install into this interpreter's environment whatever of ``modules`` is missing."""
    missing = [PIP_MODULES[m] for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    command = [sys.executable, "-m", "pip", "install", *missing]
    print(f"bench: installing into {sys.prefix}: {' '.join(missing)}", flush=True)
    subprocess.run(command, check=True)
    importlib.invalidate_caches()


def ensure_fastgw_compiled() -> None:
    """Build the Cython extension in place when the compiled parser does not load."""
    if _parser_in_use() == "compiled":
        return
    print("bench: fastgw's compiled parser is not built; running "
          "python setup.py build_ext --inplace", flush=True)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=REPO, check=True)
    if _parser_in_use() != "compiled":
        sys.exit("bench: fastgw's compiled parser still does not load; see the build output")


def _parser_in_use() -> str:
    env = {k: v for k, v in os.environ.items() if k != "FASTGW_PURE"}
    done = subprocess.run([sys.executable, "-c", "import fastgw._core as c; "
                           "print(c.IMPLEMENTATION)"],
                          capture_output=True, text=True, cwd=REPO, env=env)
    return done.stdout.strip()


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else ""


def _word(line: str, index: int) -> str:
    words = line.split()
    return words[index] if len(words) > index else line


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """CPU, cores, memory, kernel, OS and the versions of everything measured."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    os_name = platform.platform()
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.partition("=")[2].strip('"')
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=REPO).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "fastgw"],
                           capture_output=True, text=True, cwd=REPO).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": os_name,
        "versions": {
            "fastgw": _first_line([sys.executable, "-m", "fastgw", "version"])
            .removeprefix("fastgw "),
            "fastgw_git": git + (" (fastgw/ modified)" if dirty else ""),
            "python": platform.python_version(),
            "nginx": _first_line([_which("nginx") or "nginx", "-v"]).rpartition("/")[2],
            "haproxy": _word(_first_line([_which("haproxy") or "haproxy", "-v"]), 2),
            "wrk": _word(_first_line(["wrk", "-v"]), 1),
            "uvloop": _version("uvloop"),
            "aiohttp": _version("aiohttp"),
            "proxy.py": _version("proxy.py"),
            "locust": _version("locust"),
        },
    }
