"""Byte-level mutations of seed requests, and the cases a campaign sends.

A case is fully determined by (seed, number): ``make_case(seed, n)`` builds the same bytes, the
same split into pieces and the same half-close decision on every run and every machine, so a
failure is replayed from two numbers. Mutations aim where parsers disagree: line endings (CR,
LF, NUL, SP, HTAB), list and parameter separators (``,`` ``;`` ``:`` ``"``), high bytes, the
digits of Content-Length and chunk sizes (huge, negative, hex, leading zeros, ``+``), extra or
doubled framing headers (two Content-Length, Content-Length with Transfer-Encoding, odd
Transfer-Encoding spellings), duplicated, dropped and swapped lines, two requests spliced, and
truncation. Positions are picked near structure (line ends, colons, separators, digits) more
often than anywhere at random.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .seeds import seed_request, seed_stream
from .strict import Rules

SPECIAL = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b",", b";", b":", b'"', b"=", b"\\",
           b"\x7f", b"\x80", b"\xff", b"\x0b", b"\x0c", b"/", b"?", b"#", b"%", b"@", b"0",
           b"\r\n\r\n", b" \r\n", b"\r\n "]
STRUCTURE = re.compile(rb"\r\n|[\r\n:;, \t\"=]|[0-9A-Fa-f]+")
LINE_END = re.compile(rb"\r?\n")
NUMBERS = re.compile(rb"(?<=Content-Length:)[ \t]*[0-9, ]+|(?:^|(?<=\n))[0-9A-Fa-f]+(?=[;\r\n \t])",
                     re.I)
NUMBER_VARIANTS: list[Callable[[bytes], bytes]] = [  # d: the digits found (decimal or hex)
    lambda d: b"%d" % (int(d) + 1) if d.isdigit() else b"%x" % (int(d, 16) + 1),
    lambda d: b"%d" % max(0, int(d) - 1) if d.isdigit() else b"%x" % max(0, int(d, 16) - 1),
    lambda d: b"0",
    lambda d: b"-1",
    lambda d: b"+" + d,
    lambda d: b"0x" + d,
    lambda d: b"00000000" + d,
    lambda d: b"99999999999999999999",
    lambda d: b"fffffffffffffff0",
    lambda d: b"%x" % (len(d) + 100),
    lambda d: d.upper() if d.islower() else d.lower(),
    lambda d: d + b" " + d,
    lambda d: d + b"," + d,
    lambda d: d + b", 0",
    lambda d: b" " + d,
    lambda d: d + b"\x00",
    lambda d: b"1e3",
    lambda d: d + d,
    lambda d: b"",
]
FRAMING_LINES = [
    b"Content-Length: 0", b"Content-Length: 5", b"Content-Length: 44", b"Content-Length:  3 ",
    b"Content-Length: 05", b"Content-Length: 5, 6", b"Content-Length : 5", b"Content-Length\t: 5",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked, chunked",
    b"Transfer-Encoding: identity", b"Transfer-Encoding:  chunked", b"Transfer-Encoding: xchunked",
    b"Transfer-Encoding: chunked;q=1", b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: chunked, gzip", b"Transfer-Encoding: CHUNKED",
    b"Transfer-Encoding: \"chunked\"", b"Transfer-Encoding: chunked\x00",
    b"Transfer-Encoding : chunked", b" Transfer-Encoding: chunked", b"Transfer-Encoding:\x0bchunked",
    b"Transfer_Encoding: chunked", b"Transfer-Encoding: \xc2\xa0chunked",
    b"Host: second.example", b"Host: a b", b"Host: a@b", b"Host: [::1", b"Host: a:b:c",
    b"Connection: close", b"Connection: keep-alive, Content-Length", b"Connection: Transfer-Encoding",
    b"Connection: upgrade", b"Upgrade: websocket", b"Upgrade: a b", b"Expect: 100-continue",
    b"Expect: 100-continue, x", b"X-Forwarded-For: 1.2.3.4", b"Trailer: Content-Length",
    b"Proxy-Connection: keep-alive",
]


@dataclass
class Case:
    """One connection's worth of client behaviour, reproducible from (seed, number)."""

    seed: int
    number: int
    data: bytes
    cuts: list[int]  # send data in pieces split at these offsets (sorted)
    half_close: bool  # shutdown(SHUT_WR) after sending
    mutations: list[str] = field(default_factory=list)
    # the client goes away this many seconds after sending, without reading (None: it reads
    # until the gateway closes); ``reset``: with an RST rather than a FIN
    abandon: float | None = None
    reset: bool = False

    @property
    def pieces(self) -> list[bytes]:
        bounds = [0, *self.cuts, len(self.data)]
        return [self.data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]

    def describe(self) -> str:
        gone = "" if self.abandon is None else (
            f" abandon_after={self.abandon:.3f}s{' with RST' if self.reset else ''}")
        return (f"seed={self.seed} case={self.number} mutations={self.mutations} "
                f"cuts={self.cuts} half_close={self.half_close}{gone}\n  bytes={self.data!r}")


def position(rng: random.Random, data: bytes) -> int:
    """An offset in ``data`` (or its end): at or next to structure most of the time."""
    if data and rng.random() < 0.7:
        spots = [m.start() for m in STRUCTURE.finditer(data)]
        if spots:
            spot = rng.choice(spots) + rng.choice([0, 0, 1, -1])
            return max(0, min(len(data), spot))
    return rng.randint(0, len(data))


def insert_byte(rng, data, rules):
    at = position(rng, data)
    return data[:at] + rng.choice(SPECIAL) + data[at:]


def replace_byte(rng, data, rules):
    if not data:
        return data
    at = min(position(rng, data), len(data) - 1)
    return data[:at] + rng.choice(SPECIAL) + data[at + 1:]


def delete_bytes(rng, data, rules):
    at = position(rng, data)
    return data[:at] + data[at + rng.choice([1, 1, 2, 3]):]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


def duplicate_line(rng, data, rules):
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return b"\r\n".join(lines)


def drop_line(rng, data, rules):
    lines = _lines(data)
    if len(lines) > 1:
        del lines[rng.randrange(len(lines))]
    return b"\r\n".join(lines)


def swap_lines(rng, data, rules):
    lines = _lines(data)
    if len(lines) > 2:
        i = rng.randrange(len(lines) - 1)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return b"\r\n".join(lines)


def change_line_end(rng, data, rules):
    ends = [m for m in LINE_END.finditer(data)]
    if not ends:
        return data
    m = rng.choice(ends)
    return data[:m.start()] + rng.choice([b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n\r\n",
                                         b"\x00\r\n", b" \r\n", b"\r\n\t"]) + data[m.end():]


def change_number(rng, data, rules):
    """Content-Length values and chunk sizes: off by one, zero, negative, huge, hex, '+'..."""
    found = list(NUMBERS.finditer(data))
    if not found:
        return insert_byte(rng, data, rules)
    m = rng.choice(found)
    text = m.group()
    leading = text[:len(text) - len(text.lstrip(b" \t"))]  # keep the OWS before a value
    first = re.search(rb"[0-9A-Fa-f]+", text)  # of a list ("5, 5") or a chunk size
    digits = first.group() if first else b"0"
    return data[:m.start()] + leading + rng.choice(NUMBER_VARIANTS)(digits) + data[m.end():]


def add_framing_line(rng, data, rules):
    """Another framing or routing header, in the first head's field lines."""
    head_end = data.find(b"\r\n\r\n")
    first_eol = data.find(b"\r\n")
    if head_end < 0 or first_eol < 0:
        return data + b"\r\n" + rng.choice(FRAMING_LINES)
    candidates = [m.end() for m in re.finditer(rb"\r\n", data[:head_end + 2])]
    at = rng.choice(candidates)
    return data[:at] + rng.choice(FRAMING_LINES) + b"\r\n" + data[at:]


def recase(rng, data, rules):
    """Flip the case of a framing header name or of the chunked coding."""
    found = list(re.finditer(rb"content-length|transfer-encoding|chunked|host", data, re.I))
    if not found:
        return data
    m = rng.choice(found)
    word = bytes(c ^ 0x20 if chr(c).isalpha() and rng.random() < 0.5 else c for c in m.group())
    return data[:m.start()] + word + data[m.end():]


def splice(rng, data, rules):
    """A prefix of this stream, then another request (which may land inside a body)."""
    at = position(rng, data)
    return data[:at] + seed_request(rng, rules)


def truncate(rng, data, rules):
    return data[:rng.randint(0, len(data))]


MUTATIONS: list[tuple[float, Callable]] = [
    (4, insert_byte), (3, replace_byte), (2, delete_bytes), (1, duplicate_line), (1, drop_line),
    (0.5, swap_lines), (2, change_line_end), (3, change_number), (3, add_framing_line),
    (1, recase), (1, splice), (0.7, truncate),
]


def mutate(rng: random.Random, data: bytes, rules: Rules, count: int) -> tuple[bytes, list[str]]:
    names = []
    ops = [op for _, op in MUTATIONS]
    weights = [weight for weight, _ in MUTATIONS]
    for _ in range(count):
        op = rng.choices(ops, weights)[0]
        data = op(rng, data, rules)
        names.append(op.__name__)
    return data, names


def make_case(seed: int, number: int, rules: Rules) -> Case:
    """Case ``number`` of campaign ``seed``: the same on every run."""
    rng = random.Random(f"fastgw-fuzz/{seed}/{number}")
    data = seed_stream(rng, rules)
    count = rng.choices([0, 1, 2, 3, 5], [10, 45, 25, 12, 8])[0]
    data, names = mutate(rng, data, rules, count)
    case = Case(seed, number, data, cuts(rng, data), half_close=rng.random() < 0.9,
                mutations=names)
    if rng.random() < 0.05:  # a client that leaves early: the gateway must clean up quietly
        case.abandon = rng.choice([0.0, 0.001, 0.005, 0.02])
        case.reset = rng.random() < 0.5
    return case


def cuts(rng: random.Random, data: bytes) -> list[int]:
    """Where to split the bytes into separate sends: nowhere, anywhere, inside a CRLF or a
    CRLF CRLF (where an incremental parser must remember what it saw), or every few bytes."""
    if len(data) < 2:
        return []
    roll = rng.random()
    if roll < 0.6:
        return []
    if roll < 0.8:
        return sorted({rng.randint(1, len(data) - 1) for _ in range(rng.randint(1, 3))})
    if roll < 0.95:
        inside = [m.start() + 1 for m in re.finditer(rb"\r\n", data)]
        inside += [m.start() + 2 for m in re.finditer(rb"\r\n\r\n", data)]
        return sorted(set(rng.sample(inside, min(len(inside), 3)))) if inside else []
    # trickle: the first bytes a few at a time (at most 40 sends of ~2 ms: well within the
    # 1 s the gateway gives a head)
    step = rng.randint(1, 7)
    return list(range(step, min(len(data), 40 * step), step))
