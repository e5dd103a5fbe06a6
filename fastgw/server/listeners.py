"""Listening sockets, bound once by the master and shared by every worker.

Why shared sockets rather than one SO_REUSEPORT socket per worker: a connection waiting in a
listen queue belongs to that socket. With per-worker sockets, a worker that exits (crash,
scale-down) takes its queue with it and those clients get a reset. A socket bound by the
master stays open while any worker lives, so whatever is queued on it is accepted by the
others, and a listener added on reload is bound (and its errors reported) before any worker
is told about it.
"""

from __future__ import annotations

import socket

BACKLOG = 1024

Address = tuple[str, int]


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for ``host:port`` (one per address it resolves to); OSError if any
    cannot be bound, with nothing left open."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _name, sockaddr in infos:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


def bind_all(addresses: list[Address], have: dict[Address, list[socket.socket]] | None = None
             ) -> dict[Address, list[socket.socket]]:
    """Bind the addresses not in ``have``; all or nothing (OSError names the address)."""
    have = have or {}
    bound: dict[Address, list[socket.socket]] = {}
    try:
        for address in addresses:
            if address in have or address in bound:
                continue
            try:
                bound[address] = bind(*address)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {show(address)}: "
                                         f"{exc.strerror or exc}") from None
    except OSError:
        close(bound)
        raise
    return bound


def close(listeners: dict[Address, list[socket.socket]]) -> None:
    for socks in listeners.values():
        for sock in socks:
            sock.close()


def show(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
