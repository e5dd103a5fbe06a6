"""ChunkedReader's payload output (``feed(data, start, out)``), on both implementations.

The gateway sends an HTTP/1.0 client the payload of a chunked response: the reader that
validates the framing also takes it off, in the same pass. Each body is fed whole, split at
every point (and at every pair of points), and byte by byte: ``out`` must get exactly the chunk
data, and ``feed`` must return what it returns without ``out``.
"""

from __future__ import annotations

from itertools import combinations
from types import ModuleType

import pytest

BODY = b"5;ext=1\r\nhello\r\n1\r\n \r\nB\r\nfrom chunks\r\n0\r\nTrailer: x\r\n\r\n"

BODIES = [
    pytest.param(BODY, b"hello from chunks", id="extensions-and-trailer"),
    pytest.param(b"0\r\n\r\n", b"", id="empty-body"),
    pytest.param(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world", id="two-chunks"),
    pytest.param(b"0005\r\nhello\r\n000\r\n\r\n", b"hello", id="leading-zeros"),
    pytest.param(b"5;q=\"a;b=3\\\"\\\\\"\r\nhello\r\n0;z\r\n\r\n", b"hello",
                 id="framing-in-quoted-extension"),
    pytest.param(b"5 ;a = b\r\nhello\r\n0\r\n\r\n", b"hello", id="extension-bws"),
    pytest.param(b"3\r\n\r\n\r\r\n0\r\n\r\n", b"\r\n\r", id="crlf-inside-data"),
    pytest.param(b"3\r\n0\r\n\r\n0\r\n\r\n", b"0\r\n", id="last-chunk-inside-data"),
    pytest.param(b"10\r\n" + bytes(range(16)) + b"\r\n0\r\n\r\n", bytes(range(16)),
                 id="binary-data"),
    pytest.param(b"1\r\na\r\n0\r\nX-A: 5\r\nX-5: hello\r\n\r\n", b"a",
                 id="trailers-look-like-chunks"),
]

AFTER = b"HTTP/1.1 200 OK\r\n"  # the next message, after the last piece: never payload


def feed_all(impl: ModuleType, pieces: list[bytes], out: bytearray | None) -> list[int]:
    reader = impl.ChunkedReader()
    results = [reader.feed(piece) if out is None else reader.feed(piece, 0, out)
               for piece in pieces]
    assert reader.done
    return results


def cut(data: bytes, points: tuple[int, ...]) -> list[bytes]:
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize(("body", "payload"), BODIES)
def test_payload_at_every_split(parser_impl: ModuleType, body: bytes, payload: bytes) -> None:
    splits = [(), *((i,) for i in range(1, len(body))), tuple(range(1, len(body)))]
    for points in splits:
        pieces = cut(body, points)
        pieces[-1] += AFTER
        out = bytearray()
        assert feed_all(parser_impl, pieces, out) == feed_all(parser_impl, pieces, None), points
        assert out == payload, points


def test_payload_at_every_pair_of_splits(parser_impl: ModuleType) -> None:
    for points in combinations(range(1, len(BODY)), 2):
        out = bytearray()
        feed_all(parser_impl, cut(BODY, points), out)
        assert out == b"hello from chunks", points


def test_payload_is_appended(parser_impl: ModuleType) -> None:
    out = bytearray(b"before:")
    reader = parser_impl.ChunkedReader()
    assert reader.feed(b"3\r\nabc\r\n", 0, out) == -1
    assert reader.feed(b"2\r\nde\r\n0\r\n\r\n", 0, out) == 12
    assert out == b"before:abcde"


def test_payload_from_start(parser_impl: ModuleType) -> None:
    head = b"POST / HTTP/1.1\r\n\r\n"
    out = bytearray()
    reader = parser_impl.ChunkedReader()
    assert reader.feed(head + BODY + AFTER, len(head), out) == len(head) + len(BODY)
    assert out == b"hello from chunks"


def test_large_chunk(parser_impl: ModuleType) -> None:
    out = bytearray()
    reader = parser_impl.ChunkedReader()
    assert reader.feed(b"40000\r\n", 0, out) == -1
    for part in range(4):
        assert reader.feed(bytes([part]) * 0x10000, 0, out) == -1
    assert reader.feed(b"\r\n0\r\n\r\n", 0, out) == 7
    assert out == b"".join(bytes([part]) * 0x10000 for part in range(4))


def test_any_buffer(parser_impl: ModuleType) -> None:
    strided = memoryview(bytes(b for c in BODY for b in (c, 0)))[::2]
    for data in (BODY, bytearray(BODY), memoryview(BODY), strided):
        out = bytearray()
        assert parser_impl.ChunkedReader().feed(data, 0, out) == len(BODY)
        assert out == b"hello from chunks"


@pytest.mark.parametrize(("body", "payload", "reason"), [
    (b"5\r\nhelloX\r\n", b"hello", "chunk data longer than its size"),
    (b"2\r\nab\r\n3;\r\nxyz", b"ab", "empty chunk extension name"),
    (b"0\r\n\r\nx", b"", "data after the end of a chunked body"),
])
def test_payload_before_a_fault(parser_impl: ModuleType, body: bytes, payload: bytes,
                                reason: str) -> None:
    out = bytearray()
    reader = parser_impl.ChunkedReader()
    with pytest.raises(parser_impl.ParseError) as info:
        reader.feed(body, 0, out)
        reader.feed(b"x", 0, out)
    assert info.value.reason == reason
    assert out == payload


class Subclass(bytearray):
    pass


@pytest.mark.parametrize("out", [b"", [], memoryview(bytearray()), Subclass()])
def test_out_must_be_a_bytearray(parser_impl: ModuleType, out: object) -> None:
    with pytest.raises(TypeError):
        parser_impl.ChunkedReader().feed(BODY, 0, out)
    assert parser_impl.ChunkedReader().feed(BODY, 0, None) == len(BODY)


@pytest.mark.parametrize(("body", "payload"), BODIES)
def test_trailer_bytes_locate_the_trailer_section(parser_impl: ModuleType, body: bytes,
                                                  payload: bytes) -> None:
    """The gateway withholds request trailers as they pass: in each piece, the last
    ``trailer_bytes`` growth bytes before the body's end (or the piece's) are the trailer
    section's, so that what is kept plus a final CRLF is the body without trailer fields."""
    last_chunk = (b"\r\n" + body).rindex(b"\r\n0")  # where the "0...\r\n" line starts
    section = body[body.index(b"\r\n", last_chunk) + 2:]
    splits = [(), *((i,) for i in range(1, len(body))), tuple(range(1, len(body)))]
    for points in splits:
        pieces = cut(body, points)
        pieces[-1] += AFTER
        reader = parser_impl.ChunkedReader()
        kept, withheld = [], []
        for piece in pieces:
            before = reader.trailer_bytes
            end = reader.feed(piece)
            stop = end if end >= 0 else len(piece)
            grew = reader.trailer_bytes - before
            kept.append(piece[:stop - grew])
            withheld.append(piece[stop - grew:stop])
        assert reader.done and reader.trailer_bytes == len(section), points
        assert b"".join(withheld) == section, points
        assert b"".join(kept) + b"\r\n" == body[:len(body) - len(section)] + b"\r\n", points
