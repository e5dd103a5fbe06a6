"""Read a configuration file into a checked ``Config``, or fail with one ``ConfigError``.

Reading comes first: a file that is too large, or that changes while it is read (rewritten in
place by an editor), is refused before anything parses it (``read_stable``). Then three steps,
each with its own kind of error, all reported as "FILE: WHERE: WHAT":
  1. parse the text (YAML, TOML or JSON by extension) into plain values: syntax errors, with a
     line and column where the parser gives one;
  2. convert those values into the schema's Structs with msgspec: type errors and unknown
     fields, with msgspec's JSONPath (``$.upstreams.app.targets[0].address``);
  3. semantic checks across fields (unknown upstream names, duplicates, addresses).
msgspec writes a dict key in a path as ``[...]``; step 2 finds the real key by converting each
entry alone, so every message names the exact place. Nothing here opens sockets or starts tasks.
"""

from __future__ import annotations

import codecs
import difflib
import ipaddress
import os
import re
import stat
import time
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from .routes import STICKY_ON, STICKY_ON_EXAMPLE, route_rewrite_problems, versioning_problems
from .schema import HASH_ON, HASH_ON_EXAMPLE, Config, Route, Upstream, Versioning, parse_address
from .units import Duration, Size, format_size, parse_duration, parse_size, show

__all__ = ["ConfigError", "load_config", "load_config_bytes", "read_config_file", "read_stable"]

MAX_SIZE = 8 * 1024 * 1024  # 40,000 routes take 3 MiB (YAML) to 5 MiB (JSON, indented)
MAX_SIZE_VARIABLE = "FASTGW_MAX_CONFIG_SIZE"  # replaces MAX_SIZE: "32MiB"
MAX_KEY_PARTS = 32  # of a TOML dotted key (a.b.c); a configuration needs about 6
SETTLE = 0.1  # seconds a file must have been left alone before it is trusted to be whole
STABLE_WAIT = 0.5  # how long to wait for a file that keeps changing before giving up

_DECODERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    ".yaml": ("YAML", msgspec.yaml.decode),
    ".yml": ("YAML", msgspec.yaml.decode),
    ".toml": ("TOML", msgspec.toml.decode),
    ".json": ("JSON", msgspec.json.decode),
}


class ConfigError(Exception):
    """A configuration file that cannot be used, and the one place in it that says why.

    ``where`` is a JSONPath like ``$.routes[2].upstream``, "line 3, column 5" for a syntax
    error, or None when the problem is the file as a whole.
    """

    def __init__(self, filename: str, message: str, where: str | None = None) -> None:
        super().__init__(filename, message, where)
        self.filename = filename
        self.message = message
        self.where = where

    def __str__(self) -> str:
        if self.where is None:
            return f"{self.filename}: {self.message}"
        return f"{self.filename}: {self.where}: {self.message}"


def load_config(path: str | os.PathLike[str]) -> Config:
    """Load and check the configuration file at ``path``; the extension picks the format."""
    filename = os.fspath(path)
    return load_config_bytes(read_config_file(filename), filename)


def read_config_file(filename: str) -> bytes:
    """The file's bytes (kept by a reload, to checksum and to diff later); ConfigError if its
    extension names no format we know, or ``read_stable`` refuses it."""
    _decoder(filename)
    return read_stable(filename, max_size())


def max_size() -> int:
    """The largest configuration file read: MAX_SIZE, or $FASTGW_MAX_CONFIG_SIZE."""
    text = os.environ.get(MAX_SIZE_VARIABLE)
    if not text:
        return MAX_SIZE
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ConfigError(MAX_SIZE_VARIABLE, str(exc)) from None


def read_stable(filename: str, limit: int = MAX_SIZE) -> bytes:
    """The file's bytes, taken only while the file holds still; ConfigError otherwise.

    A file rewritten in place (editors, ``cat > file``, tools that don't rename) is truncated
    and written in pieces. Read in between, it can be a shorter file that still parses (a
    route table cut before its catch-all route) and a reload would apply it. So a read counts
    only if the file's identity (device, inode), size and mtime are the same before and after
    it, by its path too (not replaced meanwhile); and a file modified less than SETTLE ago may
    still be being written: wait until it was left alone that long, and look again. SETTLE is
    far longer than the pauses between one program's writes and than the mtime's granularity
    on Linux (a clock tick, 1-10 ms; where it is a second or two, only the before-and-after
    check is left), and short enough that reloading a file written just before the signal
    waits a tenth of a second at most. A writer held up for longer than SETTLE in the middle
    of its writes cannot be told from one that has finished: renaming is the safe way, and a
    file written under a temporary name and renamed into place is never seen half written. A
    file still changing after STABLE_WAIT is refused (a reload keeps the generation it
    serves). Pipes are read once.
    """
    deadline = time.monotonic() + STABLE_WAIT
    unchanged: tuple[int, ...] | None = None  # the file as seen before the last pause
    while True:
        data, before, after = _read_once(filename, limit)
        if not stat.S_ISREG(before.st_mode):
            return data
        pause = SETTLE
        if after is not None:  # nothing moved while it was read
            age = time.time() - after.st_mtime_ns / 1e9
            # old enough; or the same across a pause (its mtime is ahead of our clock)
            if age >= SETTLE or _fingerprint(after) == unchanged:
                return data
            unchanged = _fingerprint(after)
            pause = min(SETTLE - age, SETTLE)
        if time.monotonic() + pause > deadline:
            raise ConfigError(
                filename, f"the file kept changing while it was read (for {STABLE_WAIT:g}s); "
                "write the new version to a temporary file in the same directory and rename "
                "it over this one")
        time.sleep(pause)


def _read_once(filename: str, limit: int) -> tuple[bytes, os.stat_result, os.stat_result | None]:
    """(the bytes, the file's stat before reading, its stat after: None if it changed)."""
    try:
        with open(filename, "rb") as file:
            before = os.fstat(file.fileno())
            if before.st_size > limit:
                raise ConfigError(filename, _too_large(before.st_size, limit))
            # no more than the file holds (plus one byte, to see it grow), and a pipe by the
            # MiB: a huge limit must not become a huge allocation
            if stat.S_ISREG(before.st_mode):
                data = file.read(min(limit, before.st_size) + 1)
            else:
                pieces, got = [], 0
                while got <= limit and (piece := file.read(min(limit + 1 - got, 1 << 20))):
                    pieces.append(piece)
                    got += len(piece)
                data = b"".join(pieces)
            after = os.fstat(file.fileno())
        by_path = os.stat(filename)
    except OSError as exc:
        raise ConfigError(filename, f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(filename, _too_large(len(data), limit))
    still = (_fingerprint(before) == _fingerprint(after) == _fingerprint(by_path)
             and len(data) == after.st_size)
    return data, before, after if still else None


def _fingerprint(info: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written to, or replaced by another."""
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _too_large(size: int, limit: int) -> str:
    enough = limit * 2
    while enough < size:  # a suggestion that covers this file
        enough *= 2
    return (f"the file has {size} bytes, more than the {format_size(limit)} a configuration "
            f"may have; to allow larger files, set {MAX_SIZE_VARIABLE} in the environment of "
            f"the command (of `fastgw run`, for reloads: a restart) "
            f'(e.g. {MAX_SIZE_VARIABLE}={format_size(enough)})')


def load_config_bytes(data: bytes, filename: str) -> Config:
    """Load and check a configuration held in memory; ``filename``'s suffix picks the format.

    Whatever the bytes, the outcome is a Config or a ConfigError: a decoder that runs out of
    stack or memory on a hostile file is reported in one line like any other error."""
    try:
        return _load(data, filename)
    except RecursionError:
        raise ConfigError(filename, _too_deep("too deeply to decode")) from None
    except MemoryError:
        raise ConfigError(filename, f"not enough memory to load its {len(data)} bytes") from None


def _too_deep(how: str) -> str:
    return f"lists and mappings are nested {how}; a configuration needs about 6 levels"


def _load(data: bytes, filename: str) -> Config:
    raw = _parse(data, filename)
    try:
        config = msgspec.convert(raw, Config, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        where, message = _explain(str(exc), raw)
        raise ConfigError(filename, message, where) from None
    for where, message in _problems(config, raw):
        raise ConfigError(filename, message, where)
    return config


# --- step 1: text to plain values -------------------------------------------------------------


def _decoder(filename: str) -> tuple[str, Callable[[str], Any]]:
    suffix = Path(filename).suffix.lower()
    if suffix not in _DECODERS:
        known = ", ".join(_DECODERS)
        raise ConfigError(
            filename, f"unknown configuration format {show(suffix)}; expected {known}"
        )
    return _DECODERS[suffix]


def _parse(data: bytes, filename: str) -> Any:
    language, decode = _decoder(filename)
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(filename, "expected UTF-8 text", _line_column(data, exc.start)) from None
    if not text.strip():
        raise ConfigError(
            filename, "the file is empty; expected at least listen, upstreams, routes"
        )
    if problem := _dotted_key_problem(text, language):
        raise ConfigError(filename, problem)
    try:
        raw = decode(text)
    except msgspec.DecodeError as exc:
        where, message = _explain_syntax(str(exc), data)
        raise ConfigError(filename, f"invalid {language}: {message}", where) from None
    if raw is None:
        raise ConfigError(filename, "the file has no values; expected listen, upstreams, routes")
    return raw


# The ".b.c" of a dotted key "a.b.c"; a part is a bare word or a quoted string. It starts at
# a dot (a pattern that could start in a run of blanks would try each of them) and never
# backtracks, so one pass over the text finds every key.
_PART = r"""(?:[\w-]++|"(?:[^"\\\n]++|\\.)*+"|'[^'\n]*+')"""
_DOTTED_KEY_TAIL = re.compile(rf"\.[ \t]*+{_PART}(?:[ \t]*+\.[ \t]*+{_PART})*+")


def _dotted_key_problem(text: str, language: str) -> str | None:
    """A TOML dotted key of more than MAX_KEY_PARTS parts, refused before decoding: tomllib takes
    time quadratic in a key's length (a key of 100,000 parts: minutes, in a 200 KB file).
    Nesting by brackets needs no scan: every decoder stops at a depth limit of its own
    (msgspec's JSON decoder and tomllib at Python's recursion limit, libyaml at 1,000
    levels) with an exception that load_config_bytes turns into a one-line error. The scan
    reads the raw text, so a string holding a dotted name of that many parts counts too."""
    if language != "TOML":
        return None
    dots = max((tail[0].count(".") for tail in _DOTTED_KEY_TAIL.finditer(text)), default=0)
    if dots + 1 > MAX_KEY_PARTS:
        return f"a dotted key has more than {MAX_KEY_PARTS} parts; a configuration needs about 6"
    return None


_YAML_MARK = re.compile(r'\s+in "<[^>]*>", line (\d+), column (\d+)')
_TOML_MARK = re.compile(r"(.*) \(at line (\d+), column (\d+)\)", re.DOTALL)
_JSON_MARK = re.compile(r"(.*) \(byte (\d+)\)", re.DOTALL)


def _explain_syntax(text: str, data: bytes) -> tuple[str | None, str]:
    """(where, what) from a parser's message: PyYAML's marks, tomllib's or msgspec's offsets."""
    if match := _TOML_MARK.fullmatch(text):
        return f"line {match[2]}, column {match[3]}", _lower_first(match[1])
    if match := _JSON_MARK.fullmatch(text):
        message = _lower_first(match[1].removeprefix("JSON is malformed: "))
        return _line_column(data, int(match[2])), message
    if text == "Input data was truncated":
        return _line_column(data, len(data)), "unexpected end of file"
    return _explain_yaml(text)


def _explain_yaml(text: str) -> tuple[str | None, str]:
    """PyYAML says "context, its mark, problem, its mark"; keep the problem's place first."""
    notes: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        mark = _YAML_MARK.fullmatch(line)
        if mark and notes:
            notes[-1] = (notes[-1][0], f"line {mark[1]}, column {mark[2]}")
        elif line.strip():
            notes.append((line.strip(), None))
    if not notes:
        return None, text
    problem, where = notes[-1]
    for context, context_where in notes[:-1]:
        problem += f" ({context}" + (f" at {context_where})" if context_where else ")")
    return where, problem


def _line_column(data: bytes, offset: int) -> str:
    before = data[:offset]
    line = before.count(b"\n") + 1
    column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
    return f"line {line}, column {column}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# --- step 2: plain values to Structs ----------------------------------------------------------


def _dec_hook(tp: type, value: Any) -> Any:
    """Durations and sizes; a ValueError or TypeError here becomes an error at the field's path."""
    if tp is Duration:
        return Duration(parse_duration(value))
    if tp is Size:
        return Size(parse_size(value))
    raise NotImplementedError(f"no decoder for {tp!r}")


_AT = re.compile(
    r"(?P<message>.*?)(?: - at `(?P<path>[^`]*)`(?: in `(?P<outer>[^`]*)`)?)?", re.DOTALL
)
_SEGMENT = re.compile(r"\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+|\.\.\.)\]")
_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
_MISSING = object()


def _explain(text: str, raw: Any) -> tuple[str, str]:
    """Reword a msgspec ValidationError as (exact path, "expected ..., got ...")."""
    match = _AT.fullmatch(text)
    assert match is not None  # the pattern matches any text
    message, path = match["message"], match["path"] or "$"
    if match["outer"] is not None:  # the error is about a mapping's key, not a value
        spot = _Spot.find(raw, match["outer"])
        return spot.path, _reword_expected(message, _MISSING, subject="every key to be ")
    spot = _Spot.find(raw, path)
    if spot.path == "$.workers":  # a number or a word: msgspec would name only one of them
        expected = 'expected a number of workers (1 to 1024) or "auto"'
        return spot.path, f"{expected}, got {show(spot.value)}"
    if unknown := re.fullmatch(r"Object contains unknown field `(.*)`", message):
        return _unknown_field(spot, unknown[1])
    if missing := re.fullmatch(r"Object missing required field `(.*)`", message):
        return spot.path, f'missing required field "{missing[1]}"'
    if re.match(r"Invalid enum value ", message) and typing.get_origin(spot.type) is Literal:
        allowed = ", ".join(str(value) for value in typing.get_args(spot.type))
        return spot.path, f"expected one of {allowed}, got {show(spot.value)}"
    return spot.path, _reword_expected(message, spot.value)


def _reword_expected(message: str, value: Any, subject: str = "") -> str:
    """Reword "Expected `str | array`, got `int`" as "expected a string or a list, got 3"."""
    match = re.fullmatch(r"Expected `([^`]*)`(.*?)(?:, got `([^`]*)`)?", message, re.DOTALL)
    if match is None:
        return _lower_first(message)
    expected = subject + " or ".join(
        _TYPE_WORDS.get(word.strip(), word.strip()) for word in match[1].split("|")
    )
    if value is not _MISSING:
        got = show(value)
    elif match[3] is not None:
        got = _TYPE_WORDS.get(match[3], match[3])
    else:
        return f"expected {expected}{match[2]}"
    return f"expected {expected}{match[2]}, got {got}"


def _unknown_field(spot: _Spot, name: str) -> tuple[str, str]:
    struct = _pick(spot.type, _is_struct)
    if struct is None:
        return spot.path + _key(name), "unknown field"
    known = [field.encode_name for field in msgspec.structs.fields(struct)]
    message = f"unknown field; expected one of {', '.join(known)}"
    if close := difflib.get_close_matches(name, known, n=1):
        message += f' (did you mean "{close[0]}"?)'
    return spot.path + _key(name), message


class _Spot:
    """A place in the file: its rendered path, the raw value there and its schema type."""

    def __init__(self, path: str, value: Any, tp: Any) -> None:
        self.path, self.value, self.type = path, value, tp

    @classmethod
    def find(cls, raw: Any, msgspec_path: str) -> _Spot:
        spot = cls("$", raw, Config)
        for segment in _SEGMENT.finditer(msgspec_path):
            if segment["name"] is not None:
                spot = spot._field(segment["name"])
            elif segment["index"] == "...":
                spot = spot._failing_entry()
            else:
                spot = spot._item(int(segment["index"]))
        return spot

    def _field(self, name: str) -> _Spot:
        value = self.value.get(name, _MISSING) if isinstance(self.value, dict) else _MISSING
        struct = _pick(self.type, _is_struct)
        tp = typing.get_type_hints(struct).get(name) if struct is not None else None
        return _Spot(self.path + _key(name), value, tp)

    def _item(self, index: int) -> _Spot:
        ok = isinstance(self.value, list) and index < len(self.value)
        value = self.value[index] if ok else _MISSING
        listing = _pick(self.type, lambda tp: typing.get_origin(tp) is list)
        tp = typing.get_args(listing)[0] if listing is not None else None
        return _Spot(f"{self.path}[{index}]", value, tp)

    def _failing_entry(self) -> _Spot:
        """msgspec reports a dict entry as ``[...]``: convert entries alone to find which."""
        mapping = _pick(self.type, lambda tp: typing.get_origin(tp) is dict)
        if mapping is None or not isinstance(self.value, dict):
            return _Spot(self.path + "[...]", _MISSING, None)
        value_type = typing.get_args(mapping)[1]
        for key, value in self.value.items():
            try:
                msgspec.convert(value, value_type, dec_hook=_dec_hook)
            except msgspec.ValidationError:
                return _Spot(self.path + _key(str(key)), value, value_type)
        return _Spot(self.path + "[...]", _MISSING, value_type)


def _pick(tp: Any, wanted: Callable[[Any], bool]) -> Any:
    """``tp`` itself, or the member of a union ``tp`` that ``wanted`` accepts, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next((member for member in typing.get_args(tp) if wanted(member)), None)
    return tp if tp is not None and wanted(tp) else None


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _key(name: str) -> str:
    """A mapping key as a JSONPath step: ``.app``, or ``["my app"]`` when it is not a word."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        return "." + name
    return "[" + show(name) + "]"


# --- step 3: semantic checks ------------------------------------------------------------------

Problem = tuple[str, str]


def _problems(config: Config, raw: dict[str, Any]) -> Iterator[Problem]:
    """Every rule that spans fields, in file order; the loader reports the first."""
    yield from _listen_problems(config.listen, isinstance(raw.get("listen"), str))
    yield from _upstream_problems(config.upstreams)
    yield from _route_problems(config.routes, raw.get("routes", []), config.upstreams,
                               config.versioning)
    if config.versioning is not None:
        yield from versioning_problems(config.versioning, "$.versioning")
    yield from _compile_problems(config)


def _compile_problems(config: Config) -> Iterator[Problem]:
    """What only compiling the routes finds (e.g. a wildcard host in the wrong place)."""
    from ..plan import compile_plan
    from ..routing import RouteError

    try:
        compile_plan(config)
    except RouteError as exc:
        field = exc.field.split("[", 1)[0]
        yield f"$.routes[{exc.index}].match.{field}", exc.why


MAX_LISTEN = 64


def _listen_problems(listen: list[str], written_as_one: bool) -> Iterator[Problem]:
    if not listen:
        yield "$.listen", 'expected at least one "host:port" address, got an empty list'
    if len(listen) > MAX_LISTEN:  # each is a socket per worker, handed over in one message
        yield "$.listen", f"expected at most {MAX_LISTEN} addresses, got {len(listen)}"
    seen: dict[tuple[str, int], str] = {}
    for index, address in enumerate(listen):
        path = "$.listen" if written_as_one else f"$.listen[{index}]"
        try:
            identity = _identity(address)
        except ValueError as exc:
            yield path, f"{exc}, got {show(address)}"
            continue
        for other, other_path in seen.items():
            if other == identity:
                yield path, f"duplicate listen address {show(address)} (also at {other_path})"
            elif _overlaps(identity, other):
                yield path, f"listen address {show(address)} overlaps {other_path} (same port)"
        seen[identity] = path


def _identity(address: str) -> tuple[str, int]:
    """What a listener or target is, independent of spelling ("[::0]" is "[::]")."""
    host, port = parse_address(address)
    try:
        return ipaddress.ip_address(host).compressed, port
    except ValueError:
        return host.lower(), port


def _overlaps(one: tuple[str, int], other: tuple[str, int]) -> bool:
    """A wildcard listener takes its port on every address of its family."""
    if one[1] != other[1]:
        return False
    for wildcard, family in (("0.0.0.0", ipaddress.IPv4Address), ("::", ipaddress.IPv6Address)):
        hosts = {one[0], other[0]}
        if wildcard in hosts and all(_is_ip(host, family) for host in hosts):
            return True
    return False


def _is_ip(host: str, family: type) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), family)
    except ValueError:
        return False


def _upstream_problems(upstreams: dict[str, Upstream]) -> Iterator[Problem]:
    if not upstreams:
        yield "$.upstreams", "expected at least one upstream, got an empty mapping"
    for name, upstream in upstreams.items():
        path = "$.upstreams" + _key(name)
        if not upstream.targets:
            yield f"{path}.targets", "expected at least one target, got an empty list"
        seen: dict[tuple[str, int], str] = {}
        for index, target in enumerate(upstream.targets):
            target_path = f"{path}.targets[{index}].address"
            try:
                identity = _identity(target.address)
            except ValueError as exc:
                yield target_path, f"{exc}, got {show(target.address)}"
                continue
            if identity in seen:
                yield (
                    target_path,
                    (
                        f"duplicate target {show(target.address)} (also at {seen[identity]}); "
                        "give one target a larger weight instead"
                    ),
                )
            seen.setdefault(identity, target_path)
        yield from _balance_problems(upstream, path)


def _balance_problems(upstream: Upstream, path: str) -> Iterator[Problem]:
    if upstream.balance == "consistent_hash":
        if upstream.hash_on is None:
            yield (f"{path}.hash_on",
                   f"balance consistent_hash needs a key: expected hash_on: {HASH_ON_EXAMPLE}")
        elif not HASH_ON.fullmatch(upstream.hash_on):
            yield (f"{path}.hash_on",
                   f"expected {HASH_ON_EXAMPLE}, got {show(upstream.hash_on)}")
        for index, target in enumerate(upstream.targets):
            if target.backup:
                yield (f"{path}.targets[{index}].backup",
                       "backup targets cannot be used with balance consistent_hash "
                       "(as in nginx): remove backup, or use round_robin or least_conn")
    elif upstream.hash_on is not None:
        yield (f"{path}.hash_on",
               f"hash_on is only used with balance: consistent_hash (this upstream uses "
               f"{upstream.balance})")


def _route_problems(
    routes: list[Route], raw_routes: list[Any], upstreams: dict[str, Upstream],
    versioning: Versioning | None = None,
) -> Iterator[Problem]:
    if not routes:
        yield "$.routes", "expected at least one route, got an empty list"
    names: dict[str, str] = {}
    for index, route in enumerate(routes):
        path = f"$.routes[{index}]"
        yield from _match_problems(route, f"{path}.match")
        yield from _action_problems(route, path, upstreams)
        yield from route_rewrite_problems(route, path, versioning)
        if route.name in names:
            yield f"{path}.name", _duplicate_name(route.name, names[route.name], raw_routes[index])
        names.setdefault(route.name, f"{path}.name")


def _unknown_upstream(name: str, upstreams: dict[str, Upstream]) -> str:
    defined = ", ".join(upstreams) or "none"
    return f"unknown upstream {show(name)}; defined upstreams: {defined}"


def _action_problems(route: Route, path: str, upstreams: dict[str, Upstream]) -> Iterator[Problem]:
    """A route sends to one upstream, or splits between several (canary)."""
    if (route.upstream is None) == (route.split is None):
        yield path, 'expected "upstream" or "split" (exactly one of them)'
        return
    if route.upstream is not None:
        if route.upstream not in upstreams:
            yield f"{path}.upstream", _unknown_upstream(route.upstream, upstreams)
        if route.sticky_on is not None:
            yield f"{path}.sticky_on", "sticky_on is only used with split"
        return
    if not route.split:
        yield f"{path}.split", "expected at least one {upstream, weight} entry, got an empty list"
    seen: set[str] = set()
    for index, entry in enumerate(route.split):
        if entry.upstream not in upstreams:
            yield f"{path}.split[{index}].upstream", _unknown_upstream(entry.upstream, upstreams)
        if entry.upstream in seen:
            yield (f"{path}.split[{index}].upstream",
                   f"upstream {show(entry.upstream)} appears twice in this split")
        seen.add(entry.upstream)
    if route.split and sum(entry.weight for entry in route.split) == 0:
        yield f"{path}.split", "expected at least one weight above 0"
    if route.sticky_on is not None and not STICKY_ON.fullmatch(route.sticky_on):
        yield (f"{path}.sticky_on",
               f"expected {STICKY_ON_EXAMPLE}, got {show(route.sticky_on)}")


def _duplicate_name(name: str, first_path: str, raw_route: Any) -> str:
    if isinstance(raw_route, dict) and "name" in raw_route:
        return f"duplicate route name {show(name)} (also at {first_path})"
    return (
        f"this unnamed route would be called {show(name)}, which {first_path} already uses; "
        "give this route a name"
    )


def _match_problems(route: Route, path: str) -> Iterator[Problem]:
    match = route.match
    for field in ("path_prefix", "path"):
        value = getattr(match, field)
        if value is not None and not value.startswith("/"):
            yield f"{path}.{field}", f'expected a path starting with "/", got {show(value)}'
    if match.path is not None and match.path_prefix is not None:
        yield path, 'expected "path" or "path_prefix", not both'
    if match.host is not None and (not match.host or any(c.isspace() for c in match.host)):
        yield f"{path}.host", f"expected a host name, got {show(match.host)}"
