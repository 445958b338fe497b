"""The project's read-only metrics endpoints (the statistics controller's, the supervisor's, the quality
exporter's) answer only their own loopback names: a DNS-rebound page gets 421, Prometheus its figures."""

from __future__ import annotations

import http.client

from prometheus_client import CollectorRegistry, Counter

from process_supervisor import PartStatus
from serving_local import stack_health
from serving_local.metrics_server import start_metrics_server


def get(port: int, host_header: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics", headers={"Host": host_header})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_a_foreign_host_gets_421_and_the_own_names_the_metrics() -> None:
    registry = CollectorRegistry()
    Counter("probe_answers", "a counter to find", registry=registry).inc(3)
    server, _ = start_metrics_server(0, addr="127.0.0.1", registry=registry)
    port = int(server.server_address[1])
    try:
        for name in (f"127.0.0.1:{port}", f"localhost:{port}"):
            status, body = get(port, name)
            assert status == 200 and "probe_answers_total 3.0" in body
        for foreign in (f"rebound.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", ""):
            status, body = get(port, foreign)
            assert (status, body) == (421, "unknown Host\n"), foreign
    finally:
        server.shutdown()
        server.server_close()


def test_the_supervisors_metrics_check_the_host_too() -> None:
    port = stack_health.serve_metrics("127.0.0.1", lambda: dict[str, PartStatus]())
    assert get(port, f"127.0.0.1:{port}")[0] == 200
    assert get(port, f"rebound.example:{port}")[0] == 421
