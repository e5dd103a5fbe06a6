"""Review findings on the data path: each test states the documented behaviour and fails while
the bug it is named for is there. Real fastgw processes, a real backend, raw sockets; every
wait has a deadline.
"""

from __future__ import annotations

import os
import socket
import struct
import threading

from tests.integration.test_proxy_timeouts import unreachable_upstream
from tests.support import wait_until
from tests.support.backend import MIB, pattern_bytes
from tests.support.client import Client, ConnectionClosed, build_request

UPGRADE_HEADERS = [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                   ("Sec-WebSocket-Key", "ZmFzdGd3LXRlc3Qta2V5IQ=="),
                   ("Sec-WebSocket-Version", "13")]


# -- pipelining ---------------------------------------------------------------------------------

def test_pipelined_requests_to_an_upstream_without_targets_each_get_503(make_gateway, backend):
    """client.py _dispatch slices the head off ``buf``, then _reject_after_head slices it off
    again: the next pipelined request loses its first bytes (here: all of them) and is never
    answered."""
    gw = make_gateway(upstreams={"app": {"targets": [{"address": backend.address,
                                                       "weight": 0}]}})
    one = build_request("GET", "/a")
    two = build_request("GET", "/b")  # same length as ``one``
    assert len(one) == len(two)
    with Client(gw.port, timeout=5) as c:
        c.send(one + two)
        first = c.read_response()
        assert first.status == 503, first
        second = c.read_response(timeout=3)
        assert second.status == 503, second
    assert backend.connections_accepted == 0, backend.summary()


def test_many_pipelined_unrouted_requests_are_all_answered_in_order(make_gateway):
    """Each unrouted (404) pipelined request is answered by a call chain that recurses
    (_read_head -> _reject_after_head -> upstream_failed -> response_done -> _read_head): a few
    hundred small requests in one read exceed Python's recursion limit inside data_received,
    uvloop aborts the connection and the rest are never answered."""
    gw = make_gateway(routes=[{"match": {"path_prefix": "/app"}, "upstream": "app"}])
    n = 600
    requests = b"".join(build_request("GET", f"/nope/{i}") for i in range(n))
    assert len(requests) < 64 * 1024  # within request_buffer: all of it may be held
    with Client(gw.port, timeout=5) as c:
        c.send(requests)
        for i in range(n):
            try:
                resp = c.read_response()
            except ConnectionClosed as exc:
                raise AssertionError(f"connection closed after {i} of {n} responses: {exc}\n"
                                     f"{gw.log_tail(15)}") from None
            assert resp.status == 404, (i, resp)
        assert c.request("GET", "/app/x").status == 200
    assert "RecursionError" not in gw.log(), gw.log_tail(15)


# -- flow control --------------------------------------------------------------------------------

def test_client_keeps_being_read_after_an_early_answer_while_the_upstream_was_write_paused(
        make_gateway, backend):
    """A request held whole (request_buffer raised) is larger than the upstream transport's
    high-water mark, so UpstreamConnection.pause_writing sets client.pause_upstream and the
    client's reading pauses. The upstream answers before reading the body (keep-alive); _done
    detaches the client, so the later resume_writing never reaches it: pause_upstream stays
    True and the next request on the keep-alive connection is never read."""
    gw = make_gateway(limits={"request_buffer": "32MiB", "max_body_bytes": "64MiB"})
    body = b"b" * (16 * MIB)
    with Client(gw.port, timeout=10) as c:
        c.send(build_request("POST", "/respond-early", body=body))
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"early"), resp
        assert "close" not in resp.connection_tokens(), resp.headers  # the premise: keep-alive
        backend.release.set()
        # the client connection goes on; the upstream one, with request bytes still queued,
        # was not reused (it is cut: those bytes would never be read)
        after = c.request("GET", "/after", timeout=5)
        assert (after.status, after.body) == (200, b"GET /after"), after
    assert backend.connections_accepted == 2, backend.summary()


def test_tunnel_carries_bytes_the_client_sent_before_the_101(make_gateway, backend):
    """Bytes sent right after an Upgrade request are held as "pipelined" data; past
    request_buffer, reading pauses (pause_pipeline). start_tunnel forwards what was held but
    never clears pause_pipeline, so the rest of the client's bytes are never read."""
    gw = make_gateway()
    early = pattern_bytes(1 * MIB)
    with Client(gw.port, timeout=10) as c:
        def send() -> None:
            try:
                c.send(build_request("GET", "/ws", UPGRADE_HEADERS) + early)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        resp = c.read_head()
        assert resp.status == 101, resp
        echoed = c.read_exactly(len(early), timeout=5)  # the backend echoes every byte
        assert echoed == early
        sender.join(timeout=5)


# -- responses cut short -------------------------------------------------------------------------

def test_close_delimited_response_cut_by_an_upstream_reset_is_not_ended_cleanly(gateway):
    """For a close-delimited body, how the upstream connection ends is the only framing. A reset
    (connection_lost with an exception) is a truncation; UpstreamConnection.connection_lost
    calls response_done for any UNTIL_CLOSE ending, so the client gets a clean FIN and takes
    the truncated body as complete. It must be cut (reset) instead."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(build_request("GET", "/reset/100000"))
        got = b""
        outcome = None
        while outcome is None:
            try:
                data = sock.recv(MIB)
            except ConnectionResetError:
                outcome = "reset"
                break
            if not data:
                outcome = "clean close"
            got += data
        assert got.startswith(b"HTTP/1.1 200 "), got[:200]
        assert outcome == "reset", (
            f"a close-delimited response whose upstream connection was reset ended with a "
            f"{outcome} after {len(got)} bytes: the client cannot tell it was truncated")


# -- keep-alive after a decoded chunked response -----------------------------------------------

def test_keep_alive_kept_after_a_chunked_response_was_decoded_for_http10_on_that_connection(
        gateway, backend):
    """Since 54e26bc, UpstreamConnection._done no longer resets ``dechunk``; the next response
    on the pooled connection (to any client) is then treated as close-delimited for the client
    (``self.dechunk is not None`` in _head): a Content-Length response to an HTTP/1.1 client
    gets Connection: close and the client connection is closed."""
    with Client(gateway.port) as old:
        old.send(b"GET /chunked/100 HTTP/1.0\r\nHost: test.local\r\n\r\n")
        first = old.read_response()
        assert first.status == 200 and first.body == pattern_bytes(100), first
    with Client(gateway.port) as c:
        resp = c.request("GET", "/size/10")
        assert resp.status == 200 and resp.body == pattern_bytes(10), resp
        assert resp.header("X-Backend-Conn") == first.header("X-Backend-Conn"), \
            "the premise: the pooled upstream connection was reused"
        assert "close" not in resp.connection_tokens(), resp.headers
        assert c.request("GET", "/again").status == 200


# -- a client that does not read -----------------------------------------------------------------

def _gateway_holds_socket_to(gw, client_port: int) -> bool:
    """Whether the gateway process still has an open socket connected to ``client_port``."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (int(local.split(":")[1], 16) == gw.port
                    and int(remote.split(":")[1], 16) == client_port):
                inodes.add(f"socket:[{inode}]")
    held = set()
    for pid in gw.pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    return bool(inodes & held)


def test_client_that_never_reads_a_complete_response_is_cut(make_gateway, backend):
    """client_send is how long a client may go without taking any of the bytes sent to it
    before it is cut (upstream_read, before that field existed). When the whole response has
    been handed to the client transport but not flushed,
    response_done -> _close() calls transport.close(), which waits for the buffer to drain,
    and sets deadline 0: no timeout applies any more, so a client that never reads keeps the
    connection (and its entry in gw.clients, and the buffered bytes) forever; a SIGTERM then
    waits SHUTDOWN_TIMEOUT (30 s) for it."""
    gw = make_gateway(timeouts={"client_send": "1s", "client_idle": "1s"})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # a tiny receive window and MSS keep the kernel's share small, so most of the 200 KiB
        # response (under the 256 KiB high-water mark, so it always completes) stays in the
        # gateway's transport buffer
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", gw.port))
        client_port = sock.getsockname()[1]
        sock.sendall(b"GET /size/204800 HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
        backend.wait_for(lambda: backend.bytes_sent >= 204800, 5,
                         "the backend to send the whole response")
        assert _gateway_holds_socket_to(gw, client_port)
        # client_send (1 s) + the 0.25 s sweep, with room to spare
        wait_until(lambda: not _gateway_holds_socket_to(gw, client_port), 6,
                   "the gateway to cut the client that does not read its response",
                   interval=0.05, details=gw.log_tail)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


# -- a streamed body that ends while the upstream connection is being opened ----------------------

def test_streamed_body_finished_while_connecting_still_gets_an_error_response(make_gateway):
    """_connect sets deadline 0 (upstream_connect bounds the connect), but _stream_body, when the
    body ends during the connect, sets deadline = now + upstream_read. With upstream_read shorter
    than upstream_connect that deadline fires first; on_deadline finds request_sent, no upstream
    and no response, and falls through to _abort(): the client is dropped without a response.
    (The GET variant of this is test_connect_slower_than_upstream_read_still_answers.)"""
    with unreachable_upstream() as address:
        gw = make_gateway(upstream=address,
                          timeouts={"upstream_connect": "2s", "upstream_read": "1s"})
        with Client(gw.port) as c:
            c.send(build_request("POST", "/upload", body=b"u" * (200 * 1024)))  # > request_buffer
            try:
                resp = c.read_response(timeout=10)
            except ConnectionClosed as exc:
                raise AssertionError(f"closed without a response: {exc}\n{gw.log_tail()}") \
                    from None
    assert resp.status == 502, resp



# -- X-Forwarded-For ------------------------------------------------------------------------------

def test_empty_x_forwarded_for_adds_no_empty_element(gateway, backend):
    """Since a038861, RequestHead.forward tests ``x_forwarded_for is not None`` where the old
    code tested truthiness: an empty received X-Forwarded-For becomes ", 127.0.0.1"."""
    with Client(gateway.port) as c:
        c.send(b"GET /xff HTTP/1.1\r\nHost: test.local\r\nX-Forwarded-For:\r\n\r\n")
        assert c.read_response().status == 200
    rec, = backend.wait_requests(1)
    assert rec.values("X-Forwarded-For") == ["127.0.0.1"], rec.raw_head
