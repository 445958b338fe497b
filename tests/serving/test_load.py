"""The load generator (asteroid/serving/load.py) is open loop: at a target rate a request's latency counts
from when it was due, so a server stall is charged to every request that waited behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from asteroid.serving.load import run_load
from tests.net import http_server_in_thread

STALL_S = 0.3


class StallOnce(BaseHTTPRequestHandler):
    """Answers at once, except the fifth request, which it holds for STALL_S."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for a delayed ACK
    served = 0
    headers_seen: ClassVar[list[tuple[str | None, str | None]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).served += 1
        type(self).headers_seen.append((self.headers["Content-Type"], self.headers["Accept"]))
        if type(self).served == 5:
            threading.Event().wait(STALL_S)  # the stall under test
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    StallOnce.served, StallOnce.headers_seen = 0, []
    with http_server_in_thread(StallOnce) as port:
        yield f"http://127.0.0.1:{port}/serve/x"


def test_latency_counts_from_the_due_time_so_a_stall_shows_in_every_delayed_request(server: str) -> None:
    result = run_load(server, [b"{}"], rate=100, concurrency=1, duration=2.5)
    assert result.statuses[200] == result.requests >= 200
    delayed = [latency for latency in result.latencies_s if latency > 0.1]
    # requests due every 10 ms during the 0.3 s stall all waited: a closed-loop measure would show one
    assert len(delayed) >= 15, sorted(result.latencies_s)[-20:]
    assert max(result.latencies_s) >= STALL_S
    assert sum(result.answers_per_second()) <= result.requests and len(result.answers_per_second()) == 1


def test_content_type_and_accept_are_sent(server: str) -> None:
    run_load(server, [b"x"], count=3, concurrency=1, content_type="application/x-test", accept="a/b")
    assert StallOnce.headers_seen == [("application/x-test", "a/b")] * 3
