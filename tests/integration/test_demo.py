"""``fastgw demo`` through the real CLI: one process with the gateway and its demo upstreams.

Every assertion is on what a demo upstream says it received (its JSON names the upstream and
the target) or on what the process printed; the banner's ports must be the ones in use.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import wait_until
from tests.support.client import Client
from tests.support.gateway import free_port


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.stdout_path = workdir / "demo.stdout"
        self.stderr_path = workdir / "demo.stderr.log"
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115 (held until stop())
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastgw", "demo", "--listen", f"127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err, cwd=workdir)

    def banner(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def details(self) -> str:
        return f"stdout:\n{self.banner()}\nstderr:\n{self.log()}"

    def wait_ready(self, timeout: float = 10.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"fastgw demo exited with {self.proc.returncode}\n"
                                     f"{self.details()}")
            return (f"listening on 127.0.0.1:{self.port}" in self.log()
                    and "Ctrl-C stops it." in self.banner())

        wait_until(ready, timeout, "fastgw demo to listen and print its banner",
                   interval=0.02, details=self.details)

    def upstream_addresses(self) -> dict[str, list[str]]:
        """The targets the banner lists for each upstream (its line: "  users-v1   A, B  ...")."""
        found = {}
        for name in ("users-v1", "users-v2"):
            line = re.search(rf"^ +{name} +(.*)$", self.banner(), re.M)
            assert line, f"the banner does not list {name}\n{self.banner()}"
            found[name] = re.findall(r"127\.0\.0\.1:\d+", line[1])
        return found

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"fastgw demo ignored SIGTERM for {timeout} s\n"
                                     f"{self.details()}") from None
        self._out.close()
        self._err.close()
        return self.proc.returncode


@pytest.fixture
def demo(tmp_path):
    running = Demo(tmp_path)
    try:
        running.wait_ready()
        yield running
    finally:
        status = running.stop()
    assert status == 0, f"fastgw demo exited with {status} after SIGTERM\n{running.details()}"


def who(client: Client, path: str, headers: list[tuple[str, str]] | None = None) -> dict:
    response = client.request("GET", path, headers=headers)
    assert response.status == 200, (response.status, response.body)
    return response.json()


def test_versions_by_header_accept_and_path_reach_users_v2(demo):
    addresses = demo.upstream_addresses()
    assert len(addresses["users-v1"]) == 2 and len(addresses["users-v2"]) == 1, addresses
    with Client(demo.port) as c:
        by_header = who(c, "/users", [("X-API-Version", "2")])
        by_accept = who(c, "/users", [("Accept", "application/vnd.example.v2+json")])
        by_path = who(c, "/v2/users")
        health = who(c, "/health")
    for answer in (by_header, by_accept, by_path):
        assert answer["upstream"] == "users-v2", answer
        assert answer["target"] == addresses["users-v2"][0]  # the port the banner printed
        assert answer["path"] == "/users"  # /v2 is stripped before forwarding
        assert answer["method"] == "GET"
    assert health["upstream"] == "users-v1"
    assert health["target"] in addresses["users-v1"]


def test_demo_upstreams_read_bodies_with_the_gateway_s_parser(demo):
    """The demo targets parse with fastgw's own RequestParser and ChunkedReader: a chunked body
    and a Content-Length body are both read whole, and the connection carries on."""
    with Client(demo.port) as c:
        chunked = c.request("POST", "/users", headers=[("Transfer-Encoding", "chunked")],
                            body=b"5\r\nhello\r\n0\r\n\r\n")
        sized = c.request("POST", "/users", body=b"x" * 3000)
        after = who(c, "/users")
    for response in (chunked, sized):
        assert response.status == 200, (response.status, response.body)
        assert response.json()["method"] == "POST"
    assert after["method"] == "GET"


def test_canary_is_sticky_and_users_v1_hashes_consistently(demo):
    addresses = demo.upstream_addresses()
    first: dict[str, tuple[str, str]] = {}
    with Client(demo.port) as c:
        for user in range(300):
            answer = who(c, "/users", [("X-User-Id", f"user-{user}")])
            assert answer["user"] == f"user-{user}"
            first[answer["user"]] = (answer["upstream"], answer["target"])
        for user in range(0, 300, 10):  # again, on a new connection: the same side and target
            with Client(demo.port) as again:
                for _ in range(3):
                    answer = who(again, "/users", [("X-User-Id", f"user-{user}")])
                    assert (answer["upstream"], answer["target"]) == first[f"user-{user}"]

    canary = [user for user, (upstream, _) in first.items() if upstream == "users-v2"]
    assert 12 <= len(canary) <= 54, f"{len(canary)} of 300 users in the 10% canary"
    v1_targets = {target for upstream, target in first.values() if upstream == "users-v1"}
    assert v1_targets == set(addresses["users-v1"]), "the hash should use both users-v1 targets"


def test_banner_users_go_where_it_says(demo):
    banner = demo.banner()
    in_canary = re.search(r"user (\S+) is in the 10% canary", banner)
    on_v1 = re.search(r"user (\S+) stays on users-v1", banner)
    assert in_canary and on_v1, banner
    with Client(demo.port) as c:
        for _ in range(3):
            assert who(c, "/users", [("X-User-Id", in_canary[1])])["upstream"] == "users-v2"
            assert who(c, "/users", [("X-User-Id", on_v1[1])])["upstream"] == "users-v1"
    assert f"curl -H 'X-API-Version: 2' http://127.0.0.1:{demo.port}/users" in banner


def test_sigterm_stops_everything_with_status_0(tmp_path):
    running = Demo(tmp_path)
    try:
        running.wait_ready()
        addresses = running.upstream_addresses()
        with Client(running.port) as c:
            who(c, "/users")  # leaves pooled connections to a demo upstream open
    finally:
        status = running.stop()
    assert status == 0, running.details()
    assert "stopped" in running.log(), running.details()
    for address in [f"127.0.0.1:{running.port}", *addresses["users-v1"], *addresses["users-v2"]]:
        host, _, port = address.rpartition(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=1).close()
