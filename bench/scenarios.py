"""The benchmark scenarios, by name: what each request looks like and how it is measured.

A ``wrk`` scenario becomes a wrk Lua script (method, headers, body, and a ``done`` hook that
prints the summary as one JSON line); ``idle`` is the idle keep-alive memory check;
``routes`` (routes-1k, issue 3 scenario 5) is a wrk scenario with its own configs, backend
ports and Lua script, for fastgw and nginx only: see bench/routes.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .servers import STREAM_PATH


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    kind: str = "wrk"  # "wrk" | "idle" | "routes"
    path: str = "/"
    method: str = "GET"
    body_size: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    idle_connections: int = 0

    def lua(self) -> str:
        """The wrk script: the request, and a summary line ``BENCH_JSON {...}`` at the end."""
        if self.kind == "routes":
            from .routes import lua  # routes imports this module
            return lua()
        lines = [f'wrk.method = "{self.method}"']
        if self.body_size:
            lines.append(f'wrk.body = string.rep("a", {self.body_size})')
            lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
        for name, value in self.headers.items():
            lines.append(f'wrk.headers["{name}"] = "{value}"')
        lines.append(DONE_HOOK)
        return "\n".join(lines) + "\n"


DONE_HOOK = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"mean":%.1f,"max":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("get-keepalive", "small GET (33-byte body), keep-alive connections"),
    Scenario("get-close", "small GET with a new client connection per request "
             "(Connection: close); upstream connections stay pooled",
             headers={"Connection": "close"}),
    Scenario("post-4k", "POST with a 4 KiB body, keep-alive; small response",
             method="POST", body_size=4096),
    Scenario("stream-1m", "GET of a 1 MiB static file, streamed through the proxy",
             path=STREAM_PATH),
    Scenario("idle-1k", "RSS with 1,000 idle keep-alive client connections "
             "(one GET on each, then held open)", kind="idle", idle_connections=1000),
    Scenario("routes-1k", "1,000 routes (900 path prefixes, 100 host + prefix) and a "
             "consistent-hash upstream over 4 targets keyed by X-User-Id; requests cycle over "
             "every route and 10,000 keys (fastgw and nginx only)", kind="routes"),
)}

DEFAULT_SCENARIOS = ("get-keepalive", "get-close", "post-4k")
