"""End to end: request bodies (Content-Length and chunked, forwarded with the same framing),
Expect: 100-continue, and 50 MB bodies streamed both ways with the proxy's memory bounded,
including backpressure against a slow client and a slow upstream."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from tests.support import wait_until
from tests.support.backend import MIB, pattern_bytes, pattern_chunks, pattern_sha256
from tests.support.client import Client, build_request, chunked
from tests.support.gateway import PeakRSS

BIG = 50 * MIB  # 52428800 bytes
RSS_GROWTH_LIMIT_KB = 40 * 1024
SMALL = pattern_bytes(10_000)


def framing_headers(rec) -> tuple[str | None, str | None]:
    return rec.header("Content-Length"), rec.header("Transfer-Encoding")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_content_length_body_forwarded(gateway, backend, method):
    with Client(gateway.port) as c:
        resp = c.request(method, "/echo?m=1", [("Content-Type", "application/octet-stream")],
                         body=SMALL)
    assert resp.status == 200 and resp.body == SMALL, resp.status
    rec, = backend.wait_requests(1)
    assert rec.raw_head.startswith(f"{method} /echo?m=1 HTTP/1.1\r\n".encode()), rec.raw_head
    assert framing_headers(rec) == (str(len(SMALL)), None)
    assert rec.header("Content-Type") == "application/octet-stream"
    assert rec.header("X-Forwarded-For") == "127.0.0.1"
    assert rec.body == SMALL and rec.raw_body == SMALL


def test_zero_length_body(gateway, backend):
    with Client(gateway.port) as c:
        resp = c.request("POST", "/echo", body=b"")
        assert resp.status == 200 and resp.body == b""
        assert c.request("GET", "/after").body == b"GET /after"
    rec = backend.wait_requests(2)[0]
    assert framing_headers(rec) == ("0", None)
    assert rec.raw_body == b""


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_chunked_body_forwarded_as_received(gateway, backend, method):
    raw = chunked(b"hello", b" ", SMALL, b"!")
    with Client(gateway.port) as c:
        c.send(build_request(method, "/echo", [("Transfer-Encoding", "chunked")]) + raw)
        resp = c.read_response()
        assert resp.status == 200, resp
        assert resp.body == b"hello " + SMALL + b"!"
        # the connection is usable after the chunked request
        assert c.request("GET", "/after").body == b"GET /after"
    rec = backend.wait_requests(2)[0]
    assert rec.method == method
    assert framing_headers(rec) == (None, "chunked")
    assert rec.raw_body == raw, "chunk bytes must be forwarded as received"
    assert rec.body == b"hello " + SMALL + b"!"


def test_chunked_body_with_extensions_and_trailers(gateway, backend):
    raw = (b"5;name=value\r\nhello\r\n"
           b"A\r\n0123456789\r\n"
           b"0\r\nX-Trailer: yes\r\n\r\n")
    with Client(gateway.port) as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + raw)
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"hello0123456789", resp
        assert c.request("GET", "/after").body == b"GET /after"
    rec = backend.wait_requests(2)[0]
    assert rec.body == b"hello0123456789"
    # chunk bytes are forwarded as received, but not the trailer fields (as nginx)
    assert rec.raw_body == raw.replace(b"X-Trailer: yes\r\n", b""), rec.raw_body


def test_chunked_body_split_across_writes(gateway, backend):
    raw = chunked(b"abc", b"defghij", b"k" * 3000)
    with Client(gateway.port) as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]))
        for i in range(0, len(raw), 7):
            c.send(raw[i:i + 7])
        resp = c.read_response()
    assert resp.status == 200 and resp.body == b"abcdefghij" + b"k" * 3000
    rec, = backend.wait_requests(1)
    assert rec.raw_body == raw


def test_body_larger_than_request_buffer_streams(gateway, backend):
    body = pattern_bytes(300_000)  # over the 64 KiB request_buffer, under BODY_KEEP
    with Client(gateway.port) as c:
        resp = c.request("PUT", "/echo", body=body)
        assert resp.status == 200 and resp.body == body
        raw = chunked(*[body[i:i + 50_000] for i in range(0, len(body), 50_000)])
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + raw)
        resp = c.read_response()
        assert resp.status == 200 and resp.body == body
    cl_rec, chunked_rec = backend.wait_requests(2)
    assert framing_headers(cl_rec) == (str(len(body)), None) and cl_rec.raw_body == body
    assert framing_headers(chunked_rec) == (None, "chunked") and chunked_rec.raw_body == raw


def test_expect_100_continue(gateway, backend):
    with Client(gateway.port) as c:
        c.send(build_request("POST", "/echo", [("Content-Length", "11"),
                                               ("Expect", "100-continue")]))
        interim = c.read_response(timeout=5)  # before any body byte is sent
        assert interim.status == 100, interim
        assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"), interim.raw_head
        c.send(b"hello world")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"hello world", resp
        assert c.request("GET", "/after").body == b"GET /after"
    rec = backend.wait_requests(2)[0]
    assert rec.header("Expect") is None, rec.headers
    assert rec.body == b"hello world"


def test_expect_100_continue_chunked(gateway, backend):
    with Client(gateway.port) as c:
        c.send(build_request("PUT", "/echo", [("Transfer-Encoding", "chunked"),
                                              ("Expect", "100-continue")]))
        assert c.read_response(timeout=5).status == 100
        c.send(chunked(b"abc", b"def"))
        resp = c.read_response()
    assert resp.status == 200 and resp.body == b"abcdef", resp
    rec, = backend.wait_requests(1)
    assert rec.header("Expect") is None and rec.body == b"abcdef"


# -- 50 MB in each direction, memory bounded ------------------------------------------------

def _warm_up(c: Client) -> None:
    assert c.request("POST", "/echo", body=b"warm").status == 200


def _print_rss(rss: PeakRSS, what: str) -> None:
    print(rss.report(what))


def _assert_rss_bounded(rss: PeakRSS, what: str) -> None:
    _print_rss(rss, what)
    assert rss.growth_kb < RSS_GROWTH_LIMIT_KB, rss.report(what)


def test_upload_50mb_content_length(gateway, backend):
    with Client(gateway.port, timeout=60) as c:
        _warm_up(c)
        with PeakRSS(gateway) as rss:
            c.send(build_request("POST", "/stream-in", [("Content-Length", str(BIG))]))
            for chunk in pattern_chunks(BIG):
                c.send(chunk)
            resp = c.read_response(timeout=60)
    assert resp.status == 200, resp
    assert resp.json() == {"length": BIG, "sha256": pattern_sha256(BIG)}
    rec = backend.wait_requests(2)[1]
    assert rec.header("Content-Length") == str(BIG)
    _assert_rss_bounded(rss, "a 50 MiB Content-Length upload")


def test_upload_50mb_chunked(gateway, backend):
    with Client(gateway.port, timeout=60) as c:
        _warm_up(c)
        with PeakRSS(gateway) as rss:
            c.send(build_request("POST", "/stream-in", [("Transfer-Encoding", "chunked")]))
            for chunk in pattern_chunks(BIG):
                c.send(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
            c.send(b"0\r\n\r\n")
            resp = c.read_response(timeout=60)
    assert resp.status == 200, resp
    assert resp.json() == {"length": BIG, "sha256": pattern_sha256(BIG)}
    rec = backend.wait_requests(2)[1]
    assert rec.header("Transfer-Encoding") == "chunked"
    _assert_rss_bounded(rss, "a 50 MiB chunked upload")


@pytest.mark.parametrize("kind", ["size", "chunked"])
def test_download_50mb(gateway, kind):
    digest = hashlib.sha256()
    with Client(gateway.port, timeout=60) as c:
        _warm_up(c)
        with PeakRSS(gateway) as rss:
            c.send(build_request("GET", f"/{kind}/{BIG}"))
            resp = c.read_response(timeout=60, sink=digest.update)
        assert resp.status == 200, resp
        assert resp.body_length == BIG
        assert digest.hexdigest() == pattern_sha256(BIG)
        assert c.request("GET", "/after").body == b"GET /after"
    _assert_rss_bounded(rss, f"a 50 MiB download ({kind})")


def _stalled(counter, what: str, quiet: float = 0.5, timeout: float = 20.0) -> int:
    """Wait until ``counter()`` stops growing for ``quiet`` seconds; return its value."""
    state = {"value": -1, "since": time.monotonic()}

    def settled() -> bool:
        value = counter()
        now = time.monotonic()
        if value != state["value"]:
            state.update(value=value, since=now)
            return False
        return now - state["since"] >= quiet

    wait_until(settled, timeout, what, interval=0.02)
    return state["value"]


def test_slow_client_download_backpressure(gateway, backend):
    """A client that stops reading must stop the proxy reading from the upstream."""
    digest = hashlib.sha256()
    with Client(gateway.port, timeout=60) as c:
        _warm_up(c)
        sent_before = backend.bytes_sent
        with PeakRSS(gateway) as rss:
            c.send(build_request("GET", f"/size/{BIG}"))
            sent = _stalled(lambda: backend.bytes_sent - sent_before,
                            "the backend to stop sending while the client does not read")
            _print_rss(rss, "a stalled 50 MiB download")
            print(f"backend had sent {sent / MIB:.1f} MiB when the stalled download settled")
            assert sent < 40 * MIB, (
                f"the backend sent {sent} of {BIG} bytes while the client read nothing: "
                "the proxy does not apply backpressure to the upstream")
            resp = c.read_response(timeout=60, sink=digest.update)
    assert resp.status == 200 and resp.body_length == BIG
    assert digest.hexdigest() == pattern_sha256(BIG)
    _assert_rss_bounded(rss, "a stalled, then resumed 50 MiB download")


def test_slow_upstream_upload_backpressure(gateway, backend):
    """An upstream that stops reading must stop the proxy reading the client's upload."""
    progress = {"sent": 0, "error": None}
    with Client(gateway.port, timeout=60) as c:
        _warm_up(c)

        def upload() -> None:
            try:
                c.send(build_request("POST", "/hold-in", [("Content-Length", str(BIG))]))
                for chunk in pattern_chunks(BIG, 64 * 1024):
                    c.send(chunk)
                    progress["sent"] += len(chunk)
            except OSError as exc:
                progress["error"] = exc

        sender = threading.Thread(target=upload, daemon=True)
        with PeakRSS(gateway) as rss:
            sender.start()
            backend.wait_for(lambda: any(r.target == "/hold-in" for r in backend.requests), 10,
                             "the /hold-in request head at the backend")
            sent = _stalled(lambda: progress["sent"],
                            "the client's upload to stall while the upstream does not read")
            _print_rss(rss, "a stalled 50 MiB upload")
            print(f"client had sent {sent / MIB:.1f} MiB when the stalled upload settled")
            assert sent < 40 * MIB, (
                f"the client sent {sent} of {BIG} bytes while the upstream read nothing: "
                "the proxy does not apply backpressure to the client")
            backend.release.set()
            sender.join(timeout=60)
            assert not sender.is_alive(), "the upload did not finish after the upstream resumed"
            assert progress["error"] is None, progress["error"]
            resp = c.read_response(timeout=60)
    assert resp.status == 200, resp
    assert resp.json() == {"length": BIG, "sha256": pattern_sha256(BIG)}
    _assert_rss_bounded(rss, "a stalled, then resumed 50 MiB upload")
