"""The process model's small parts, without processes: control messages with descriptors over
a socketpair, all-or-nothing listener binding, the workers setting, and how a worker's state
carries over a plan swap (pools and balancers of what did not change)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from fastgw.config import ConfigError, load_config_bytes
from fastgw.plan import compile_plan
from fastgw.proxy.state import ProxyState
from fastgw.server import control, listeners


def test_messages_with_descriptors_arrive_whole_and_in_order():
    master, worker = socket.socketpair()
    inbox = control.Inbox(worker)
    extra = socket.socket()
    big = {"op": "apply", "blob": os.urandom(3 << 20)}  # larger than one read

    def send_all():
        control.send(master, {"op": "first"}, [extra.fileno()])
        control.send(master, big)  # blocks until the reader has taken most of it
        control.send(master, {"op": "last"})

    sender = threading.Thread(target=send_all)
    sender.start()
    got = []
    worker.settimeout(1)
    deadline = time.monotonic() + 10
    while len(got) < 3 and time.monotonic() < deadline:
        got += inbox.read()
    sender.join(10)
    assert [m["op"] for m in got] == ["first", "apply", "last"]
    assert got[1]["blob"] == big["blob"]
    [fd] = inbox.take_fds(1)
    received = socket.socket(fileno=fd)
    assert received.type == socket.SOCK_STREAM and fd != extra.fileno()
    received.close()
    master.close()
    assert inbox.read() == [] and inbox.closed
    extra.close()
    worker.close()


def test_binding_is_all_or_nothing_and_per_worker():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    busy_port = busy.getsockname()[1]
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    held = listeners.Listeners()
    with pytest.raises(OSError) as info:
        held.bind([("127.0.0.1", free_port), ("127.0.0.1", busy_port)], [1, 2])
    assert f"cannot listen on 127.0.0.1:{busy_port}" in info.value.strerror
    busy.close()

    # the first address was released again: it binds now, one socket set per worker
    held.adopt(held.bind([("127.0.0.1", free_port)], [1, 2]))
    one, two = held.of(1)[("127.0.0.1", free_port)], held.of(2)[("127.0.0.1", free_port)]
    assert len(one) == len(two) == 1 and one[0].fileno() != two[0].fileno()
    # only what is missing is bound: a third worker's set
    more = held.bind([("127.0.0.1", free_port)], [1, 2, 3])
    assert list(more.sets[("127.0.0.1", free_port)]) == [3]
    held.adopt(more)
    # somebody else can't share the port by accident: a new address is probed without
    # SO_REUSEPORT first, and a port we hold fails that probe
    with pytest.raises(OSError, match="cannot listen on"):
        listeners.Listeners().bind([("127.0.0.1", free_port)], [1])
    # a retired worker id's sockets stay filed under it while another worker accepts on them
    held.hosts[3] = 1
    assert held.accepted_by(1) == [1, 3] and held.accepted_by(2) == [2]
    assert list(held.of(3)) == [("127.0.0.1", free_port)]
    assert held.of(3, addresses=set()) == {}
    held.close()
    assert held.addresses() == []
    assert listeners.show(("::1", 80)) == "[::1]:80"


BASE = """
listen: 127.0.0.1:8080
{extra}
upstreams:
  same: {{targets: [{{address: "10.0.0.1:80"}}, {{address: "10.0.0.2:80"}}]}}
  moving: {{targets: [{{address: "10.0.1.1:80"}}, {{address: "{moving}"}}]}}
routes:
  - {{match: {{path_prefix: /}}, upstream: same}}
  - {{match: {{path_prefix: /m}}, upstream: moving}}
"""


def config(moving: str = "10.0.1.2:80", extra: str = ""):
    return load_config_bytes(BASE.format(moving=moving, extra=extra).encode(), "t.yaml")


def test_workers_setting():
    assert config().worker_count() == 1
    assert config(extra="workers: 3").worker_count() == 3
    assert config(extra="workers: auto").worker_count() == len(os.sched_getaffinity(0))
    with pytest.raises(ConfigError, match=r'\$\.workers: expected a number of workers .* "auto"'):
        config(extra="workers: 0")


class Idle:
    """A pooled connection as the pool sees it."""

    def __init__(self):
        self.closed = False
        self.transport = self

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True


def test_a_plan_swap_keeps_what_did_not_change():
    loop = asyncio.new_event_loop()
    try:
        first = config()
        gw = ProxyState(loop, first, compile_plan(first))
        same, moving = gw.groups["same"], gw.groups["moving"]
        kept_conn, gone_conn = Idle(), Idle()
        moving.targets[0].pool.release(kept_conn, 0)
        moving.targets[1].pool.release(gone_conn, 0)
        same.balancer.pick(None)  # the balancer has a position now
        gone_pool = moving.targets[1].pool

        second = config(moving="10.0.1.3:80", extra="shutdown_timeout: 5s")
        gw.apply(second, compile_plan(second))
        assert gw.groups["same"] is same  # unchanged upstream: same balancer, same position
        assert gw.groups["moving"] is not moving
        assert gw.groups["moving"].targets[0].pool is moving.targets[0].pool
        assert gw.routes[1].group is gw.groups["moving"]
        assert not kept_conn.closed
        assert gone_conn.closed and gone_pool.max_idle == 0  # the removed target drains
        assert gw.shutdown_timeout == 5.0
    finally:
        loop.close()


def test_at_most_64_listeners():
    many = "\n".join(f'  - "127.0.0.1:{20000 + i}"' for i in range(65))
    text = BASE.format(moving="10.0.1.2:80", extra="").replace(
        "listen: 127.0.0.1:8080", "listen:\n" + many)
    with pytest.raises(ConfigError, match=r"\$\.listen: expected at most 64 addresses, got 65"):
        load_config_bytes(text.encode(), "t.yaml")


def test_the_port_probe_is_skipped_only_for_a_listener_of_ours_it_overlaps():
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.2", 0))
    other.listen(1)
    port = other.getsockname()[1]
    held = listeners.Listeners()
    held.adopt(held.bind([("127.0.0.1", port)], [1]))
    try:
        # same port, another host somebody else holds: still probed, still refused
        with pytest.raises(OSError, match="cannot listen on 127.0.0.2"):
            held.bind([("127.0.0.2", port)], [1])
        # the wildcard over our own 127.0.0.1 listener: a re-spelling, not probed
        held.adopt(held.bind([("0.0.0.0", port)], [1]))
    finally:
        held.close()
        other.close()
