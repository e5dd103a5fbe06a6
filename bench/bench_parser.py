"""Micro-benchmarks of request-head parsing: fastgw (compiled and pure) against httptools and h11.

Not part of the default test run (pytest's testpaths is ``tests/``). Run from the repository
root, after building the extension (``python setup.py build_ext --inplace``):

    .venv/bin/pytest bench/bench_parser.py --benchmark-only
    .venv/bin/pytest bench/bench_parser.py --benchmark-only --benchmark-columns=median,mean,ops

Each parser reads the same bytes: a browser-like GET with 10 headers and an API request with 40.

- fastgw: ``RequestParser().parse(buf)`` gives a complete RequestHead (method, target, path,
  host, framing, hop-by-hop headers removed into ``kept``).
- httptools: ``HttpRequestParser(protocol).feed_data(buf)`` with a protocol that has no
  callbacks, so llhttp only scans (the parser is reused; the request is keep-alive).
  httptools is optional: these cases skip when it is not installed.
- h11: a new ``h11.Connection(h11.SERVER)``, ``receive_data`` and ``next_event`` until the
  ``Request`` event.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from fastgw._core import pure_parser

REQUEST_10 = (
    b"GET /api/v1/users/12345?include=profile HTTP/1.1\r\n"
    b"Host: api.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/120.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=4f9a2c1e8b7d6e5f; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n"
    b"Referer: https://www.example.com/dashboard\r\n"
    b"Cache-Control: max-age=0\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"\r\n"
)

REQUEST_40 = (
    b"POST /api/v2/orders/batch?dry_run=false&region=eu-west-1 HTTP/1.1\r\n"
    b"Host: gateway.internal.example.com\r\n"
    b"User-Agent: example-sdk-python/3.14.2 Python/3.11.7 Linux/6.1.0\r\n"
    b"Accept: application/json\r\n"
    b"Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: 0\r\n"
    b"Authorization: Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    b"c2lnbmF0dXJlLXBsYWNlaG9sZGVy\r\n"
    b"Cookie: session=4f9a2c1e8b7d6e5f; csrftoken=a8f5f167f44f4964e6c998dee827110c\r\n"
    b"Origin: https://app.example.com\r\n"
    b"Referer: https://app.example.com/orders/new\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Pragma: no-cache\r\n"
    b"X-Request-Id: 0b8a5f0e-4c1d-4a5b-9e3f-2d7c6b1a0f9e\r\n"
    b"X-Correlation-Id: 7d3e2c1b-0a9f-4e8d-b7c6-5a4f3e2d1c0b\r\n"
    b"X-Forwarded-For: 203.0.113.195, 70.41.3.18\r\n"
    b"X-Forwarded-Proto: https\r\n"
    b"X-Forwarded-Host: app.example.com\r\n"
    b"X-Real-IP: 203.0.113.195\r\n"
    b"X-Api-Version: 2024-06-01\r\n"
    b"X-Client-Version: 3.14.2\r\n"
    b"X-Tenant-Id: acme-corp\r\n"
    b"X-Idempotency-Key: 2f1e0d9c-8b7a-6f5e-4d3c-2b1a0f9e8d7c\r\n"
    b"Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
    b"Tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\r\n"
    b"X-B3-TraceId: 4bf92f3577b34da6a3ce929d0e0e4736\r\n"
    b"X-B3-SpanId: 00f067aa0ba902b7\r\n"
    b"X-B3-Sampled: 1\r\n"
    b"Sec-Fetch-Site: same-site\r\n"
    b"Sec-Fetch-Mode: cors\r\n"
    b"Sec-Fetch-Dest: empty\r\n"
    b"Sec-Ch-Ua: \"Chromium\";v=\"120\", \"Not_A Brand\";v=\"8\"\r\n"
    b"Sec-Ch-Ua-Mobile: ?0\r\n"
    b"Sec-Ch-Ua-Platform: \"Linux\"\r\n"
    b"If-None-Match: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"\r\n"
    b"DNT: 1\r\n"
    b"Priority: u=1, i\r\n"
    b"X-Feature-Flags: new-checkout,fast-search,beta-ui\r\n"
    b"X-Device-Id: 9f8e7d6c5b4a\r\n"
    b"\r\n"
)

REQUESTS = {"10-headers": REQUEST_10, "40-headers": REQUEST_40}


def _count_headers(data: bytes) -> int:
    return data.count(b"\r\n") - 2


assert _count_headers(REQUEST_10) == 10 and _count_headers(REQUEST_40) == 40


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    try:
        return importlib.import_module("fastgw._core.http_parser")
    except ImportError as exc:
        pytest.fail(f"the compiled parser is not built ({exc}): "
                    "run `python setup.py build_ext --inplace`", pytrace=False)


def run(benchmark: Any, group: str, parse: Callable[[bytes], Any], data: bytes) -> Any:
    benchmark.group = f"request head, {group}"
    result = benchmark(parse, data)
    assert result is not None
    return result


@pytest.mark.parametrize("name", list(REQUESTS))
def test_fastgw_compiled(benchmark: Any, compiled: ModuleType, name: str) -> None:
    head = run(benchmark, name, compiled.RequestParser().parse, REQUESTS[name])
    assert head.head_length == len(REQUESTS[name])


@pytest.mark.parametrize("name", list(REQUESTS))
def test_fastgw_pure(benchmark: Any, name: str) -> None:
    head = run(benchmark, name, pure_parser.RequestParser().parse, REQUESTS[name])
    assert head.head_length == len(REQUESTS[name])


class _NoCallbacks:
    """An httptools protocol without callbacks: llhttp scans and builds nothing."""


@pytest.mark.parametrize("name", list(REQUESTS))
def test_httptools(benchmark: Any, name: str) -> None:
    httptools = pytest.importorskip("httptools")
    parser = httptools.HttpRequestParser(_NoCallbacks())

    def feed(data: bytes) -> bool:
        parser.feed_data(data)
        return True

    run(benchmark, name, feed, REQUESTS[name])
    assert parser.get_method() in (b"GET", b"POST")
    assert parser.should_keep_alive()


@pytest.mark.parametrize("name", list(REQUESTS))
def test_h11(benchmark: Any, name: str) -> None:
    h11 = pytest.importorskip("h11")

    def parse(data: bytes) -> Any:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                return event
            assert event is not h11.NEED_DATA

    request = run(benchmark, name, parse, REQUESTS[name])
    assert len(request.headers) == _count_headers(REQUESTS[name])
