"""The loader against hostile or half-written files (issue 10, items 3 and 5): a size limit,
nesting the decoders cannot follow, TOML dotted keys, YAML aliases, and ``read_stable``, which
takes a file's bytes only while the file holds still.

The reader's pauses are observed (and, for a file that keeps changing, used to change it) by
wrapping ``time.sleep``; the real clock and real files decide everything else.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from fastgw.config import ConfigError, load_config, load_config_bytes, read_config_file
from fastgw.config import loader
from fastgw.config.loader import MAX_KEY_PARTS, MAX_SIZE, SETTLE, STABLE_WAIT, read_stable

MINIMAL_YAML = b"""\
listen: 127.0.0.1:8080
upstreams:
  app:
    targets: [{address: 127.0.0.1:9001}]
routes:
  - match: {path_prefix: /}
    upstream: app
"""


def error(data: bytes | str, filename: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config_bytes(data.encode() if isinstance(data, str) else data, filename)
    message = str(caught.value)
    assert message.startswith(f"{filename}: ") and "\n" not in message, message
    return message


# --- size ---------------------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(MINIMAL_YAML + b"#" * MAX_SIZE)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: the file has {MAX_SIZE + len(MINIMAL_YAML)} bytes, more than the 8MiB a "
        "configuration may have; to allow larger files, set FASTGW_MAX_CONFIG_SIZE in the "
        "environment of the command (of `fastgw run`, for reloads: a restart) "
        "(e.g. FASTGW_MAX_CONFIG_SIZE=16MiB)")


def test_the_suggested_limit_covers_the_file(tmp_path: Path) -> None:
    """Operator review: a 20 MiB file was told to try 16MiB."""
    path = tmp_path / "big.yaml"
    path.write_bytes(MINIMAL_YAML + b"#" * (20 * 1024 * 1024))
    with pytest.raises(ConfigError, match=r"FASTGW_MAX_CONFIG_SIZE=32MiB\)$"):
        load_config(path)


def test_the_size_limit_can_be_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conf.yaml"
    path.write_bytes(MINIMAL_YAML + b"#" * 2000 + b"\n")
    monkeypatch.setenv("FASTGW_MAX_CONFIG_SIZE", "1KiB")
    with pytest.raises(ConfigError, match=r"more than the 1KiB a configuration may have"):
        load_config(path)
    monkeypatch.setenv("FASTGW_MAX_CONFIG_SIZE", "4KiB")
    assert load_config(path).listen == ["127.0.0.1:8080"]
    monkeypatch.setenv("FASTGW_MAX_CONFIG_SIZE", "lots")
    with pytest.raises(ConfigError, match=r"^FASTGW_MAX_CONFIG_SIZE: expected a size such as"):
        load_config(path)


def test_40000_routes_fit_in_the_size_limit_even_as_indented_json() -> None:
    import json

    document = yaml.safe_load(MINIMAL_YAML)
    document["routes"] = [{"name": f"route-{i}", "match": {"path_prefix": f"/service-{i}/"},
                           "upstream": "app"} for i in range(40_000)]
    assert len(json.dumps(document, indent=2)) < MAX_SIZE


# --- nesting ------------------------------------------------------------------------------------


def nested(depth: int, language: str) -> str:
    if language == "JSON":
        return '{"listen": ' + "[" * depth + "]" * depth + "}"
    if language == "TOML":
        return "listen = " + "[" * depth + "]" * depth + "\n"
    return "listen: " + "[" * depth + "]" * depth + "\n"


@pytest.mark.parametrize(("language", "suffix", "depth"), [
    ("JSON", "json", 1_000), ("JSON", "json", 100_000),
    ("TOML", "toml", 500), ("TOML", "toml", 100_000),
])
def test_deep_nesting_is_one_line_error(language: str, suffix: str, depth: int) -> None:
    message = error(nested(depth, language), f"deep.{suffix}")
    assert message == (f"deep.{suffix}: lists and mappings are nested too deeply to decode; "
                       "a configuration needs about 6 levels")


def test_toml_inline_tables_nested_deeply() -> None:
    text = "listen = " + "{a = " * 1000 + "1" + "}" * 1000 + "\n"
    assert "nested too deeply to decode" in error(text, "deep.toml")


@pytest.mark.parametrize("text", [
    "listen: " + "[" * 100_000 + "]" * 100_000 + "\n",  # flow
    "- " * 100_000 + "x\n",  # block sequences on one line
    "".join("  " * i + "a:\n" for i in range(1200)) + "  " * 1200 + "a: 1\n",  # block mappings
])
def test_deep_yaml_stops_at_libyamls_limit(text: str) -> None:
    assert "exceeded maximum nesting depth" in error(text, "deep.yaml")


def test_deep_yaml_without_libyaml_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML's pure-Python parser has no depth limit of its own: it recurses."""
    monkeypatch.delattr(yaml, "CSafeLoader")
    message = error("listen: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    assert "nested too deeply to decode" in message


def test_nesting_a_configuration_uses_is_fine() -> None:
    text = MINIMAL_YAML.decode().replace(
        "match: {path_prefix: /}",
        "match: {path_prefix: /, headers: {X-A: {regex: '^[0-9]+([.][0-9]+)?$'}}}")
    assert load_config_bytes(text.encode(), "conf.yaml").routes[0].match.headers


@pytest.mark.parametrize("key", [
    ".".join(["a"] * 100_000),
    ".".join(['"a b"'] * 100),  # quoted parts
    " . ".join(["a"] * 100),
])
def test_a_toml_dotted_key_of_too_many_parts(key: str) -> None:
    """tomllib takes time quadratic in a dotted key's length: refused before it decodes."""
    for text in (f"{key} = 1\n", f"[{key}]\n", f"x = {{{key} = 1}}\n"):
        assert error(text, "keys.toml") == (
            f"keys.toml: a dotted key has more than {MAX_KEY_PARTS} parts; "
            "a configuration needs about 6")


def test_toml_dots_in_values_are_not_keys() -> None:
    toml = """\
listen = "127.0.0.1:8080"  # see https://docs.example.com/v1.2.3/reload.html
shutdown_timeout = 1.5
[upstreams.app]
targets = [{address = "10.0.0.1:9001"}]
[[routes]]
match.path_prefix = "/"
upstream = "app"
"""
    assert load_config_bytes(toml.encode(), "conf.toml").shutdown_timeout == 1.5


# --- YAML aliases -------------------------------------------------------------------------------


def test_a_yaml_alias_bomb_stays_small() -> None:
    """ "Billion laughs": nine levels of ten aliases each name 10^9 strings. PyYAML builds each
    anchored value once and shares it, and the schema refuses the list before walking it."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = "x:\n" + "".join(f"  {line}\n" for line in lines)
    assert "unknown field" in error(text, "laughs.yaml")
    bomb = "listen:\n" + "".join(f"  - {line.split(': ', 1)[1]}\n" for line in lines) + "  - *a9\n"
    assert error(bomb, "laughs.yaml") == "laughs.yaml: $.listen[0]: expected a string, got a list"
    merged = "x0: &x0 {k: v}\n" + "".join(
        f"x{i}: &x{i} {{<<: [*x{i - 1}, *x{i - 1}]}}\n" for i in range(1, 40))
    assert "unknown field" in error(merged, "merge.yaml")  # 2^39 merges: deduplicated


# --- memory -------------------------------------------------------------------------------------


def test_running_out_of_memory_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(text: str) -> None:
        raise MemoryError

    monkeypatch.setitem(loader._DECODERS, ".yaml", ("YAML", exhausted))
    assert error(MINIMAL_YAML, "conf.yaml") == (
        f"conf.yaml: not enough memory to load its {len(MINIMAL_YAML)} bytes")


# --- read_stable --------------------------------------------------------------------------------


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the reader takes (they still happen)."""
    taken: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        taken.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(loader.time, "sleep", sleep)
    return taken


def write(path: Path, data: bytes, age: float) -> Path:
    """``data`` at ``path``, last modified ``age`` seconds ago (negative: in the future)."""
    path.write_bytes(data)
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_a_file_left_alone_is_read_without_a_pause(tmp_path: Path, pauses: list[float]) -> None:
    path = write(tmp_path / "conf.yaml", MINIMAL_YAML, age=10)
    assert read_stable(str(path)) == MINIMAL_YAML
    assert pauses == []


def test_a_file_renamed_into_place_is_read_without_a_pause(
        tmp_path: Path, pauses: list[float]) -> None:
    path = write(tmp_path / "conf.yaml", b"old", age=10)
    new = write(tmp_path / "conf.yaml.tmp", MINIMAL_YAML, age=1)
    os.replace(new, path)
    assert read_config_file(str(path)) == MINIMAL_YAML
    assert pauses == []


def test_a_file_modified_just_now_is_read_once_it_held_still(
        tmp_path: Path, pauses: list[float]) -> None:
    # an mtime ahead of the clock (a skewed file server) looks "just modified" for an hour:
    # it is taken once it was seen unchanged across one pause
    path = write(tmp_path / "conf.yaml", MINIMAL_YAML, age=-3600)
    assert read_stable(str(path)) == MINIMAL_YAML
    assert pauses == [SETTLE]


def test_a_file_that_keeps_changing_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "conf.yaml", MINIMAL_YAML, age=0)
    real_sleep = time.sleep
    pauses = []

    def sleep_while_someone_writes(seconds: float) -> None:
        pauses.append(seconds)
        real_sleep(seconds)
        path.write_bytes(MINIMAL_YAML[: len(pauses) * 10])  # just before the next look

    monkeypatch.setattr(loader.time, "sleep", sleep_while_someone_writes)
    with pytest.raises(ConfigError) as caught:
        read_stable(str(path))
    assert str(caught.value) == (
        f"{path}: the file kept changing while it was read (for {STABLE_WAIT:g}s); write the "
        "new version to a temporary file in the same directory and rename it over this one")
    assert sum(pauses) <= STABLE_WAIT and len(pauses) >= 2


def test_a_pipe_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    os.mkfifo(path)

    def feed() -> None:
        with open(path, "wb") as pipe:
            pipe.write(MINIMAL_YAML)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert load_config(path).listen == ["127.0.0.1:8080"]
    finally:
        feeder.join(5)
