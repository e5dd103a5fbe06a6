"""Config for load balancing: balance, hash_on, backup and down, and their errors."""

import pytest

from fastgw.config import ConfigError, load_config_bytes

BASE = 'listen: "127.0.0.1:8080"\nroutes: [{upstream: u}]\nupstreams:\n  u:\n'


def load(upstream: str):
    return load_config_bytes((BASE + upstream).encode(), "lb.yaml")


def test_defaults():
    u = load('    targets: [{address: "127.0.0.1:1"}]\n').upstreams["u"]
    assert (u.balance, u.hash_on) == ("round_robin", None)
    assert (u.targets[0].backup, u.targets[0].down) == (False, False)


@pytest.mark.parametrize("hash_on", ["header:X-User-Id", "cookie:sid", "query:tenant", "ip",
                                     "path", "uri"])
def test_hash_on_kinds(hash_on):
    u = load(f'    balance: consistent_hash\n    hash_on: "{hash_on}"\n'
             '    targets: [{address: "127.0.0.1:1"}]\n').upstreams["u"]
    assert u.hash_on == hash_on


@pytest.mark.parametrize(("upstream", "path", "expected"), [
    ('    balance: consistent_hash\n    targets: [{address: "127.0.0.1:1"}]\n',
     "$.upstreams.u.hash_on", "needs a key"),
    ('    balance: consistent_hash\n    hash_on: "header:"\n    targets: [{address: "127.0.0.1:1"}]\n',
     "$.upstreams.u.hash_on", 'expected "header:NAME"'),
    ('    balance: consistent_hash\n    hash_on: "host"\n    targets: [{address: "127.0.0.1:1"}]\n',
     "$.upstreams.u.hash_on", 'got "host"'),
    ('    hash_on: ip\n    targets: [{address: "127.0.0.1:1"}]\n',
     "$.upstreams.u.hash_on", "only used with balance: consistent_hash"),
    ('    balance: consistent_hash\n    hash_on: ip\n'
     '    targets: [{address: "127.0.0.1:1"}, {address: "127.0.0.1:2", backup: true}]\n',
     "$.upstreams.u.targets[1].backup", "cannot be used with balance consistent_hash"),
    ('    balance: random\n    targets: [{address: "127.0.0.1:1"}]\n',
     "$.upstreams.u.balance", "round_robin, consistent_hash, least_conn"),
    ('    targets: [{address: "127.0.0.1:1", down: maybe}]\n',
     "$.upstreams.u.targets[0].down", "expected true or false"),
])
def test_errors_name_file_path_and_expectation(upstream, path, expected):
    with pytest.raises(ConfigError) as info:
        load(upstream)
    message = str(info.value)
    assert message.startswith(f"lb.yaml: {path}: "), message
    assert expected in message
