"""Accepting client connections on a listening socket, and saying so when it cannot.

uvloop's own server hides running out of file descriptors: libuv then accepts each waiting
connection with a reserved descriptor and closes it at once (its "EMFILE trick"), and nothing
is logged. Here the worker accepts itself, as nginx and HAProxy do: when ``accept()`` fails
for lack of descriptors (or memory), accepting pauses for ``PAUSE`` seconds, so the waiting
connections stay in the kernel's queue and are served once descriptors free up, and a warning
says so, at most once per ``LOG_EVERY`` seconds, with the number of failed accepts since the
last one. The accepted socket is handed to uvloop (``connect_accepted_socket``) and from there
on it is an ordinary transport.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket

log = logging.getLogger("fastgw.accept")

BATCH = 64  # connections accepted per readiness event before the loop moves on
PAUSE = 0.1  # seconds without accepting after running out of descriptors
LOG_EVERY = 5.0  # seconds between two "out of descriptors" warnings
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


FD_LIMIT_CAP = 1 << 20  # the most descriptors asked for when raising the soft limit


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one (capped), as HAProxy does: each
    proxied request needs two descriptors, and the usual soft default of 1024 is for programs
    that use select(), which the event loop does not. Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FD_LIMIT_CAP if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT_CAP)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (OSError, ValueError):
            return soft, soft
        return soft, wanted
    return soft, soft


class Acceptor:
    """Accepts on one listening socket for as long as it is open; ``close()`` stops it.
    ``protocol_factory(peer)`` makes the protocol for a connection from address ``peer``."""

    def __init__(self, loop, sock: socket.socket, protocol_factory, clients) -> None:
        self.loop = loop
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.clients = clients  # the open client connections (for the warning)
        self.failed = 0  # accepts that failed for lack of resources since the last warning
        self.logged_at = -LOG_EVERY
        self.closed = False
        self.paused = None  # the timer that resumes accepting
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(BATCH):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while waiting in the queue
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    self._out_of_resources(exc)
                else:
                    log.warning("accept on %s failed: %s", self._name(), exc)
                return
            self._start(conn, peer)

    def _start(self, conn: socket.socket, peer) -> None:
        """Hand an accepted socket to uvloop: a transport, our protocol, connection_made.
        The protocol is told the peer's address now: asking the socket later fails once the
        client has reset it, and its request would go on with an unknown address."""
        protocol = self.protocol_factory(peer)
        coro = self.loop.connect_accepted_socket(lambda: protocol, conn)
        try:
            waiter = coro.send(None)  # runs until it waits for connection_made
        except StopIteration:
            return
        except OSError as exc:
            log.warning("cannot serve a connection accepted on %s: %s", self._name(), exc)
            conn.close()
            return
        waiter.add_done_callback(lambda _: _finish(coro))

    def _out_of_resources(self, exc: OSError) -> None:
        """Stop accepting for a moment; the connections wait in the kernel's queue."""
        self.failed += 1
        now = self.loop.time()
        if now - self.logged_at >= LOG_EVERY:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            log.warning(
                "cannot accept connections on %s: %s (%d client connections open, "
                "file descriptor limit %d); %d failed accept%s since the last warning; "
                "accepting again every %.1f s", self._name(), exc.strerror or exc,
                len(self.clients), soft, self.failed, "" if self.failed == 1 else "s", PAUSE)
            self.failed = 0
            self.logged_at = now
        self.loop.remove_reader(self.sock.fileno())
        self.paused = self.loop.call_later(PAUSE, self._resume)

    def _resume(self) -> None:
        self.paused = None
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def _name(self) -> str:
        try:
            host, port = self.sock.getsockname()[:2]
        except OSError:
            return "a closed socket"
        return f"{host}:{port}"

    def close(self) -> None:
        """Stop accepting; connections already accepted go on. The socket is closed (a copy
        kept elsewhere, the master's, keeps the kernel's queue)."""
        if self.closed:
            return
        self.closed = True
        if self.paused is not None:
            self.paused.cancel()
        else:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def _finish(coro) -> None:
    try:
        coro.send(None)
    except StopIteration:
        pass
    except Exception:  # the connection failed before connection_made: nothing to serve
        log.debug("accepted connection closed before it was served", exc_info=True)
