"""The master's pidfile and its status file (``PIDFILE.status``, JSON), which ``fastgw reload``
and ``fastgw plan`` read.

The status file says which generation every worker serves, how the last reload went, and
holds the running configuration's text, so ``fastgw plan`` can diff a new file against what is
actually running even after the file on disk has been edited. It is replaced atomically
(write, then rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class StatusError(Exception):
    """The pidfile or status file is missing or unreadable; the message says which and why."""


def status_path(pidfile: str) -> Path:
    return Path(f"{pidfile}.status")


def write_pidfile(pidfile: str) -> None:
    _replace(Path(pidfile), f"{os.getpid()}\n")


def write_status(pidfile: str, status: dict) -> None:
    _replace(status_path(pidfile), json.dumps(status, indent=1) + "\n")


def remove(pidfile: str) -> None:
    """Remove both files, if they are still ours (a newer master may have taken the path)."""
    try:
        if Path(pidfile).read_text().strip() != str(os.getpid()):
            return
    except OSError:
        return
    for path in (status_path(pidfile), Path(pidfile)):
        try:
            path.unlink()
        except OSError:
            pass


def read_pid(pidfile: str) -> int:
    try:
        text = Path(pidfile).read_text().strip()
    except OSError as exc:
        raise StatusError(f"cannot read pidfile {pidfile}: {exc.strerror or exc}") from None
    if not text.isdigit():
        raise StatusError(f"pidfile {pidfile} does not hold a process id: {text[:40]!r}")
    return int(text)


def read_status(pidfile: str) -> dict:
    path = status_path(pidfile)
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise StatusError(f"cannot read status file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise StatusError(f"status file {path} is not valid JSON: {exc}") from None


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
