"""The live-quality drill end to end on the local stack with a real Prometheus and Alertmanager: pipeline on
sample data, `serve.py` (the rollout writes the live-quality alerts from the winner's test metrics; the stack
runs the broker, the inference app with POST /feedback, Prometheus, Alertmanager and the webhook receiver on
free ports), the prediction log's consumer with its exporter (started here when the stack does not run it);
then the drill: correct labels raise no quality alert, the catalogue revision fires AsteroidModelRecallLow
and it reaches the webhook, correct labels resolve it; the figures reach the monitoring task's scalars; the
Evidently reports. Short windows (monitoring profile "short"). The figures are printed, the picture drawn."""

from __future__ import annotations

import json
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
from asteroid.quality import drill_report, scalars
from asteroid.quality.config import TEST_ACCURACY_KEY, TEST_RECALL_KEY
from asteroid.quality.consumer import SCRAPE_TARGET
from asteroid.quality.drill import (
    ACCURACY_ALERT,
    RECALL_ALERT,
    QualityDrill,
    QualityDrillResult,
    QualityDrillSettings,
)
from asteroid.quality.report import REPORT_TITLE
from asteroid.quality.rules import thresholds_of_model
from tests.backend.backend_harness import BackendHarness, terminate_group, wait_for
from tests.backend.conftest import backend  # noqa: F401
from tests.monitoring.conftest import tool
from tests.monitoring.monitored_stack import monitored_stack_env, stack_dir, stop_stack
from tests.net import free_port

ROOT = global_config.ROOT
pytestmark = [pytest.mark.integration, pytest.mark.slow]
CONFIG = monitoring_config.PROFILES["short"]
SCALARS_EVERY_S = 2


@dataclass
class QualityStack:
    backend: BackendHarness
    env: dict[str, str]
    state: dict[str, Any]
    summary: dict[str, Any]

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
    env = {**monitored_stack_env(root), scalars.EVERY_ENV: str(SCALARS_EVERY_S)}
    backend.run(ROOT / "pipeline.py", "--seeds", "1", extra_env=env, timeout=600)
    consumer = None
    try:
        backend.run(ROOT / "serve.py", extra_env=env, timeout=600)
        state = json.loads((stack_dir(root) / "state.json").read_text())
        summary = json.loads((root / "runs" / "latest" / "summary.json").read_text())
        if SCRAPE_TARGET not in state.get("part_urls", {}):  # a stack that does not run the consumer itself
            consumer = backend.spawn(
                [sys.executable, "-m", "asteroid.quality", "consume", "--metrics-port", str(free_port())],
                root / "consumer.log",
                extra_env=env,
            )
        yield QualityStack(backend, env, state, summary)
    finally:
        if consumer is not None:
            terminate_group(consumer)
        stop_stack(root, backend.env)


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


def monitoring_task(stack: QualityStack) -> dict[str, Any]:
    """The statistics controller's task of the stack's service, as the API returns it."""
    service = stack.backend.call("tasks.get_by_id", {"task": stack.state["service_id"]})["task"]
    name = f"{service['name']}{scalars.CONTROLLER_SUFFIX}"
    tasks = stack.backend.call("tasks.get_all", {"type": ["monitor"], "name": f"^{name}$"})["tasks"]
    assert len(tasks) == 1, [task["name"] for task in tasks]
    return tasks[0]


def reported_scalars(task: dict[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
    """(title, series) -> last value, minimum, maximum: the task's last_metrics (what a trigger reads)."""
    return {
        (entry["metric"], entry["variant"]): {"last": entry["value"], "min": entry["min_value"]}
        for variants in (task.get("last_metrics") or {}).values()
        for entry in variants.values()
    }


def test_the_live_figures_reach_the_monitoring_task_as_scalars(
    stack: QualityStack, drill: QualityDrillResult
) -> None:
    """The consumer reports every 2 s here: the recall's minimum the task recorded is the revision's fall
    (below the alert threshold), its last value the recovered recall."""
    series = f"{drill.endpoint}/{drill.version}"

    def recovered() -> bool:
        figures = reported_scalars(monitoring_task(stack))
        recall = figures.get((scalars.RECALL, series))
        return bool(recall) and recall["last"] >= drill.thresholds["recall"]

    wait_for(recovered, "the recovered recall on the monitoring task", 30, interval_s=1.0)
    figures = reported_scalars(monitoring_task(stack))
    assert {title for title, _ in figures} >= set(scalars.TITLES)
    assert figures[(scalars.RECALL, series)]["min"] < drill.thresholds["recall"]
    assert figures[(scalars.LABELLED, series)]["last"] >= CONFIG.min_labelled


def test_report_on_demand_of_the_drill_rows_is_attached_to_the_monitoring_task(
    stack: QualityStack, drill: QualityDrillResult, tmp_path: Path
) -> None:
    """`python -m asteroid.quality report --since 10m`: the rows the drill served (normal traffic) against the
    winner's training split fetched from ClearML; the dataset does not drift; the HTML is a media sample of
    the statistics controller's task."""
    done = stack.backend.run_command(
        [sys.executable, "-m", "asteroid.quality", "report", "--since", "10m", "--out", str(tmp_path)],
        extra_env=stack.env,
        timeout=300,
    )
    print(done.stdout)
    [html] = tmp_path.glob("drift_report_*.html")
    assert "drifted features (" in done.stdout and html.stat().st_size > 100_000
    share = float(done.stdout.split("drifted features (")[1].split("%")[0]) / 100
    assert share < 0.5  # Evidently calls a dataset drifted from half of its features
    events = stack.backend.call(
        "events.get_task_events", {"task": monitoring_task(stack)["id"], "event_type": "training_debug_image"}
    )["events"]
    assert ("last_10m", REPORT_TITLE) in {(event["variant"], event["metric"]) for event in events}


PHASE_REPORTS = """
import json, sys
from pathlib import Path
from asteroid.quality import report
from asteroid.serving.deploy import published_winner
phases, out, service, database = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
made = report.report_drill_phases(database, published_winner(), phases, out, service)
print(json.dumps({name: result.as_dict() for name, result in made.items()}))
"""


def test_each_drill_phase_gets_a_report_as_make_demo_makes_them(
    stack: QualityStack, drill: QualityDrillResult, tmp_path: Path
) -> None:
    """`report.report_drill_phases`, which `make demo` runs on the drift drill's phases, here on the quality
    drill's (normal traffic in each)."""
    arguments = [
        json.dumps(drill.phases),
        str(tmp_path),
        stack.state["service_id"],
        stack.env["NEO_DATABASE_URL"],
    ]
    made = stack.backend.run_command(
        [sys.executable, "-c", PHASE_REPORTS, *arguments], extra_env=stack.env, timeout=300
    ).last_json()
    assert set(made) == set(drill.phases)
    assert sum(result["live_rows"] for result in made.values()) == drill.rows_served
    assert all(Path(result["path"]).stat().st_size > 100_000 for result in made.values())
    events = stack.backend.call(
        "events.get_task_events", {"task": monitoring_task(stack)["id"], "event_type": "training_debug_image"}
    )["events"]
    assert set(drill.phases) <= {event["variant"] for event in events if event["metric"] == REPORT_TITLE}
