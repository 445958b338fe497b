"""The live-quality drill end to end on the local stack with a real Prometheus and Alertmanager: pipeline on
sample data, `serve.py` (the rollout writes the live-quality alerts from the winner's test metrics; the stack
runs the broker, the inference app with POST /feedback, Prometheus, Alertmanager and the webhook receiver on
free ports), the prediction log's consumer with its exporter; then the drill: correct labels raise no quality
alert, the catalogue revision fires AsteroidModelRecallLow and it reaches the webhook, correct labels resolve
it. Short windows (monitoring profile "short"). The figures are printed, the picture drawn."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import global_config
from asteroid import database
from asteroid.monitoring import config as monitoring_config
from asteroid.monitoring.prometheus_api import Prometheus
from asteroid.quality import drill_report
from asteroid.quality.config import TEST_ACCURACY_KEY, TEST_RECALL_KEY
from asteroid.quality.consumer import SCRAPE_TARGET
from asteroid.quality.drill import (
    ACCURACY_ALERT,
    RECALL_ALERT,
    QualityDrill,
    QualityDrillResult,
    QualityDrillSettings,
)
from asteroid.quality.rules import thresholds_of_model
from tests.backend.backend_harness import BackendHarness, terminate_group, wait_for
from tests.backend.conftest import backend  # noqa: F401
from tests.monitoring.conftest import tool
from tests.net import free_port
from tests.project_env import isolated_project

ROOT = global_config.ROOT
pytestmark = [pytest.mark.integration, pytest.mark.slow]
CONFIG = monitoring_config.PROFILES["short"]


@dataclass
class QualityStack:
    backend: BackendHarness
    env: dict[str, str]
    state: dict[str, Any]
    summary: dict[str, Any]
    exporter_url: str

    @property
    def prometheus(self) -> Prometheus:
        return Prometheus(self.state["prometheus_url"])


@dataclass
class ModelMetadata:
    """`get_metadata` of a clearml Model, read through the API."""

    values: dict[str, str]

    def get_metadata(self, key: str) -> str | None:
        return self.values.get(key)


@pytest.fixture(scope="module")
def stack(backend: BackendHarness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QualityStack]:  # noqa: F811
    tool("prometheus")
    tool("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("quality")
    env = {
        **isolated_project(root),
        "ASTEROID_SAMPLE_ROWS": "2000",
        "ASTEROID_MONITORING_PROFILE": "short",
        "SERVING_LOCAL_DATA_DIR": str(root / "stack"),
        "SERVING_LOCAL_MONITORING": "on",
        "SERVING_LOCAL_SCRAPE_SECONDS": "2",
        "SERVING_LOCAL_ALERT_GROUP_WAIT": "1s",
        "SERVING_LOCAL_ALERT_GROUP_INTERVAL": "2s",
        "SERVING_LOCAL_POLL_SECONDS": "2",
        **{
            f"SERVING_LOCAL_{name}_PORT": str(free_port())
            for name in ("", "METRICS", "BROKER", "PROMETHEUS", "ALERTMANAGER", "WEBHOOK")
        },
    }
    env["SERVING_LOCAL_PORT"] = env.pop("SERVING_LOCAL__PORT")
    backend.run(ROOT / "pipeline.py", "--seeds", "1", extra_env=env, timeout=600)
    consumer = None
    try:
        backend.run(ROOT / "serve.py", extra_env=env, timeout=600)
        state = json.loads((root / "stack" / "state.json").read_text())
        summary = json.loads((root / "runs" / "latest" / "summary.json").read_text())
        port = free_port()
        consumer = backend.spawn(
            [sys.executable, "-m", "asteroid.quality", "consume", "--metrics-port", str(port)],
            root / "consumer.log",
            extra_env=env,
        )
        yield QualityStack(backend, env, state, summary, f"http://127.0.0.1:{port}/metrics")
    finally:
        if consumer is not None:
            terminate_group(consumer)
        stop = [sys.executable, "-m", "serving_local", "stop", "--data-dir", str(root / "stack")]
        subprocess.run(stop, env=backend.env, capture_output=True, timeout=120, check=False)


def winner_thresholds(stack: QualityStack) -> Any:
    model = stack.backend.call("models.get_by_id", {"model": stack.summary["winner"]["model_id"]})["model"]
    stored = model.get("metadata") or {}
    items = stored.values() if isinstance(stored, dict) else stored  # the server keeps a dict by key
    metadata = {item["key"]: item["value"] for item in items}
    assert {TEST_ACCURACY_KEY, TEST_RECALL_KEY} <= set(metadata), metadata
    return thresholds_of_model(ModelMetadata(metadata), CONFIG)


@pytest.fixture(scope="module")
def drill(stack: QualityStack) -> QualityDrillResult:
    serve = f"{stack.state['serve_url']}/{global_config.SERVING_ENDPOINT}"
    feedback = f"{stack.state['serve_url'].removesuffix('/serve')}/feedback/{global_config.SERVING_ENDPOINT}"
    rows = database.query_observations(stack.env["NEO_DATABASE_URL"])
    result = QualityDrill(
        serve, feedback, stack.state["prometheus_url"], Path(stack.state["alerts_file"]), CONFIG, rows,
        winner_thresholds(stack), QualityDrillSettings(deadline_s=150),
    ).run()  # fmt: skip
    figures = {key: value for key, value in result.as_dict().items() if key != "notifications"}
    print(json.dumps(figures, indent=2))
    return result


def test_the_exporter_is_scraped(stack: QualityStack) -> None:
    wait_for(
        lambda: bool(stack.prometheus.query(f'up{{exporter="{SCRAPE_TARGET}"}} == 1')),
        "Prometheus to scrape the quality exporter",
        60,
    )


def test_correct_labels_raise_no_quality_alert(drill: QualityDrillResult) -> None:
    assert drill.quiet_phase_alerts == []
    correct = drill.live["correct"]
    assert correct["lowest_recall"] >= drill.thresholds["recall"]
    assert correct["lowest_accuracy"] >= drill.thresholds["accuracy"]


def test_the_revision_fires_the_recall_alert_and_it_is_delivered(drill: QualityDrillResult) -> None:
    assert drill.live["revision"]["lowest_recall"] < drill.thresholds["recall"]
    assert drill.firing_seen_at is not None and drill.firing_delivered_at is not None
    firing = [alert for record in drill.notifications for alert in record["alerts"]
              if alert["status"] == "firing"]  # fmt: skip
    assert RECALL_ALERT in {alert["labels"]["alertname"] for alert in firing}
    # the revised set is too small to take the accuracy below its threshold
    assert ACCURACY_ALERT not in {alert["labels"]["alertname"] for alert in firing}
    assert drill.revisions_sent["revision"] > 0


def test_correct_labels_resolve_it(drill: QualityDrillResult) -> None:
    assert drill.resolved_delivered_at is not None
    assert drill.resolved_delivered_at > drill.firing_delivered_at
    assert drill.live["recover"]["recall"] >= drill.thresholds["recall"]


def test_every_label_sent_matched_a_stored_prediction(drill: QualityDrillResult) -> None:
    assert drill.unmatched == 0
    # each served row was labelled (revisions relabel rows already counted)
    assert drill.matched == drill.rows_served


def test_the_picture_and_summary_are_drawn_from_the_drill(
    stack: QualityStack, drill: QualityDrillResult, tmp_path: Path
) -> None:
    path = drill_report.plot_live_quality(stack.prometheus, drill, tmp_path / "live_quality.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    section = drill_report.summary(drill, path)
    assert section["labels_sent"]["correct"] > 0 and section["recall_alert"]["delivered_at_s"] is not None
    print(f"live quality picture: {path}")
