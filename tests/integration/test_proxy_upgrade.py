"""End to end: Upgrade (WebSocket). The upgrade headers are forwarded; after the upstream's 101
the proxy is a byte tunnel both ways; a refused upgrade stays plain HTTP."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import threading

from tests.support.backend import WS_GUID, pattern_bytes
from tests.support.client import Client, build_request

KEY = base64.b64encode(b"fastgw-test-key!").decode()
UPGRADE_HEADERS = [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                   ("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "13")]


def ws_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """A masked client frame (the backend echoes raw bytes, so any bytes would do)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def upgrade(c: Client, target: str = "/ws"):
    c.send(build_request("GET", target, UPGRADE_HEADERS))
    resp = c.read_response()
    assert resp.status == 101, resp
    assert resp.header("Upgrade").lower() == "websocket", resp.headers
    assert "upgrade" in resp.connection_tokens(), resp.headers
    expected = base64.b64encode(hashlib.sha1(KEY.encode() + WS_GUID).digest()).decode()
    assert resp.header("Sec-WebSocket-Accept") == expected
    return resp


def test_websocket_echo_through_proxy(gateway, backend):
    with Client(gateway.port) as c:
        upgrade(c)
        rec, = backend.wait_requests(1)
        assert rec.raw_head.startswith(b"GET /ws HTTP/1.1\r\n")
        assert "upgrade" in {t.strip().lower() for t in (rec.header("Connection") or "").split(",")}, \
            rec.headers
        assert rec.header("Upgrade") == "websocket"
        assert rec.header("Sec-WebSocket-Key") == KEY
        assert rec.header("Sec-WebSocket-Version") == "13"
        for payload in (b"hi", b"x" * 200, pattern_bytes(70_000)):
            frame = ws_frame(payload)
            c.send(frame)
            assert c.read_exactly(len(frame)) == frame
        # raw bytes that are not HTTP pass untouched, in both directions
        junk = b"GET / HTTP/1.1\r\n\r\n\x00\xff\r\n"
        c.send(junk)
        assert c.read_exactly(len(junk)) == junk


def test_websocket_large_transfer_both_ways(gateway):
    payload = pattern_bytes(4 << 20)
    with Client(gateway.port, timeout=30) as c:
        upgrade(c)
        sender = threading.Thread(target=c.send, args=(payload,), daemon=True)
        sender.start()
        assert c.read_exactly(len(payload), timeout=30) == payload
        sender.join(timeout=10)


def test_websocket_data_right_after_101(gateway):
    """Bytes the upstream sends in the same packet as its 101 reach the client."""
    with Client(gateway.port) as c:
        upgrade(c, "/ws?greet=1")
        assert c.read_exactly(5) == b"hello"
        c.send(b"ping")
        assert c.read_exactly(4) == b"ping"


def test_websocket_client_bytes_pipelined_with_upgrade(gateway):
    """Tunnel bytes the client sends right behind the upgrade request are not lost."""
    with Client(gateway.port) as c:
        c.send(build_request("GET", "/ws", UPGRADE_HEADERS) + b"early-bytes")
        resp = c.read_head()
        assert resp.status == 101, resp
        assert c.read_exactly(11) == b"early-bytes"


def test_websocket_close_propagates(gateway, backend):
    with Client(gateway.port) as c:
        upgrade(c)
        c.send(b"bye")
        assert c.read_exactly(3) == b"bye"
        c.sock.shutdown(1)  # the client closes its side
        # the backend sees the close, closes too; the client sees the end of the tunnel
        c.assert_closed(timeout=5)
    backend.wait_for(lambda: all(cr.closed_by == "peer" for cr in backend.connections.values()),
                     5, "the tunnel's upstream side to be closed")


def test_refused_upgrade_stays_http(gateway, backend):
    with Client(gateway.port) as c:
        c.send(build_request("GET", "/no-upgrade", UPGRADE_HEADERS))
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"GET /no-upgrade"), resp
        assert c.request("GET", "/after").body == b"GET /after"
    recs = backend.wait_requests(2)
    assert recs[0].header("Upgrade") == "websocket"


def test_closed_tunnel_is_released(gateway, backend):
    """A tunnel both sides have closed is gone: SIGTERM finds no open connection to wait for."""
    with Client(gateway.port) as c:
        upgrade(c)
        c.send(b"x")
        assert c.read_exactly(1) == b"x"
        c.sock.shutdown(1)
        c.assert_closed(timeout=5)
    backend.wait_for(lambda: all(cr.closed_by == "peer" for cr in backend.connections.values()),
                     5, "the tunnel's upstream side to be closed")
    status = gateway.stop(timeout=5)
    assert not gateway.killed, ("fastgw still waited for a connection 5 s after SIGTERM, although "
                                f"the only tunnel was closed at both ends\n{gateway.log_tail(10)}")
    assert status == 0, gateway.log_tail(10)
