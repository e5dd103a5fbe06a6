"""Seed requests: valid HTTP/1.1 (and 1.0) requests of every shape the gateway handles.

The mutator starts from these, so every shape reaches the code behind it before a mutation
bends it: bodies framed by Content-Length and by chunked (extensions, trailers, odd but legal
size spellings), HTTP/1.0, Expect: 100-continue, Upgrade, absolute-form and asterisk-form
targets, legal odd whitespace, list forms of the framing headers, empty lines before a request,
bodies that look like requests (bait for a desync), and sizes near the configured limits. One
deliberately invalid shape, obs-fold, is here too: it must always be refused.

Every function takes a ``random.Random`` and returns bytes; nothing here knows about sockets.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .strict import Rules

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
PATH_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/"
METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"PURGE"]
HOSTS = [b"example.com", b"api.test.local:8080", b"127.0.0.1", b"[::1]:80", b"x", b""]
EXTRA_FIELDS = [
    b"Accept: */*", b"User-Agent: fuzz/1.0", b"X-Request-Id: 42", b"Cookie: a=b; c=d",
    b"Accept-Encoding: gzip, br", b"X-Forwarded-For: 10.0.0.1", b"Cache-Control: no-cache",
    b"X-Empty:", b"X-Tab:\tvalue\t", b"X-Spaces:   spaced   value  ", b"X-Obs: caf\xc3\xa9",
    b"X-Quoted: \"a, b\"; q=1", b"Connection: keep-alive", b"TE: trailers",
    b"Keep-Alive: timeout=5", b"Authorization: Bearer abc.def", b"Content-Type: text/plain",
]


def token(rng: random.Random, n: int = 8) -> bytes:
    return "".join(rng.choice(TOKEN_CHARS) for _ in range(rng.randint(1, n))).encode()


def path(rng: random.Random, max_len: int = 24) -> bytes:
    text = "/" + "".join(rng.choice(PATH_CHARS) for _ in range(rng.randint(0, max_len)))
    if rng.random() < 0.3:
        text += "?" + "".join(rng.choice(PATH_CHARS + "?") for _ in range(rng.randint(0, 12)))
    if rng.random() < 0.1:
        text += "%2F%41"
    return text.encode()


def body(rng: random.Random, rules: Rules) -> bytes:
    """A body: usually small, sometimes bigger than the request buffer (it then streams),
    sometimes bait: bytes that look like another request."""
    roll = rng.random()
    if roll < 0.15:
        return b""
    if roll < 0.3:
        return b"GET /smuggled HTTP/1.1\r\nHost: evil\r\n\r\n"
    if roll < 0.4:
        return b"0\r\n\r\nPOST /smuggled HTTP/1.1\r\nHost: evil\r\nContent-Length: 3\r\n\r\nabc"
    if roll < 0.5:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    if roll < 0.6:  # larger than a small request buffer: the body streams
        return b"x" * rng.randint(1000, 3000)
    return token(rng, 40)


def fields(rng: random.Random, host: bytes | None) -> list[bytes]:
    lines = [b"Host: " + host] if host is not None else []
    lines += rng.sample(EXTRA_FIELDS, rng.randint(0, 3))
    rng.shuffle(lines)
    return lines


def head(method: bytes, target: bytes, lines: list[bytes], version: bytes = b"HTTP/1.1",
         ) -> bytes:
    return b"%s %s %s\r\n" % (method, target, version) + b"".join(
        line + b"\r\n" for line in lines) + b"\r\n"


def chunk_size(rng: random.Random, n: int) -> bytes:
    """Legal spellings of a chunk size: lower or upper hex, leading zeros."""
    text = b"%x" % n if rng.random() < 0.6 else b"%X" % n
    if rng.random() < 0.15:
        text = b"0" * rng.randint(1, 3) + text
    return text


def chunk_ext(rng: random.Random) -> bytes:
    """Chunk extensions as RFC 9112 7.1.1 allows them, BWS included."""
    roll = rng.random()
    if roll < 0.6:
        return b""
    ws = rng.choice([b"", b"", b" ", b"\t"])
    if roll < 0.75:
        return ws + b";" + token(rng, 5)
    if roll < 0.9:
        return ws + b";" + ws + token(rng, 5) + ws + b"=" + ws + token(rng, 5)
    return b';name="quoted \\" value"'


def chunked(rng: random.Random, payload: bytes) -> bytes:
    out = []
    i = 0
    while i < len(payload):
        n = rng.randint(1, max(1, min(len(payload) - i, rng.choice([3, 16, 1500]))))
        out.append(chunk_size(rng, n) + chunk_ext(rng) + b"\r\n" + payload[i:i + n] + b"\r\n")
        i += n
    last = b"0" * rng.randint(1, 2) + chunk_ext(rng) + b"\r\n"
    if rng.random() < 0.25:
        last += b"X-Trailer: t\r\n" + (b"X-Sum: 1234\r\n" if rng.random() < 0.5 else b"")
    return b"".join(out) + last + b"\r\n"


# -- shapes ---------------------------------------------------------------------------------


def get(rng: random.Random, rules: Rules) -> bytes:
    method = rng.choice([b"GET", b"HEAD", b"DELETE", b"OPTIONS", token(rng)])
    return head(method, path(rng), fields(rng, rng.choice(HOSTS)))


def content_length(rng: random.Random, rules: Rules) -> bytes:
    data = body(rng, rules)
    spelled = b"%d" % len(data)
    roll = rng.random()
    if roll < 0.1:
        spelled = b"00" + spelled  # leading zeros are still 1*DIGIT
    elif roll < 0.2:
        spelled = spelled + b", " + spelled  # RFC 9110 8.6: a list of one value
    lines = fields(rng, rng.choice(HOSTS)) + [b"Content-Length: " + spelled]
    if roll > 0.9:
        lines.append(b"content-length:" + b"%d" % len(data))  # the same value twice
    rng.shuffle(lines)
    return head(rng.choice(METHODS), path(rng), lines) + data


def chunked_body(rng: random.Random, rules: Rules) -> bytes:
    spelling = rng.choice([b"chunked", b"chunked", b"Chunked", b"CHUNKED", b" chunked ",
                           b",chunked", b"chunked, ", b", , chunked"])
    lines = fields(rng, rng.choice(HOSTS)) + [b"Transfer-Encoding: " + spelling]
    if rng.random() < 0.1:
        lines.append(b"Transfer-Encoding: ,")  # an empty list element on its own line
    if rng.random() < 0.2:
        lines.append(b"Trailer: X-Trailer")
    rng.shuffle(lines)
    return head(rng.choice(METHODS), path(rng), lines) + chunked(rng, body(rng, rules))


def http10(rng: random.Random, rules: Rules) -> bytes:
    lines = fields(rng, rng.choice(HOSTS + [None, None]))
    if rng.random() < 0.5:
        lines.append(b"Connection: keep-alive")
    data = body(rng, rules) if rng.random() < 0.5 else b""
    if data:
        lines.append(b"Content-Length: %d" % len(data))
    return head(rng.choice(METHODS), path(rng), lines, b"HTTP/1.0") + data


def expect_continue(rng: random.Random, rules: Rules) -> bytes:
    data = body(rng, rules) or b"hello"
    expect = rng.choice([b"100-continue", b"100-Continue", b"100-continue, 100-continue"])
    lines = fields(rng, rng.choice(HOSTS)) + [b"Expect: " + expect]
    if rng.random() < 0.7:
        lines.append(b"Content-Length: %d" % len(data))
        payload = data
    else:
        lines.append(b"Transfer-Encoding: chunked")
        payload = chunked(rng, data)
    return head(b"POST", path(rng), lines) + payload


def upgrade(rng: random.Random, rules: Rules) -> bytes:
    """An Upgrade request; the backend switches to an echo tunnel for "websocket". Sometimes
    from an HTTP/1.0 client, whose Upgrade a server must ignore (RFC 9110 7.8)."""
    lines = fields(rng, rng.choice(HOSTS)) + [
        rng.choice([b"Connection: Upgrade", b"Connection: keep-alive, upgrade"]),
        rng.choice([b"Upgrade: websocket", b"Upgrade: websocket", b"Upgrade: h2c, websocket/13",
                    b"Upgrade: ,foo"]),
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13"]
    version = b"HTTP/1.0" if rng.random() < 0.15 else b"HTTP/1.1"
    return head(b"GET", path(rng), lines, version)


def absolute_form(rng: random.Random, rules: Rules) -> bytes:
    scheme = rng.choice([b"http", b"https", b"HTTP"])
    authority = rng.choice([b"example.com", b"example.com:8080", b"[::1]:9", b"10.0.0.1"])
    rest = rng.choice([b"", b"/", path(rng), b"?q=1"])
    return head(rng.choice([b"GET", b"HEAD"]), scheme + b"://" + authority + rest,
                fields(rng, rng.choice(HOSTS)))


def asterisk(rng: random.Random, rules: Rules) -> bytes:
    return head(b"OPTIONS", b"*", fields(rng, rng.choice(HOSTS)))


def odd_whitespace(rng: random.Random, rules: Rules) -> bytes:
    """Legal but unusual: no space after the colon, tabs, trailing OWS, empty values."""
    lines = [rng.choice([b"Host:h", b"Host:\th\t", b"Host:   h   ", b"host: h"]),
             b"X-A:\t \t", b"X-B:b", b"X-C: c \t", b"Content-Length:\t0 "]
    rng.shuffle(lines)
    return head(rng.choice([b"GET", b"POST"]), path(rng), lines)


def connection_close(rng: random.Random, rules: Rules) -> bytes:
    lines = fields(rng, rng.choice(HOSTS)) + [rng.choice([b"Connection: close",
                                                          b"Connection: Close, X-Gone",
                                                          b"connection: keep-alive, close"])]
    if b"X-Gone" in lines[-1]:
        lines.append(b"X-Gone: hop-by-hop")
    return head(rng.choice(METHODS), path(rng), lines)


def leading_empty_lines(rng: random.Random, rules: Rules) -> bytes:
    return b"\r\n" * rng.randint(1, 3) + get(rng, rules)


def obs_fold(rng: random.Random, rules: Rules) -> bytes:
    """Invalid on purpose (RFC 9112 5.2: a server MUST reject obs-fold or replace it)."""
    lines = fields(rng, b"example.com") + [b"X-Folded: first", rng.choice([b" second",
                                                                          b"\tsecond"])]
    return head(b"GET", path(rng), lines)


def near_limits(rng: random.Random, rules: Rules) -> bytes:
    """Sizes around the configured limits, so the 413/414/431 paths meet mutations too."""
    roll = rng.random()
    if roll < 0.25:
        target = b"/" + b"a" * (rules.max_request_line - 20 + rng.randint(-8, 8))
        return head(b"GET", target, [b"Host: h"])
    if roll < 0.5:
        lines = [b"Host: h"] + [b"X-%d: v" % i for i in range(rules.max_headers - 2
                                                                 + rng.randint(0, 2))]
        return head(b"GET", b"/", lines)
    if roll < 0.75:
        big = b"X-Big: " + b"v" * (rules.max_header_bytes - 40 + rng.randint(-8, 8))
        return head(b"GET", b"/", [b"Host: h", big])
    data = b"y" * (rules.max_body - 8 + rng.randint(-16, 16))
    return head(b"POST", b"/", [b"Host: h", b"Content-Length: %d" % len(data)]) + data


SHAPES: list[tuple[float, Callable[[random.Random, Rules], bytes]]] = [
    (3, get), (3, content_length), (3, chunked_body), (1, http10), (1, expect_continue),
    (1, upgrade), (1, absolute_form), (0.3, asterisk), (1, odd_whitespace),
    (1, connection_close), (0.5, leading_empty_lines), (0.3, obs_fold), (0.2, near_limits),
]


def seed_request(rng: random.Random, rules: Rules) -> bytes:
    """One seed request of a shape chosen by weight."""
    shapes = [shape for _, shape in SHAPES]
    weights = [weight for weight, _ in SHAPES]
    return rng.choices(shapes, weights)[0](rng, rules)


def seed_stream(rng: random.Random, rules: Rules) -> bytes:
    """What a client sends on one connection: one request, or several pipelined."""
    count = rng.choices([1, 2, 3], [6, 3, 1])[0]
    return b"".join(seed_request(rng, rules) for _ in range(count))
