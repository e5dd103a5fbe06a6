"""The chunked decoder used for HTTP/1.0 clients, fed in every split."""

import pytest

from fastgw.proxy.dechunk import ChunkedDecoder

BODY = b"5;ext=1\r\nhello\r\n1\r\n \r\nB\r\nfrom chunks\r\n0\r\nTrailer: x\r\n\r\n"


def decode_in_pieces(data: bytes, cuts: list[int]) -> bytes:
    decoder = ChunkedDecoder()
    bounds = [0, *cuts, len(data)]
    return b"".join(decoder.decode(data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))


def test_whole():
    assert ChunkedDecoder().decode(BODY) == b"hello from chunks"


@pytest.mark.parametrize("cut", range(1, len(BODY)))
def test_every_split(cut):
    assert decode_in_pieces(BODY, [cut]) == b"hello from chunks"


def test_byte_by_byte():
    assert decode_in_pieces(BODY, list(range(1, len(BODY)))) == b"hello from chunks"
