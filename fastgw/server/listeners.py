"""Listening sockets: one SO_REUSEPORT set per worker, bound and kept open by the master.

Why per worker: with one socket shared by every worker, the worker that wakes first accepts a
whole burst of connections (measured: 64 keep-alive connections split 62/2 between two
workers), so one core does the work. Separate SO_REUSEPORT sockets let the kernel spread new
connections evenly by their address hash.

Why the master keeps them: a connection queued on a listening socket belongs to that socket.
If a worker's socket closed with the worker, a crash would reset whatever was queued on it.
The master holds every worker's sockets, so a worker that dies leaves its queue intact for its
replacement, and a worker retired by a smaller ``workers:`` hands its sockets to a remaining
worker before it stops (which hands them back when the worker id is used again). Queued
connections are lost only where a listener itself goes away: removed from the config, or at
shutdown.

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
    """Per address, per worker id, the sockets bound for that worker. They stay filed under
    that id for good; while the id has no worker (fewer ``workers:`` now), another worker
    accepts on them (``hosts``), and gives them back when the id is used again."""

    def __init__(self) -> None:
        self.sets: dict[Address, dict[int, list[socket.socket]]] = {}
        self.hosts: dict[int, int] = {}  # worker id -> the worker accepting on its sockets

    def bind(self, addresses: list[Address], workers: list[int]) -> Listeners:
        """Bind what is missing for every (address, worker) pair, as a new ``Listeners`` to
        ``adopt`` once the caller is sure; all or nothing (OSError names the address)."""
        bound = Listeners()
        try:
            for address in addresses:
                have = self.sets.get(address, {})
                try:
                    # nobody else may hold the port (see the module docstring); where one of
                    # ours overlaps it (re-spelled: 0.0.0.0:80 -> 127.0.0.1:80) our own
                    # sockets would fail the probe
                    if not have and not any(_overlap(address, held) for held in self.sets):
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

    def of(self, wid: int, addresses=None) -> dict[Address, list[socket.socket]]:
        """The sockets bound for worker ``wid`` (of ``addresses`` only, when given)."""
        return {address: per_worker[wid] for address, per_worker in self.sets.items()
                if wid in per_worker and (addresses is None or address in addresses)}

    def accepted_by(self, wid: int) -> list[int]:
        """The worker ids whose sockets worker ``wid`` accepts on: its own and those it hosts."""
        return [wid] + sorted(o for o, host in self.hosts.items() if host == wid and o != wid)

    def close_address(self, address: Address) -> None:
        for socks in self.sets.pop(address, {}).values():
            for sock in socks:
                sock.close()

    def close(self) -> None:
        for address in list(self.sets):
            self.close_address(address)

    def addresses(self) -> list[Address]:
        return list(self.sets)


WILDCARDS = {"", "0.0.0.0", "::"}


def _overlap(a: Address, b: Address) -> bool:
    """Whether two listening addresses take the same connections (some of them)."""
    return a[1] == b[1] and (a[0] == b[0] or a[0] in WILDCARDS or b[0] in WILDCARDS)


def show(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
