"""The inference app's wrapper bounds each request (serving_local/request_limits.py) and its request metrics
keep a fixed label set (serving_local/request_metrics.py), driven here as ASGI apps with fake receive/send."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import string
from typing import Any

import pytest
from prometheus_client import REGISTRY

from serving_local.request_limits import RequestLimits, nesting_depth_exceeds
from serving_local.request_metrics import UNKNOWN_ENDPOINT, RequestMetrics

LIMIT = 1 << 20


class StockApp:
    """Stands for clearml-serving: reads the whole body, answers 200 (or the status it is told)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[bytes] = []
        self.headers: list[dict[bytes, bytes]] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        self.headers.append(dict(scope["headers"]))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


class Client:
    """One request through an ASGI app: the body in chunks, counting how many bytes the app took."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.read = 0

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None, chunk: int = 65536,
             method: str = "POST") -> tuple[int, dict]:  # fmt: skip
        pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        sent: list[dict] = []
        self.read = 0

        async def receive() -> dict:
            if not pieces:
                return {"type": "http.disconnect"}
            piece = pieces.pop(0)
            self.read += len(piece)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "headers": [
            (k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}  # fmt: skip
        asyncio.run(self.app(scope, receive, send))
        body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], json.loads(body_out or b"{}")


def test_a_declared_length_over_the_limit_is_refused_before_anything_is_read() -> None:
    stock = StockApp()
    client = Client(RequestLimits(stock, max_bytes=LIMIT))
    status, reply = client.post("/serve/asteroid", b"x" * (50 << 20), {"content-length": str(50 << 20)})
    assert (status, client.read, stock.bodies) == (413, 0, [])
    assert reply == {"detail": f"request body of {50 << 20} bytes; the limit is {LIMIT}"}


def test_a_body_without_length_stops_being_read_past_the_limit() -> None:
    client = Client(RequestLimits(StockApp(), max_bytes=LIMIT))
    status, reply = client.post("/serve/asteroid", b"[" + b"1," * (25 << 20) + b"1]")
    assert status == 413 and reply["detail"] == f"request body larger than {LIMIT} bytes"
    assert client.read <= LIMIT + 65536


def test_a_gzip_bomb_is_inflated_only_up_to_the_limit() -> None:
    bomb = gzip.compress(b" " * (300 << 20))
    assert len(bomb) < 400_000
    stock = StockApp()
    status, reply = Client(RequestLimits(stock, max_bytes=LIMIT)).post(
        "/serve/asteroid", bomb, {"content-encoding": "gzip", "content-type": "application/json"}
    )
    assert (status, stock.bodies) == (413, [])
    assert reply["detail"] == f"gzip request body inflates beyond {LIMIT} bytes"


def test_a_gzip_body_within_the_limit_reaches_the_app_inflated_without_the_header() -> None:
    rows = json.dumps([{"absolute_magnitude": 21.5}] * 100).encode()
    stock = StockApp()
    status, _ = Client(RequestLimits(stock, max_bytes=LIMIT)).post(
        "/serve/asteroid", gzip.compress(rows), {"content-encoding": "gzip"}
    )
    assert (status, stock.bodies) == (200, [rows])
    assert b"content-encoding" not in stock.headers[0]
    assert stock.headers[0][b"content-length"] == str(len(rows)).encode()
    status, reply = Client(RequestLimits(stock)).post("/serve/a", b"not gzip", {"content-encoding": "gzip"})
    assert status == 400 and reply["detail"].startswith("Content-Encoding is gzip but the body is not")


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream", None])
def test_deep_nesting_is_a_400_whatever_the_content_type(content_type: str | None) -> None:
    stock = StockApp()
    headers = {"content-type": content_type} if content_type else {}
    status, reply = Client(RequestLimits(stock)).post(
        "/serve/asteroid", b"[" * 10_000 + b"]" * 10_000, headers
    )
    assert (status, stock.bodies) == (400, [])
    assert reply == {"detail": "request body nested deeper than 32 levels"}


def test_brackets_inside_strings_do_not_count() -> None:
    assert not nesting_depth_exceeds(json.dumps({"note": "[" * 100 + '\\"{' * 50}).encode(), 32)
    assert nesting_depth_exceeds(b'{"a":' * 33 + b"1" + b"}" * 33, 32)
    assert not nesting_depth_exceeds(b'{"a":' * 32 + b"1" + b"}" * 32, 32)


def test_other_paths_pass_untouched() -> None:
    stock = StockApp()
    status, _ = Client(RequestLimits(stock, max_bytes=10)).post("/feedback/x", b"y" * 100)
    assert (status, stock.bodies) == (200, [b"y" * 100])


def series_count() -> int:
    return sum(
        len(metric.samples)
        for metric in REGISTRY.collect()
        if metric.name.startswith("clearml_serving_request")
    )


def test_request_metrics_labels_stay_a_fixed_set_after_1000_random_paths() -> None:
    stock = StockApp(status=200)
    client = Client(RequestMetrics(stock, known_endpoints=lambda: {"asteroid", "asteroid/1"}))
    client.post("/serve/asteroid", b"{}")
    client.post("/serve/asteroid/1/", b"{}")
    client.post("/serve/nothing", b"{}")
    before = series_count()
    rng = random.Random(0)
    for _ in range(1000):
        name = "".join(rng.choices(string.ascii_letters, k=12))
        stock.status = rng.choice([404, 405, 307])
        client.post(rng.choice([f"/serve/x{name}", f"/serve/asteroid/{name}/"]), b"{}",
                    method=rng.choice(["GET", "POST"]))  # fmt: skip
    stock.status = 404
    client.post("/serve/zzz", b"{}")
    labels = {
        sample.labels.get("endpoint")
        for metric in REGISTRY.collect() if metric.name == "clearml_serving_requests"
        for sample in metric.samples
    }  # fmt: skip
    assert labels == {"asteroid", "asteroid/1", UNKNOWN_ENDPOINT}
    assert series_count() - before <= 3 * (1 + 16)  # at most three new codes of _unknown, with their buckets


def test_a_loopback_listener_refuses_a_foreign_host_name() -> None:
    from serving_local.host_check import LoopbackHostOnly

    stock = StockApp()
    app = LoopbackHostOnly(stock)

    def status(host: str, server: tuple[str, int]) -> int:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/metrics", "server": server,
                 "headers": [(b"host", host.encode())]}  # fmt: skip
        asyncio.run(app(scope, receive, send))
        return sent[0]["status"]

    assert status("127.0.0.1:8080", ("127.0.0.1", 8080)) == 200
    assert status("localhost:8080", ("127.0.0.1", 8080)) == 200
    assert status("rebound.example:8080", ("127.0.0.1", 8080)) == 421  # DNS rebinding
    assert status("127.0.0.1:9999", ("127.0.0.1", 8080)) == 421
    assert status("inference:8080", ("0.0.0.0", 8080)) == 200  # a container's listener: any name
