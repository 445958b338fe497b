"""Requests through a canary route are counted under the version that answered them: the middleware's
`version_*` metrics, told each draw by the patch of clearml-serving's canary draw."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from prometheus_client import REGISTRY

from serving_local.request_metrics import RequestMetrics, note_served_url
from tests.serving.test_request_limits import Client


class CanaryApp:
    """Stands for the stock app: draws a version as its canary route would, answers with a status."""

    def __init__(self) -> None:
        self.draws = iter(["asteroid/2", "asteroid/1", "asteroid/2"])
        self.statuses = iter([500, 200, 200])

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        note_served_url(next(self.draws))
        await send({"type": "http.response.start", "status": next(self.statuses), "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def version_count(endpoint: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "clearml_serving_version_requests_total", {"endpoint": endpoint, "code": code}
    )
    return value or 0.0


def test_each_canary_request_is_counted_under_the_version_that_answered_it() -> None:
    before = {
        key: version_count(*key)
        for key in [("asteroid/2", "500"), ("asteroid/1", "200"), ("asteroid/2", "200")]
    }
    route = REGISTRY.get_sample_value(
        "clearml_serving_requests_total", {"endpoint": "asteroid", "code": "500"}
    )
    client = Client(
        RequestMetrics(CanaryApp(), known_endpoints=lambda: {"asteroid", "asteroid/1", "asteroid/2"})
    )
    for _ in range(3):
        client.post("/serve/asteroid", b"{}")
    assert {key: version_count(*key) - count for key, count in before.items()} == {
        ("asteroid/2", "500"): 1, ("asteroid/1", "200"): 1, ("asteroid/2", "200"): 1,
    }  # fmt: skip
    after = REGISTRY.get_sample_value(
        "clearml_serving_requests_total", {"endpoint": "asteroid", "code": "500"}
    )
    assert after - (route or 0.0) == 1  # the route's own series keep the path's label
    note_served_url("asteroid/9")  # outside a request: nothing to tell, nothing raised


DRAW_SCRIPT = """
import third_party_patches
from clearml_serving.serving.model_request_processor import ModelRequestProcessor
drawn = []
assert third_party_patches.report_canary_draws(drawn.append)
assert third_party_patches.report_canary_draws(drawn.append)  # idempotent
processor = ModelRequestProcessor.__new__(ModelRequestProcessor)
processor._canary_route = {"asteroid": {"endpoints": ["asteroid/1", "asteroid/2"], "weights": [0.0, 1.0]}}
answers = [processor._process_canary(base_url="asteroid") for _ in range(3)]
print(answers == drawn == ["asteroid/2"] * 3, processor._process_canary(base_url="other"), drawn[3:])
"""


def test_the_patched_canary_draw_reports_what_clearml_serving_drew() -> None:
    done = subprocess.run([sys.executable, "-c", DRAW_SCRIPT], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "True None []", "")
