"""Config for routes, splits, rewrites and versioning: what loads, and errors that name the
file, the path inside it and what was expected."""

import pytest

from fastgw.config import ConfigError, load_config_bytes

HEAD = ('listen: "127.0.0.1:8080"\n'
        'upstreams: {a: {targets: [{address: "127.0.0.1:1"}]}, '
        'b: {targets: [{address: "127.0.0.1:2"}]}}\n')


def load(body: str):
    return load_config_bytes((HEAD + body).encode(), "r.yaml")


def test_full_route_loads():
    config = load(
        "versioning: {header: X-API-Version, path: '/v{version}/', default: '1'}\n"
        "routes:\n"
        "  - name: r\n"
        "    match: {host: '*.example.com', path_prefix: /api/, methods: [get], "
        "headers: {X-A: b, X-P: {present: true}, X-R: {regex: '^u'}}, "
        "query: {q: '1', d: {present: false}}, version: '2'}\n"
        "    split: [{upstream: a, weight: 90}, {upstream: b, weight: 10}]\n"
        "    sticky_on: 'cookie:sid'\n"
        "    strip_prefix: /api\n"
        "    strip_version: true\n"
        "    request_headers: {set: {X-Env: prod}, add: {X-Via: gw}, remove: [Cookie]}\n"
        "    response_headers: {remove: [Server]}\n")
    route = config.routes[0]
    assert route.split[1].weight == 10 and route.sticky_on == "cookie:sid"
    assert route.request_headers.remove == ["Cookie"]


@pytest.mark.parametrize(("body", "path", "expected"), [
    ("routes: [{name: x}]\n", "$.routes[0]", 'expected "upstream" or "split"'),
    ("routes: [{upstream: a, split: [{upstream: b, weight: 1}]}]\n", "$.routes[0]",
     "exactly one of them"),
    ("routes: [{split: [{upstream: c, weight: 1}]}]\n", "$.routes[0].split[0].upstream",
     'unknown upstream "c"'),
    ("routes: [{split: [{upstream: a, weight: 0}]}]\n", "$.routes[0].split",
     "at least one weight above 0"),
    ("routes: [{split: [{upstream: a, weight: 1}, {upstream: a, weight: 2}]}]\n",
     "$.routes[0].split[1].upstream", "appears twice"),
    ("routes: [{upstream: a, sticky_on: ip}]\n", "$.routes[0].sticky_on", "only used with split"),
    ("routes: [{split: [{upstream: a, weight: 1}], sticky_on: path}]\n",
     "$.routes[0].sticky_on", '"header:NAME"'),
    ("routes: [{upstream: a, match: {path_regex: '('}}]\n", "$.routes[0].match.path_regex",
     "valid regular expression"),
    ("routes: [{upstream: a, match: {headers: {X-A: {}}}}]\n", "$.routes[0].match.headers.X-A",
     "{present: true|false}"),
    ("routes: [{upstream: a, match: {query: {q: {regex: x}}}}]\n",
     "$.routes[0].match.query.q.regex", "a value or {present"),
    ("routes: [{upstream: a, match: {host: 'a.*.com'}}]\n", "$.routes[0].match.host",
     "'*.domain'"),
    ("routes: [{upstream: a, match: {version: '2'}}]\n", "$.routes[0].match.version",
     "needs a versioning section"),
    ("routes: [{upstream: a, strip_prefix: api}]\n", "$.routes[0].strip_prefix",
     'starting with "/"'),
    ("routes: [{upstream: a, strip_version: true}]\n", "$.routes[0].strip_version",
     "needs versioning.path"),
    ("routes: [{upstream: a, request_headers: {set: {'X A': v}}}]\n",
     "$.routes[0].request_headers.set.X A", "header name"),
    ("routes: [{upstream: a, replace_prefix: {from: /a, to: \"/x HTTP/1.1\\r\\nHost: i\\r\\n\\r\\nGET /s\"}}]\n",
     "$.routes[0].replace_prefix.to", "expected a path"),
    ("routes: [{upstream: a, replace_prefix: {from: /a, to: '/new path'}}]\n",
     "$.routes[0].replace_prefix.to", "expected a path"),
    ("routes: [{upstream: a, replace_prefix: {from: '/a%zz', to: /b}}]\n",
     "$.routes[0].replace_prefix.from", "%XX"),
    ("routes: [{upstream: a, strip_prefix: '/a?b'}]\n", "$.routes[0].strip_prefix",
     "expected a path"),
    ("routes: [{upstream: a, request_headers: {set: {Host: 'a b'}}}]\n",
     "$.routes[0].request_headers.set.Host", "expected a host"),
    ("routes: [{upstream: a, request_headers: {set: {Content-Length: '0'}}}]\n",
     "$.routes[0].request_headers.set.Content-Length", "framing, which fastgw writes itself"),
    ("routes: [{upstream: a, request_headers: {add: {transfer-encoding: chunked}}}]\n",
     "$.routes[0].request_headers.add.transfer-encoding", "it cannot be added"),
    ("routes: [{upstream: a, request_headers: {set: {Connection: close}}}]\n",
     "$.routes[0].request_headers.set.Connection", "hop-by-hop"),
    ("routes: [{upstream: a, request_headers: {remove: [X-Forwarded-For]}}]\n",
     "$.routes[0].request_headers.remove[0]", "written by fastgw"),
    ("routes: [{upstream: a, request_headers: {set: {X-Forwarded-Proto: https}}}]\n",
     "$.routes[0].request_headers.set.X-Forwarded-Proto", "written by fastgw"),
    ("routes: [{upstream: a, request_headers: {add: {Host: b.example}}}]\n",
     "$.routes[0].request_headers.add.Host", "use set"),
    ("routes: [{upstream: a, request_headers: {remove: [host]}}]\n",
     "$.routes[0].request_headers.remove[0]", "exactly one Host"),
    ("routes: [{upstream: a, response_headers: {set: {Content-Length: '5'}}}]\n",
     "$.routes[0].response_headers.set.Content-Length", "framing"),
    ("routes: [{upstream: a, response_headers: {remove: [Upgrade]}}]\n",
     "$.routes[0].response_headers.remove[0]", "hop-by-hop"),
    ("routes: [{upstream: a}]\nversioning: {default: '1'}\n", "$.versioning",
     "at least one of header, accept, path"),
    ("routes: [{upstream: a}]\nversioning: {path: '/v/'}\n", "$.versioning.path",
     'one "{version}"'),
    ("routes: [{upstream: a}]\nversioning: {header: X-V, unknown: default}\n",
     "$.versioning.unknown", 'needs a "default"'),
    ("routes: [{upstream: a}]\nversioning: {header: X-V, deprecated: {'1': {sunset: soon}}}\n",
     "$.versioning.deprecated.1.sunset", "YYYY-MM-DD"),
    ("routes: [{upstream: a}]\nversioning: {accept: 'vnd{version}'}\n", "$.versioning.accept",
     "media type"),
])
def test_errors(body, path, expected):
    with pytest.raises(ConfigError) as info:
        load(body)
    message = str(info.value)
    assert message.startswith(f"r.yaml: {path}: "), message
    assert expected in message, message
