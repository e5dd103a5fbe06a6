"""The configuration package: formats, defaults, units, and that every error says where and why.

Most cases build a config as a Python dict, change one thing, and load it as JSON bytes through
``load_config_bytes``; error messages are asserted on file name, exact path and expectation.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastgw.config import Config, ConfigError, Timeouts, load_config, load_config_bytes
from fastgw.config.schema import parse_address
from fastgw.config.summary import summarize
from fastgw.config.units import format_duration, format_size, parse_duration, parse_size

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MINIMAL: dict[str, Any] = {
    "listen": "127.0.0.1:8080",
    "upstreams": {"app": {"targets": [{"address": "127.0.0.1:9001"}]}},
    "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
}


def load(document: dict[str, Any], filename: str = "conf.json") -> Config:
    return load_config_bytes(msgspec.json.encode(document), filename)


def changed(path: str, value: Any, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``document`` (default MINIMAL) with the dotted ``path`` set to ``value``."""
    result = copy.deepcopy(MINIMAL if document is None else document)
    *parents, last = path.split(".")
    node: Any = result
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node.setdefault(step, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return result


def error_for(document: dict[str, Any], filename: str = "conf.json") -> str:
    with pytest.raises(ConfigError) as caught:
        load(document, filename)
    return str(caught.value)


def assert_error(document: dict[str, Any], path: str, expectation: str) -> None:
    message = error_for(document)
    assert message.startswith(f"conf.json: {path}: "), message
    assert expectation in message, message


# --- formats and defaults ---------------------------------------------------------------------


def test_every_format_of_the_basic_example_loads_to_the_same_config() -> None:
    configs = [load_config(str(EXAMPLES / f"basic.{ext}")) for ext in ("yaml", "toml", "json")]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0].upstreams["app"].targets[0].address == "127.0.0.1:9001"


def test_yml_suffix_and_upper_case_suffix_are_yaml() -> None:
    text = (EXAMPLES / "basic.yaml").read_bytes()
    assert load_config_bytes(text, "x.yml") == load_config_bytes(text, "X.YAML")


def test_load_config_accepts_a_path_object() -> None:
    assert load_config(EXAMPLES / "basic.yaml").listen == ["127.0.0.1:8080"]


def test_defaults() -> None:
    config = load(MINIMAL)
    assert config.log_level == "info"
    assert config.listen == ["127.0.0.1:8080"]
    assert config.listen_addresses() == [("127.0.0.1", 8080)]
    t = config.timeouts
    assert (t.client_header, t.client_idle, t.upstream_connect, t.upstream_read) == (
        10.0,
        75.0,
        5.0,
        60.0,
    )
    assert all(type(getattr(t, name)) is float for name in t.__struct_fields__)
    lim = config.limits
    assert (
        lim.max_request_line,
        lim.max_header_bytes,
        lim.max_headers,
        lim.max_body_bytes,
        lim.request_buffer,
        lim.underscores_in_headers,
    ) == (8192, 32768, 100, 64 * 1024 * 1024, 64 * 1024, False)
    assert all(type(getattr(lim, name)) is int for name in lim.__struct_fields__
               if name != "underscores_in_headers")
    upstream = config.upstreams["app"]
    assert upstream.keepalive.max_idle == 1024
    assert type(upstream.keepalive.idle_timeout) is float
    assert upstream.keepalive.idle_timeout == 60.0
    target = upstream.targets[0]
    assert (target.address, target.weight, target.host, target.port) == (
        "127.0.0.1:9001",
        1,
        "127.0.0.1",
        9001,
    )
    route = config.routes[0]
    assert (route.name, route.upstream, route.match.path_prefix) == ("route-0", "app", "/")
    assert route.match.path is None and route.match.host is None


def test_struct_defaults_match_a_loaded_default_config() -> None:
    assert load(MINIMAL).timeouts == Timeouts()
    assert Timeouts(client_header="2s").client_header == 2.0  # type: ignore[arg-type]


def test_timeouts_and_limits_are_optional_per_field() -> None:
    document = changed("timeouts", {"upstream_read": "2m"})
    document = changed("limits", {"max_body_bytes": "1MiB"}, document)
    config = load(document)
    assert config.timeouts.upstream_read == 120.0
    assert config.timeouts.client_header == 10.0
    assert config.limits.max_body_bytes == 1024 * 1024
    assert config.limits.request_buffer == 64 * 1024


def test_listen_list_ipv6_and_hostnames() -> None:
    config = load(changed("listen", ["127.0.0.1:8080", "[::1]:8080", "gw.internal:9000"]))
    assert config.listen == ["127.0.0.1:8080", "[::1]:8080", "gw.internal:9000"]
    assert config.listen_addresses() == [
        ("127.0.0.1", 8080),
        ("::1", 8080),
        ("gw.internal", 9000),
    ]


def test_targets_weights_and_generated_route_names() -> None:
    document = changed(
        "upstreams.app.targets",
        [{"address": "[::1]:9001", "weight": 0}, {"address": "backend_1:9002", "weight": 5}],
    )
    document = changed(
        "routes", [{"upstream": "app", "name": "api"}, {"upstream": "app"}], document
    )
    config = load(document)
    first, second = config.upstreams["app"].targets
    assert (first.host, first.port, first.weight) == ("::1", 9001, 0)
    assert (second.host, second.port, second.weight) == ("backend_1", 9002, 5)
    assert [route.name for route in config.routes] == ["api", "route-1"]
    assert config.routes[0].match.path_prefix is None  # an omitted match matches everything


def test_all_targets_drained_is_allowed() -> None:
    document = changed("upstreams.app.targets", [{"address": "127.0.0.1:9001", "weight": 0}])
    assert load(document).upstreams["app"].targets[0].weight == 0


def test_keepalive_settings() -> None:
    config = load(changed("upstreams.app.keepalive", {"max_idle": 0, "idle_timeout": "1500ms"}))
    assert config.upstreams["app"].keepalive.max_idle == 0
    assert config.upstreams["app"].keepalive.idle_timeout == 1.5


# --- units ------------------------------------------------------------------------------------

GOOD_DURATIONS = [
    ("500ms", 0.5),
    ("300ms", 0.3),
    ("10s", 10.0),
    ("1.5s", 1.5),
    ("2m", 120.0),
    ("1h", 3600.0),
    (" 10 s ", 10.0),
    ("10", 10.0),
    (10, 10.0),
    (0.25, 0.25),
]
BAD_DURATIONS = ["0s", "-1s", "10x", "1h30m", "ms", "", "10S", True, 0, -5, float("inf"), [1]]


@pytest.mark.parametrize(("text", "seconds"), GOOD_DURATIONS)
def test_good_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert load(changed("timeouts.client_idle", text)).timeouts.client_idle == seconds


@pytest.mark.parametrize("text", BAD_DURATIONS, ids=repr)
def test_bad_durations_name_the_field(text: Any) -> None:
    if text == float("inf"):  # JSON cannot carry infinity; YAML's .inf can
        source = MINIMAL_YAML + "timeouts: {client_idle: .inf}\n"
        with pytest.raises(ConfigError, match=r"\$\.timeouts\.client_idle: expected a dur"):
            load_config_bytes(source.encode(), "conf.yaml")
        return
    assert_error(changed("timeouts.client_idle", text), "$.timeouts.client_idle", "expected a")


GOOD_SIZES = [
    (512, 512),
    ("512B", 512),
    ("64KiB", 65536),
    ("1MiB", 1024**2),
    ("1GiB", 1024**3),
    ("100KB", 100_000),
    ("1MB", 1_000_000),
    ("2GB", 2_000_000_000),
    ("1.5KB", 1500),
    ("0.5KiB", 512),
    ("64kib", 65536),
]
BAD_SIZES = ["0", 0, -1, "-1KiB", "1.5B", "12XB", "K", "", 1.5, True, "64 Ki"]


@pytest.mark.parametrize(("text", "count"), GOOD_SIZES)
def test_good_sizes(text: Any, count: int) -> None:
    assert parse_size(text) == count
    assert load(changed("limits.max_body_bytes", text)).limits.max_body_bytes == count


@pytest.mark.parametrize("text", BAD_SIZES, ids=repr)
def test_bad_sizes_name_the_field(text: Any) -> None:
    assert_error(changed("limits.request_buffer", text), "$.limits.request_buffer", "expected a")


def test_underscores_in_headers_is_a_boolean() -> None:
    assert load(changed("limits.underscores_in_headers", True)).limits.underscores_in_headers
    assert_error(changed("limits.underscores_in_headers", "on"),
                 "$.limits.underscores_in_headers", "expected true or false")
    text = summarize(load(changed("limits.underscores_in_headers", True)), "conf.json")
    assert "underscores_in_headers true" in text


def test_request_buffer_may_exceed_max_body_bytes() -> None:
    document = changed("limits", {"max_body_bytes": "1KiB", "request_buffer": "64KiB"})
    assert load(document).limits.request_buffer == 65536


@given(st.integers(min_value=1, max_value=2**40))
def test_sizes_format_and_parse_back(count: int) -> None:
    assert parse_size(format_size(count)) == count


@given(st.integers(min_value=1, max_value=10**9))
def test_whole_millisecond_durations_format_and_parse_back(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_picks_the_largest_exact_unit() -> None:
    assert [format_duration(s) for s in (0.5, 10, 60, 75, 3600, 0.0005)] == [
        "500ms",
        "10s",
        "1m",
        "75s",
        "1h",
        "0.0005s",
    ]
    assert [format_size(n) for n in (8192, 100_000, 777, 64 * 1024**2)] == [
        "8KiB",
        "100KB",
        "777B",
        "64MiB",
    ]


# --- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9001", ("127.0.0.1", 9001)),
        ("[::1]:8080", ("::1", 8080)),
        ("[fe80::1%eth0]:80", ("fe80::1%eth0", 80)),
        ("example.com:443", ("example.com", 443)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_good_addresses(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "localhost",
        "127.0.0.1",
        ":8080",
        "host:",
        "host:0",
        "host:65536",
        "host:80x",
        "::1:8080",
        "[::1]8080",
        "[nope]:80",
        "256.1.1.1:80",
        "bad host:80",
        "-bad:80",
        "http://a:80",
    ],
)
def test_bad_target_addresses(address: str) -> None:
    document = changed("upstreams.app.targets", [{"address": address}])
    assert_error(document, "$.upstreams.app.targets[0].address", 'expected "host:port"')


def test_bad_address_message_in_full() -> None:
    document = changed("upstreams.app.targets", [{"address": "localhost"}])
    assert error_for(document, "examples/bad.yaml") == (
        "examples/bad.yaml: $.upstreams.app.targets[0].address: "
        'expected "host:port" (e.g. "127.0.0.1:9001"), got "localhost"'
    )


def test_bad_listen_address_paths() -> None:
    assert_error(changed("listen", "8080"), "$.listen", 'got "8080"')
    assert_error(changed("listen", ["127.0.0.1:80", "x"]), "$.listen[1]", 'expected "host:port"')


# --- schema errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("", "$.bogus"),
        ("upstreams.app.", "$.upstreams.app.bogus"),
        ("upstreams.app.targets.0.", "$.upstreams.app.targets[0].bogus"),
        ("upstreams.app.keepalive.", "$.upstreams.app.keepalive.bogus"),
        ("routes.0.", "$.routes[0].bogus"),
        ("routes.0.match.", "$.routes[0].match.bogus"),
        ("timeouts.", "$.timeouts.bogus"),
        ("limits.", "$.limits.bogus"),
    ],
)
def test_unknown_fields_are_errors_with_their_path(where: str, path: str) -> None:
    assert_error(changed(where + "bogus", 1), path, "unknown field; expected one of ")


def test_unknown_field_suggests_the_close_name() -> None:
    document = changed("upstreams.app.targets", [{"address": "a:1", "wieght": 2}])
    assert_error(document, "$.upstreams.app.targets[0].wieght", 'did you mean "weight"?')


def test_upstream_keys_that_are_not_words_are_quoted_in_paths() -> None:
    document = changed("upstreams", {"ok": {"targets": []}, "my app": {"targets": [{}]}})
    assert_error(document, '$.upstreams["my app"].targets[0]', 'missing required field "address"')


def test_the_failing_upstream_is_named_not_the_first() -> None:
    document = changed("upstreams.users", {"targets": [{"address": 9001}]})
    assert_error(document, "$.upstreams.users.targets[0].address", "expected a string, got 9001")


@pytest.mark.parametrize(
    ("path", "value", "where", "expectation"),
    [
        ("listen", 3, "$.listen", "expected a string or a list, got 3"),
        (
            "log_level",
            "verbose",
            "$.log_level",
            'one of debug, info, warning, error, got "verbose"',
        ),
        ("upstreams.app.targets.0.weight", -1, "$.upstreams.app.targets[0].weight", ">= 0, got -1"),
        ("upstreams.app.targets.0.weight", "1", "$.upstreams.app.targets[0].weight", "integer"),
        ("upstreams.app.keepalive", {"max_idle": -1}, "$.upstreams.app.keepalive.max_idle", ">= 0"),
        ("limits.max_headers", 0, "$.limits.max_headers", "expected an integer >= 1, got 0"),
        ("routes", {}, "$.routes", "expected a list, got a mapping"),
        ("routes.0.name", "", "$.routes[0].name", "length >= 1"),
        ("routes.0.match", "/", "$.routes[0].match", 'expected a mapping, got "/"'),
    ],
)
def test_type_errors(path: str, value: Any, where: str, expectation: str) -> None:
    assert_error(changed(path, value), where, expectation)


@pytest.mark.parametrize("field", ["listen", "upstreams", "routes"])
def test_missing_required_top_level_fields(field: str) -> None:
    document = copy.deepcopy(MINIMAL)
    del document[field]
    assert_error(document, "$", f'missing required field "{field}"')


def test_missing_route_upstream() -> None:
    assert_error(
        changed("routes", [{"name": "x"}]), "$.routes[0]", 'expected "upstream" or "split"'
    )


# --- semantic errors --------------------------------------------------------------------------


def test_unknown_upstream_lists_the_defined_ones() -> None:
    document = changed("upstreams.users", {"targets": [{"address": "127.0.0.1:9002"}]})
    routes = [{"upstream": "app"}, {"upstream": "users"}, {"upstream": "x"}]
    assert_error(
        changed("routes", routes, document),
        "$.routes[2].upstream",
        'unknown upstream "x"; defined upstreams: app, users',
    )


@pytest.mark.parametrize(
    ("path", "value", "where", "expectation"),
    [
        ("upstreams.app.targets", [], "$.upstreams.app.targets", "expected at least one target"),
        ("upstreams", {}, "$.upstreams", "expected at least one upstream"),
        ("routes", [], "$.routes", "expected at least one route"),
        ("listen", [], "$.listen", "expected at least one"),
        ("routes.0.match", {"path_prefix": "api"}, "$.routes[0].match.path_prefix", 'with "/"'),
        ("routes.0.match", {"path": "api/v1"}, "$.routes[0].match.path", 'starting with "/"'),
        ("routes.0.match", {"path": "/a", "path_prefix": "/"}, "$.routes[0].match", "not both"),
        ("routes.0.match", {"host": ""}, "$.routes[0].match.host", "expected a host name"),
        (
            "upstreams.app.targets",
            [{"address": "127.0.0.1:9001"}, {"address": "127.0.0.1:09001"}],
            "$.upstreams.app.targets[1].address",
            'duplicate target "127.0.0.1:09001" (also at $.upstreams.app.targets[0].address)',
        ),
        (
            "listen",
            ["127.0.0.1:8080", "[::1]:8080", "127.0.0.1:8080"],
            "$.listen[2]",
            'duplicate listen address "127.0.0.1:8080" (also at $.listen[0])',
        ),
        ("listen", ["[::1]:80", "[0::1]:80"], "$.listen[1]", "duplicate listen address"),
        ("listen", ["127.0.0.1:80", "0.0.0.0:80"], "$.listen[1]", "overlaps $.listen[0]"),
        ("upstreams", {"": {"targets": []}}, "$.upstreams", "key to be a string of length >= 1"),
    ],
)
def test_semantic_errors(path: str, value: Any, where: str, expectation: str) -> None:
    assert_error(changed(path, value), where, expectation)


def test_listeners_on_different_ports_or_families_do_not_conflict() -> None:
    listen = ["0.0.0.0:80", "0.0.0.0:81", "[::1]:80", "localhost:82"]
    assert load(changed("listen", listen)).listen == listen


def test_duplicate_route_names() -> None:
    routes = [
        {"upstream": "app", "name": "a"},
        {"upstream": "app"},
        {"upstream": "app", "name": "a"},
    ]
    assert_error(
        changed("routes", routes),
        "$.routes[2].name",
        'duplicate route name "a" (also at $.routes[0].name)',
    )


def test_generated_route_name_colliding_with_a_given_one() -> None:
    routes = [{"upstream": "app", "name": "route-1"}, {"upstream": "app"}]
    assert_error(changed("routes", routes), "$.routes[1].name", "give this route a name")


def test_schema_errors_come_before_semantic_ones() -> None:
    document = changed("routes", [{"upstream": "nope"}])
    document = changed("timeouts.client_header", "soon", document)
    assert_error(document, "$.timeouts.client_header", 'got "soon"')


# --- files and syntax -------------------------------------------------------------------------

MINIMAL_YAML = """\
listen: 127.0.0.1:8080
upstreams:
  app:
    targets:
      - address: 127.0.0.1:9001
routes:
  - match: {path_prefix: /}
    upstream: app
"""


def test_yaml_syntax_error_names_file_and_line() -> None:
    broken = MINIMAL_YAML.replace("  - match: {path_prefix: /}", "  - match: {path_prefix: /")
    with pytest.raises(ConfigError) as caught:
        load_config_bytes(broken.encode(), "conf.yaml")
    message = str(caught.value)
    assert message.startswith("conf.yaml: line 8, column "), message
    assert "invalid YAML" in message


def test_yaml_indentation_error() -> None:
    broken = MINIMAL_YAML + " stray: 1\n"
    with pytest.raises(ConfigError, match=r"^conf\.yaml: line 9, column 2: invalid YAML: "):
        load_config_bytes(broken.encode(), "conf.yaml")


def test_toml_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"^conf\.toml: line 2, column \d+: invalid TOML: "):
        load_config_bytes(b'listen = "a:1"\n[upstreams.app\n', "conf.toml")


def test_json_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"^conf\.json: line 3, column 12: invalid JSON: "):
        load_config_bytes(b'{\n "listen": "a:1",\n "routes": ,\n}', "conf.json")
    with pytest.raises(ConfigError, match=r"^conf\.json: line 2, .*unexpected end of file"):
        load_config_bytes(b'{\n "listen": "a:1",', "conf.json")


def test_toml_loads_and_reports_nested_paths() -> None:
    source = b"""\
listen = ["127.0.0.1:8080"]
[upstreams.app]
targets = [{ address = "127.0.0.1:9001", weight = 2 }]
[[routes]]
upstream = "app"
match = { path = "/health" }
[timeouts]
client_header = 1979-05-27
"""
    with pytest.raises(ConfigError) as caught:
        load_config_bytes(source, "conf.toml")
    assert str(caught.value).startswith("conf.toml: $.timeouts.client_header: expected a duration")
    config = load_config_bytes(source.replace(b"1979-05-27", b'"250ms"'), "conf.toml")
    assert config.timeouts.client_header == 0.25
    assert config.routes[0].match.path == "/health"


@pytest.mark.parametrize(
    ("data", "expectation"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b"# only a comment\n", "the file has no values"),
        (b"- 1\n", "$: expected a mapping, got a list"),
        (b"listen: \xff\n", "line 1, column 9: expected UTF-8 text"),
    ],
)
def test_whole_file_problems(data: bytes, expectation: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_bytes(data, "conf.yaml")
    assert str(caught.value).startswith("conf.yaml: ")
    assert expectation in str(caught.value)


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    assert load_config_bytes(b"\xef\xbb\xbf" + msgspec.json.encode(MINIMAL), "c.json").listen


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "conf.ini"
    path.write_text("listen = 1\n")
    with pytest.raises(ConfigError, match=r'conf\.ini: unknown configuration format "\.ini"'):
        load_config(str(path))
    with pytest.raises(ConfigError, match="unknown configuration format"):
        load_config_bytes(b"{}", "conf")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the file: No such file"):
        load_config(str(missing))
    directory = tmp_path / "dir.yaml"
    directory.mkdir()
    with pytest.raises(ConfigError, match=r"dir\.yaml: cannot read the file"):
        load_config(str(directory))


def test_config_error_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        load(changed("routes", [{"upstream": "x"}]), "f.json")
    error = caught.value
    assert (error.filename, error.where) == ("f.json", "$.routes[0].upstream")
    assert error.message.startswith('unknown upstream "x"')


# --- summary and command line -----------------------------------------------------------------


def test_summary_is_compact_and_complete() -> None:
    document = changed(
        "routes",
        [
            {
                "name": "users",
                "match": {"host": "api.example.com", "path": "/users"},
                "upstream": "app",
            },
            {"upstream": "app"},
        ],
    )
    text = summarize(load(document), "conf.json")
    lines = text.splitlines()
    assert lines[0] == "OK: conf.json"
    assert len(lines) < 25
    assert "127.0.0.1:8080" in lines[1]
    assert any("app" in line and "127.0.0.1:9001 (weight 1)" in line for line in lines)
    assert any("users" in line and "path /users" in line and "-> app" in line for line in lines)
    assert any("route-1" in line and "everything -> app" in line for line in lines)
    assert "client_header 10s" in text and "max_body_bytes 64MiB" in text
    assert "underscores_in_headers false" in text
    assert lines[2] == "workers: 1   shutdown_timeout: 30s   pidfile: none"


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastgw", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_check_on_a_good_file() -> None:
    result = run_check(EXAMPLES / "basic.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")
    assert "app" in result.stdout and "127.0.0.1:9001" in result.stdout
    assert "path_prefix / -> app" in result.stdout


def test_cli_check_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL_YAML.replace("upstream: app", "upstream: nope"))
    result = run_check(path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert str(path) in result.stderr
    assert '$.routes[0].upstream: unknown upstream "nope"' in result.stderr
