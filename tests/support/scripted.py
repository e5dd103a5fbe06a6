"""An upstream that answers every request with the same bytes, whatever they are: for responses
no well-behaved backend sends (thousands of interim responses, a 101 to the wrong protocol).

It reads a request head (up to the blank line), writes ``reply`` in one ``sendall``, and then
keeps the connection open until the gateway closes it (or closes at once with ``close=True``).
A real server on a real socket, in a thread of the test process.
"""

from __future__ import annotations

import socket
import threading
from typing import Self


class ScriptedUpstream:
    def __init__(self, reply: bytes, close: bool = False) -> None:
        self.reply = reply
        self.close_after = close
        self.requests: list[bytes] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return len(self._conns)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.close()
        for conn in self._conns:
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        held = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                held += data
                while b"\r\n\r\n" in held:
                    head, _, held = held.partition(b"\r\n\r\n")
                    self.requests.append(head)
                    conn.sendall(self.reply)
                    if self.close_after:
                        conn.close()
                        return
        except OSError:
            return
