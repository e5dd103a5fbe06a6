"""Durations and sizes as people write them in a config file ("10s", "64KiB"), and back.

Pure functions over plain values. They raise ``ValueError`` (``TypeError`` for a value of the
wrong kind) with an "expected ..., got ..." message and know nothing about files or paths: the
loader adds those. Numbers go through ``Decimal`` so "300ms" is exactly 0.3 and "1.5KB" 1500.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = [
    "Duration",
    "Size",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
    "show",
]


class Duration(float):
    """Schema marker: a field decoded from "500ms", "10s", "2m", "1h" or a number of seconds.

    Decoding turns it into seconds; the owning Struct stores a plain ``float``.
    """


class Size(int):
    """Schema marker: a field decoded from "512B", "64KiB", "1MB" or a plain number of bytes.

    Decoding turns it into bytes; the owning Struct stores a plain ``int``.
    """


_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>ms|s|m|h)?")
_SECONDS_PER = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
_DURATION_FORMS = 'a duration such as "500ms", "10s", "2m", "1h" or a number of seconds'

_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>[A-Za-z]+)?")
_BYTES_PER = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE_FORMS = 'a size such as "512B", "64KiB", "1MiB", "1GiB", "100KB" or a number of bytes'


_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t"} | {
    chr(c): f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if chr(c) not in "\r\n\t"}


def show(value: object) -> str:
    """Render a value from a config file for an error message, the way the user wrote it."""
    if isinstance(value, str):  # escaped as YAML and JSON would: one line, whatever it holds
        text = value.replace("\\", "\\\\").replace('"', '\\"')
        text = "".join(_ESCAPES.get(c, c) if c < " " or c == "\x7f" else c for c in text)
        return '"' + text + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)


def parse_duration(value: object) -> float:
    """Seconds (a plain float > 0) from a number of seconds or a string like "500ms"."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected {_DURATION_FORMS}, got {show(value)}")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"expected {_DURATION_FORMS}, got {show(value)}")
        seconds = float(Decimal(match["number"]) * _SECONDS_PER[match["unit"] or "s"])
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a duration > 0, got {show(value)}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes (a plain int > 0) from an integer or a string like "64KiB"."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"expected {_SIZE_FORMS}, got {show(value)}")
    if isinstance(value, str):
        count = _size_from_text(value)
    else:
        count = value
    if count <= 0:
        raise ValueError(f"expected a size > 0, got {show(value)}")
    return int(count)


def _size_from_text(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    unit = (match["unit"] or "b").lower() if match else None
    if match is None or unit not in _BYTES_PER:
        raise ValueError(f"expected {_SIZE_FORMS}, got {show(text)}")
    count = Decimal(match["number"]) * _BYTES_PER[unit]
    if count != count.to_integral_value():
        raise ValueError(f"expected a whole number of bytes, got {show(text)}")
    return int(count)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration ("1m", "75s", "500ms"); parses back unchanged."""
    exact = Decimal(repr(float(seconds)))
    for unit in ("h", "m", "s", "ms"):
        amount = exact / _SECONDS_PER[unit]
        if amount == amount.to_integral_value():
            return f"{int(amount)}{unit}"
    return f"{exact.normalize():f}s"


def format_size(count: int) -> str:
    """The shortest exact spelling of a size ("64KiB", "100KB", "777B"); parses back unchanged."""
    for unit in ("GiB", "MiB", "KiB", "GB", "MB", "KB"):
        factor = _BYTES_PER[unit.lower()]
        if count % factor == 0:
            return f"{count // factor}{unit}"
    return f"{count}B"
