"""Messages between the master and a worker over their socketpair, with file descriptors.

A message is a pickled dict behind a 4-byte length; listening sockets travel beside it as
SCM_RIGHTS ancillary data. The master sends blocking; a worker reads non-blocking from its
event loop, so ``Inbox`` accepts whatever arrived and hands back complete messages.
"""

from __future__ import annotations

import pickle
import socket
import struct

_LENGTH = struct.Struct("!I")
MAX_FDS = 250  # descriptors one message may bring (the kernel's limit is 253)


def send(sock: socket.socket, message: dict, fds: list[int] = ()) -> None:
    """Send one message (blocking); ``fds`` arrive with its first byte."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    frame = _LENGTH.pack(len(data)) + data
    sent = socket.send_fds(sock, [frame], list(fds)) if fds else sock.send(frame)
    if sent < len(frame):
        sock.sendall(frame[sent:])


class Inbox:
    """Reassembles messages from a stream socket; collects the descriptors that came along."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.fds: list[int] = []  # in arrival order; messages say how many are theirs
        self.closed = False

    def read(self) -> list[dict]:
        """Read what is available (one recvmsg); return the messages now complete.

        ``closed`` turns true when the other side has gone.
        """
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 20, MAX_FDS)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return []
        except OSError:
            data, fds = b"", []
        if not data:
            self.closed = True
            return []
        self.fds.extend(fds)
        self.buf += data
        messages = []
        while len(self.buf) >= _LENGTH.size:
            (n,) = _LENGTH.unpack_from(self.buf)
            if len(self.buf) < _LENGTH.size + n:
                break
            messages.append(pickle.loads(self.buf[_LENGTH.size:_LENGTH.size + n]))
            self.buf = self.buf[_LENGTH.size + n:]
        return messages

    def take_fds(self, n: int) -> list[int]:
        taken, self.fds = self.fds[:n], self.fds[n:]
        return taken
