"""End to end: timeouts, with short values so the suite stays fast.

client_header (the whole head, however slowly it trickles in) → 408; client_idle closes an idle
keep-alive connection; upstream_read (no response head in time) → 504; upstream_connect → 502.
"""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from tests.support.client import Client, ConnectionClosed, build_request

GATEWAY_OVERRIDES = {
    "timeouts": {"client_header": "1s", "client_idle": "1s", "upstream_connect": "1s",
                 "upstream_read": "1s"},
}


def assert_json_error(resp, status: int) -> None:
    assert resp.status == status, resp
    body = resp.json()
    assert body.get("status") == status and isinstance(body.get("error"), str), body


def test_slow_upstream_gives_504(shared):
    with shared.client() as c:
        start = time.monotonic()
        resp = c.request("GET", "/slow/5", timeout=5)
        elapsed = time.monotonic() - start
    assert_json_error(resp, 504)
    assert 0.9 <= elapsed < 2.5, f"504 after {elapsed:.2f}s with upstream_read 1s"
    # the upstream connection that timed out is not reused
    shared.backend.wait_for(lambda: all(cr.closed_by for cr in shared.backend.connections.values()),
                            5, "the proxy to close the timed-out upstream connection")


def test_upstream_in_time_is_not_cut(shared):
    with shared.client() as c:
        resp = c.request("GET", "/slow/0.5")
    assert (resp.status, resp.body) == (200, b"slow")


def test_slowloris_gets_408(shared):
    head = build_request("GET", "/never-complete", [("X-Padding", "p" * 200)])
    with shared.client() as c:
        start = time.monotonic()
        answer = b""
        # one byte every 100 ms: the head would take ~25 s; each byte must not reset the timer
        for byte in head[:-1]:
            try:
                c.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            c.sock.settimeout(0.1)
            try:
                answer = c.sock.recv(65536)
            except TimeoutError:
                if time.monotonic() - start > 5:
                    pytest.fail("no answer 5 s into a trickled head with client_header 1s")
                continue
            except ConnectionResetError:
                answer = b""
            break
        elapsed = time.monotonic() - start
        c.buf += answer
        if answer:
            resp = c.read_response(timeout=2)
            assert_json_error(resp, 408)
            assert "close" in resp.connection_tokens(), resp.headers
            c.assert_closed(timeout=2)
        else:
            pytest.fail(f"connection closed after {elapsed:.2f}s without a 408 response")
    assert 0.9 <= elapsed < 2.5, f"408 after {elapsed:.2f}s with client_header 1s"
    assert shared.backend.connections_accepted == 0 and shared.backend.bytes_received == 0


def test_silent_new_connection_is_closed(shared):
    """A connection that never sends a byte does not stay open forever."""
    with shared.client() as c:
        start = time.monotonic()
        rest = c.read_to_eof(timeout=5)
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.5, f"closed after {elapsed:.2f}s"
    assert rest in (b"",) or rest.startswith(b"HTTP/1.1 408"), rest


def test_idle_keep_alive_connection_closed_after_client_idle(shared):
    with shared.client() as c:
        assert c.request("GET", "/one").status == 200
        start = time.monotonic()
        rest = c.read_to_eof(timeout=5)
        elapsed = time.monotonic() - start
    assert rest == b"", f"an idle connection is closed silently, got {rest[:200]!r}"
    assert 0.9 <= elapsed < 2.5, f"idle connection closed after {elapsed:.2f}s, client_idle 1s"


def test_active_keep_alive_connection_stays_open(shared):
    """Requests spaced below client_idle keep one connection alive past the idle timeout."""
    with shared.client() as c:
        start = time.monotonic()
        for i in range(4):
            if i:
                # pacing is the scenario here: each gap is below client_idle (1 s)
                time.sleep(0.5)
            resp = c.request("GET", f"/paced/{i}")
            assert resp.status == 200, resp
        assert time.monotonic() - start > 1.4


@contextlib.contextmanager
def unreachable_upstream():
    """An address whose accept queue is full: the kernel drops further SYNs, so a connect to it
    neither succeeds nor fails until the connector gives up."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(8):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(listener.getsockname())
                fillers.append(s)
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect(listener.getsockname())
                pytest.skip("this kernel completes handshakes beyond the accept queue")
            except (TimeoutError, BlockingIOError):
                pass
            finally:
                probe.close()
            yield f"127.0.0.1:{listener.getsockname()[1]}"
        finally:
            for s in fillers:
                s.close()


def test_upstream_connect_timeout_gives_502(make_gateway):
    with unreachable_upstream() as address:
        gw = make_gateway(upstream=address, timeouts={"upstream_connect": "1s"})
        with Client(gw.port) as c:
            start = time.monotonic()
            resp = c.request("GET", "/connect", timeout=10)
            elapsed = time.monotonic() - start
    assert_json_error(resp, 502)
    assert 0.9 <= elapsed < 3, f"502 after {elapsed:.2f}s with upstream_connect 1s"


def test_connect_slower_than_upstream_read_still_answers(make_gateway):
    """upstream_read counts from the moment the request is sent; an upstream that does not even
    accept the connection gets the connect timeout's 502. Whatever timer fires first, the
    client gets an error response, never a silently closed connection."""
    with unreachable_upstream() as address:
        gw = make_gateway(upstream=address,
                          timeouts={"upstream_connect": "2s", "upstream_read": "1s"})
        with Client(gw.port) as c:
            start = time.monotonic()
            c.send(build_request("GET", "/connect"))
            try:
                resp = c.read_response(timeout=10)
            except ConnectionClosed:
                pytest.fail(f"the connection was closed without a response after "
                            f"{time.monotonic() - start:.2f}s (upstream_connect 2s, "
                            f"upstream_read 1s)\n{gw.log_tail()}")
            elapsed = time.monotonic() - start
    assert_json_error(resp, 502)
    assert 1.9 <= elapsed < 4, f"502 after {elapsed:.2f}s with upstream_connect 2s"
