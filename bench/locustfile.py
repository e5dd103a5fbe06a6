"""Mixed, realistic traffic for fastgw: several routes, GET and POST, API version headers.

Run headless through the harness (``python -m bench --locust``), or by hand against a running
gateway (loopback only), always for a bounded time:

    locust -f bench/locustfile.py --headless -u 20 -r 10 --run-time 20s --host http://127.0.0.1:8080

The benchmark backend answers every path; when fastgw routes by version and splits traffic
(canary), point the ``X-API-Version`` values and the paths below at those routes.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, between, task

API_VERSIONS = ("1", "2", "2", "3")  # some clients still on v1, most on v2, a few on v3


class ApiClient(FastHttpUser):
    """A client of a versioned JSON API that also loads a page and its static assets."""

    wait_time = between(0.005, 0.05)

    def on_start(self) -> None:
        self.version = random.choice(API_VERSIONS)

    @task(3)
    def home(self) -> None:
        self.client.get("/", name="/")

    @task(2)
    def static(self) -> None:
        self.client.get(f"/static/app.{random.randint(1, 5)}.js", name="/static/[asset]")

    @task(6)
    def list_items(self) -> None:
        self.client.get(f"/api/items?page={random.randint(1, 20)}", name="/api/items",
                        headers={"X-API-Version": self.version, "Accept": "application/json"})

    @task(6)
    def get_item(self) -> None:
        self.client.get(f"/api/items/{random.randint(1, 10_000)}", name="/api/items/[id]",
                        headers={"X-API-Version": self.version, "Accept": "application/json"})

    @task(2)
    def create_order(self) -> None:
        body = {"item": random.randint(1, 10_000), "quantity": random.randint(1, 5),
                "note": "x" * random.randint(0, 512)}
        self.client.post("/api/orders", json=body, name="/api/orders",
                         headers={"X-API-Version": self.version})

    @task(1)
    def health(self) -> None:
        self.client.get("/healthz", name="/healthz")
