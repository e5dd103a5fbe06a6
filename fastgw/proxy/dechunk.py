"""Chunked-body decoding for HTTP/1.0 clients, which must not be sent Transfer-Encoding.

Cold path: only a 1.0 client receiving a chunked response goes through it, and the bytes have
already been validated by ChunkedReader, so this decoder only has to find the payload.
The response then ends when the gateway closes the connection.
"""

from __future__ import annotations

_SIZE, _DATA, _DATA_END, _TRAILER = range(4)


class ChunkedDecoder:
    __slots__ = ("state", "remaining", "line")

    def __init__(self) -> None:
        self.state = _SIZE
        self.remaining = 0
        self.line = b""  # a size or trailer line split across reads

    def decode(self, data: bytes) -> bytes:
        """The payload bytes in ``data`` (validated chunked framing, in order)."""
        out = []
        i = 0
        n = len(data)
        while i < n:
            state = self.state
            if state == _DATA:
                take = min(self.remaining, n - i)
                out.append(data[i:i + take])
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _DATA_END
                continue
            end = data.find(b"\n", i)
            if end < 0:
                self.line += data[i:]
                break
            line = self.line + data[i:end]
            self.line = b""
            i = end + 1
            if state == _SIZE:
                size = int(line.split(b";", 1)[0].strip(b"\r"), 16)
                self.remaining = size
                self.state = _DATA if size else _TRAILER
            elif state == _DATA_END or line.strip(b"\r") == b"":
                self.state = _SIZE  # after a chunk's data, or the empty line after trailers
        return b"".join(out)
