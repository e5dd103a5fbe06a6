"""Listening sockets: one SO_REUSEPORT set per worker, bound and kept open by the master.

Why per worker: with one socket shared by every worker, the worker that wakes first accepts a
whole burst of connections (measured: 64 keep-alive connections split 62/2 between two
workers), so one core does the work. Separate SO_REUSEPORT sockets let the kernel spread new
connections evenly by their address hash.

Why the master keeps them: a connection queued on a listening socket belongs to that socket.
If a worker's socket closed with the worker, a crash would reset whatever was queued on it.
The master holds every worker's sockets, so a worker that dies leaves its queue intact for its
replacement, and a worker retired by a smaller ``workers:`` hands its sockets to a remaining
worker before it stops. Queued connections are lost only where a listener itself goes away:
removed from the config, or at shutdown.

A new address is first bound once without SO_REUSEPORT (then released): if anyone holds the
port, that fails, so two gateways can't silently share a port.
"""

from __future__ import annotations

import socket

BACKLOG = 1024

Address = tuple[str, int]


def bind(host: str, port: int, reuse_port: bool = True,
         listen: bool = True) -> list[socket.socket]:
    """Listening sockets for ``host:port`` (one per address it resolves to); OSError if any
    cannot be bound, with nothing left open. ``listen=False`` only checks that it can be."""
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
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            if listen:
                sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


class Listeners:
    """Per address, per worker id, the sockets that worker accepts on."""

    def __init__(self) -> None:
        self.sets: dict[Address, dict[int, list[socket.socket]]] = {}

    def bind(self, addresses: list[Address], workers: list[int]) -> Listeners:
        """Bind what is missing for every (address, worker) pair, as a new ``Listeners`` to
        ``adopt`` once the caller is sure; all or nothing (OSError names the address)."""
        bound = Listeners()
        try:
            for address in addresses:
                have = self.sets.get(address, {})
                try:
                    if not have:  # nobody else may hold it (see the module docstring)
                        for sock in bind(*address, reuse_port=False, listen=False):
                            sock.close()
                    for wid in workers:
                        if wid not in have:
                            bound.sets.setdefault(address, {})[wid] = bind(*address)
                except OSError as exc:
                    raise OSError(exc.errno, f"cannot listen on {show(address)}: "
                                             f"{exc.strerror or exc}") from None
        except OSError:
            bound.close()
            raise
        return bound

    def adopt(self, other: Listeners) -> None:
        for address, per_worker in other.sets.items():
            self.sets.setdefault(address, {}).update(per_worker)
        other.sets = {}

    def of(self, wid: int) -> dict[Address, list[socket.socket]]:
        return {address: per_worker[wid] for address, per_worker in self.sets.items()
                if wid in per_worker}

    def hand_over(self, wid: int, to: int) -> dict[Address, list[socket.socket]]:
        """Give worker ``wid``'s sockets to worker ``to`` (which accepts on both sets then)."""
        moved = {}
        for address, per_worker in self.sets.items():
            if wid in per_worker:
                moved[address] = per_worker.pop(wid)
                per_worker.setdefault(to, []).extend(moved[address])
        return moved

    def close_address(self, address: Address) -> None:
        for socks in self.sets.pop(address, {}).values():
            for sock in socks:
                sock.close()

    def close(self) -> None:
        for address in list(self.sets):
            self.close_address(address)

    def addresses(self) -> list[Address]:
        return list(self.sets)


def show(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
