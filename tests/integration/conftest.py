"""Fixtures for the end-to-end tests: a real backend (threads in this process) and fastgw as a
real subprocess in front of it. Nothing is mocked.

- ``backend``: a fresh backend per test; ``backends``: three of them.
- ``make_gateway(upstream=..., **config overrides)``: starts fastgw; stopped after the test.
- ``gateway``: fastgw with the default config in front of ``backend``.
- ``start(config)``: fastgw from a full config dict, once its workers serve.
- ``shared``: one backend + fastgw per module, records reset before each test; for tests that
  do not care about upstream connection state (e.g. the malformed-request table).

After each test the gateway must still be running: a crash is a failure, with its stderr.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support import wait_until
from tests.support.backend import Backend
from tests.support.client import Client
from tests.support.gateway import Gateway, free_port, make_config


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _check_alive(gateways: list[Gateway], request) -> None:
    failed = getattr(request.node, "rep_call", None)
    for gw in gateways:
        if failed is not None and failed.failed:
            print(gw.log_tail(60))
        if gw.proc is not None and not gw.stopped and not gw.alive():
            pytest.fail(f"fastgw exited during the test with status {gw.proc.returncode}\n"
                        f"{gw.log_tail(60)}")


def _check_clean_exit(gateways: list[Gateway], request=None) -> None:
    """SIGTERM with no request in flight stops fastgw promptly, with status 0."""
    call = getattr(request.node, "rep_call", None) if request is not None else None
    if call is not None and call.failed:
        return  # the test's own failure says more
    for gw in gateways:
        if gw.proc is None:
            continue
        if gw.killed:
            pytest.fail(f"fastgw did not exit within 5 s of SIGTERM (all test clients were "
                        f"closed)\n{gw.log_tail(20)}")
        if gw.proc.returncode != 0:
            pytest.fail(f"fastgw exited with status {gw.proc.returncode} after SIGTERM\n"
                        f"{gw.log_tail(20)}")


@pytest.fixture
def backend():
    server = Backend().start()
    yield server
    server.stop()


@pytest.fixture
def backends():
    """Three fresh backends, for tests that tell targets apart."""
    started = [Backend().start() for _ in range(3)]
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def start(tmp_path, request):
    """``start(config)``: a Gateway from a full config dict (``cls`` to use a subclass), once
    all its workers serve; stopped, and checked for a clean exit, after the test."""
    started: list[Gateway] = []

    def run(config: dict, cls: type[Gateway] = Gateway) -> Gateway:
        gw = cls(config, tmp_path, name=f"gw{len(started)}")
        started.append(gw)
        gw.start()
        count = config.get("workers", 1)
        wait_until(lambda: len(gw.status()["workers"]) == count, 10, f"{count} workers",
                   details=gw.log_tail)
        return gw

    yield run
    failed = getattr(request.node, "rep_call", None)
    for gw in started:
        status = gw.stop()
        if failed is None or not failed.failed:
            assert status == 0, gw.log_tail()


@pytest.fixture
def make_gateway(tmp_path, backend, request):
    started: list[Gateway] = []

    def start(upstream: str | None = None, **overrides) -> Gateway:
        config = make_config(upstream or backend.address, free_port(), **overrides)
        gw = Gateway(config, tmp_path, name=f"gateway{len(started)}")
        started.append(gw)
        return gw.start()

    yield start
    try:
        _check_alive(started, request)
    finally:
        for gw in started:
            gw.stop()
    _check_clean_exit(started, request)


@pytest.fixture
def gateway(make_gateway):
    return make_gateway()


@dataclass
class Shared:
    backend: Backend
    gateway: Gateway

    @property
    def port(self) -> int:
        return self.gateway.port

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.port, timeout=timeout)


# The tests on the shared gateway run once per parser implementation: the compiled extension
# (which must be built: the log must say so) and the pure-Python twin (FASTGW_PURE=1).
PARSERS = {"compiled": {}, "pure": {"FASTGW_PURE": "1"}}


@pytest.fixture(scope="module", params=sorted(PARSERS))
def _shared_module(tmp_path_factory, request):
    overrides = getattr(request.module, "GATEWAY_OVERRIDES", {})
    server = Backend().start()
    gw = Gateway(make_config(server.address, free_port(), **overrides),
                 tmp_path_factory.mktemp("shared"), env=PARSERS[request.param])
    try:
        gw.start()
        assert f"parser: {request.param}" in gw.log(), gw.log_tail()
        yield Shared(server, gw)
    finally:
        gw.stop()
        server.stop()
    _check_clean_exit([gw])


@pytest.fixture
def shared(_shared_module, request):
    _shared_module.backend.reset()
    _shared_module.backend.close_idle_after = None
    yield _shared_module
    _check_alive([_shared_module.gateway], request)
