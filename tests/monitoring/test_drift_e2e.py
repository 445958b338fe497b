"""End to end with a real Prometheus and Alertmanager: pipeline on sample data, then `serve.py` (the rollout
writes the drift rules of the winner's training data; the local stack runs Prometheus, Alertmanager and the
webhook receiver on free ports); normal traffic from `inference.py` raises no drift alert; `inference.py
--drift` raises AsteroidFeatureDrift for the shifted features only, delivered to the webhook; normal traffic
resolves it. Short windows (monitoring profile "short"); delivery times are printed, not asserted."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests

import global_config
from asteroid import schema
from asteroid.monitoring import config as monitoring_config
from asteroid.monitoring import dashboard, report, rules
from asteroid.monitoring.drill import Drill, DrillResult, DrillSettings
from asteroid.monitoring.prometheus_api import Prometheus
from asteroid.monitoring.publish import RULES_ARTIFACT
from asteroid.monitoring.reference import from_contract
from asteroid.quality import metrics as quality_metrics
from asteroid.quality import rules as quality_rules
from asteroid.serving import contract
from serving_local import monitoring as serving_local_monitoring
from tests.backend.backend_harness import BackendHarness
from tests.backend.conftest import backend  # noqa: F401
from tests.monitoring.conftest import tool
from tests.monitoring.controller_series import (
    CURL_ACCEPT,
    PROMETHEUS_ACCEPT,
    ControllerSimulation,
    page_samples,
)
from tests.monitoring.monitored_stack import monitored_stack_env, stack_dir, stop_stack

ROOT = global_config.ROOT
pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHIFTED = {"absolute_magnitude", "est_dia_km_avg", "relative_velocity_km_per_sec"}


@dataclass
class MonitoredStack:
    backend: BackendHarness
    env: dict[str, str]
    state: dict[str, Any]
    summary: dict[str, Any]
    serve_output: str

    @property
    def prometheus(self) -> Prometheus:
        return Prometheus(self.state["prometheus_url"])


@pytest.fixture(scope="module")
def stack(backend: BackendHarness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoredStack]:  # noqa: F811
    tool("prometheus")
    tool("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("monitoring")
    env = monitored_stack_env(root)
    backend.run(ROOT / "pipeline.py", "--seeds", "1", extra_env=env, timeout=600)
    try:
        served = backend.run(ROOT / "serve.py", extra_env=env, timeout=600)
        state = json.loads((stack_dir(root) / "state.json").read_text())
        summary = json.loads((root / "runs" / "latest" / "summary.json").read_text())
        yield MonitoredStack(backend, env, state, summary, served.stdout)
    finally:
        stop_stack(root, backend.env)


@pytest.fixture(scope="module")
def drill(stack: MonitoredStack) -> DrillResult:
    settings = DrillSettings(deadline_s=240)
    config = monitoring_config.PROFILES["short"]
    env = {**stack.backend.env, **stack.env}
    result = Drill(
        stack.state["prometheus_url"], Path(stack.state["alerts_file"]), config, env, settings
    ).run()
    print(json.dumps(result.delivery_seconds(), indent=2))
    return result


def test_the_rollout_wrote_the_rules_and_attached_them_to_the_training_task(stack: MonitoredStack) -> None:
    rules_file = Path(stack.state["rules_dir"]) / "asteroid.yml"
    assert "asteroid_1[:_]absolute_magnitude_bucket" in rules_file.read_text()
    assert "AsteroidFeatureDrift" in stack.prometheus.rule_names()
    resources = Path(stack.state["rules_dir"]) / f"{rules.RESOURCES_RULES}.yml"
    assert resources.read_text() == rules.render_resources(monitoring_config.PROFILES["short"])
    assert {rules.CPU_ALERT, rules.MEMORY_ALERT} <= stack.prometheus.rule_names()
    task_id = stack.summary["winner"]["task_id"]
    task = stack.backend.call("tasks.get_by_id", {"task": task_id})["task"]
    assert RULES_ARTIFACT in [artifact["key"] for artifact in task["execution"]["artifacts"]]


def test_normal_traffic_raises_no_drift_alert(drill: DrillResult) -> None:
    assert drill.normal_drift_alerts == []
    # every feature was scored: live and training buckets match
    assert len(drill.normal_max_psi) == len(schema.FEATURES)


def test_drifted_traffic_fires_for_the_shifted_features_only_and_it_is_delivered(drill: DrillResult) -> None:
    assert drill.fired_features == SHIFTED
    assert set(drill.firing_seen_at) == SHIFTED  # Prometheus showed them firing
    firing = [alert for record in drill.notifications for alert in record["alerts"]
              if alert["labels"]["alertname"] == "AsteroidFeatureDrift"]  # fmt: skip
    assert {alert["labels"]["feature"] for alert in firing} == SHIFTED
    assert all("PSI" in alert["annotations"]["summary"] for alert in firing)


def test_stopping_the_drift_resolves_every_alert(drill: DrillResult) -> None:
    assert set(drill.resolved_delivered_at) == SHIFTED


@pytest.mark.parametrize("accept", [PROMETHEUS_ACCEPT, CURL_ACCEPT], ids=["openmetrics", "text"])
def test_the_controllers_real_metrics_are_shaped_like_the_promtool_input(
    stack: MonitoredStack, accept: str
) -> None:
    """The promtool cases feed series made by clearml-serving's ScalarHistogram; the running controller's page
    has the same names and `le` labels for this version's training reference, in both formats."""
    artifacts = stack.backend.call("tasks.get_by_id", {"task": stack.summary["winner"]["task_id"]})["task"][
        "execution"
    ]["artifacts"]
    uri = next(artifact["uri"] for artifact in artifacts if artifact["key"] == "feature_spec")
    relative = unquote(uri[len(stack.backend.files_url) :]).lstrip("/")
    spec = json.loads((stack.backend.files_root / relative).read_text())
    reference = from_contract(contract.from_feature_spec(spec), "asteroid", 1)
    simulated = {(name, labels.get("le")) for name, labels, _ in page_samples(
        ControllerSimulation(reference, accept).scrape_page())}  # fmt: skip
    page = requests.get(stack.state["statistics_url"], headers={"Accept": accept}, timeout=10).text
    real = {
        (name, labels.get("le"))
        for name, labels, _ in page_samples(page)
        if re.match(r"asteroid_1[:_](?!_)", name)
    }
    assert real == simulated


def test_request_latency_and_rates_come_from_the_inference_metrics(
    stack: MonitoredStack, drill: DrillResult
) -> None:
    p99 = stack.prometheus.query(
        "histogram_quantile(0.99, sum by (le) (rate(clearml_serving_request_duration_seconds_bucket[1m])))"
    )
    assert p99 and float(p99[0]["value"][1]) > 0


def test_every_process_of_the_stack_has_its_cpu_and_memory_in_prometheus(
    stack: MonitoredStack, drill: DrillResult
) -> None:
    """Each part of the stack (the inference app's workers each by pid) and the supervisor; the figures are
    printed (docs/notes/monitoring.md quotes them)."""
    resident = stack.prometheus.query(f"max_over_time(({rules.process_memory()})[5m:])")  # subquery
    cpu = stack.prometheus.query(rules.process_cpu("1m"))
    parts = {row["metric"].get("part") for row in resident}
    assert parts >= {*stack.state["pids"], "supervisor"}, parts
    # uvicorn runs one process, or a leader, its workers and multiprocessing's resource tracker
    workers = int(stack.state["workers"])
    inference = [row for row in resident if row["metric"].get("part") == "inference"]
    assert len(inference) >= (1 if workers == 1 else workers + 1), inference
    assert {row["metric"].get("part") for row in cpu} == parts
    for row in sorted(
        resident, key=lambda row: (row["metric"].get("part", ""), row["metric"].get("pid", ""))
    ):
        print(f"{row['metric'].get('part')} pid {row['metric'].get('pid')}: "
              f"max resident {float(row['value'][1]) / 1e6:.0f} MB")  # fmt: skip
    for row in cpu:
        print(
            f"{row['metric'].get('part')} pid {row['metric'].get('pid')}: {float(row['value'][1]):.3f} cores"
        )


def reads_live_quality(expr: str) -> bool:
    """Whether an expression reads the quality consumer's series (its metrics or its recording rules)."""
    names = [*quality_metrics.EXPORTED, *quality_rules.RECORDED]
    return any(name in expr for name in names)


def reads_the_node_exporter(expr: str) -> bool:
    """Whether an expression reads the host's node exporter, a part of the stack only where installed."""
    return "node_" in expr and serving_local_monitoring.node_exporter_binary() is None


def test_every_dashboard_and_grafana_rule_expression_runs_on_the_real_prometheus(
    stack: MonitoredStack, drill: DrillResult
) -> None:
    """Grafana cannot be installed here: each PromQL expression of the dashboard and of the Grafana alert
    rules is evaluated over the drill's time range; it must parse and run, and return data (the traffic
    created every series they read; one bad request creates the error series). The live-quality panels
    read the quality consumer's exporter, which this drill does not run (it sends no labels): they must
    parse and run here, and their values are checked on the exporter's own output under promtool
    (tests/quality/test_quality_rules_promtool.py)."""
    bad = requests.post(
        f"{stack.state['serve_url']}/asteroid", json={"rows": [{"colour": "red"}]}, timeout=30
    )
    assert bad.status_code == 422
    # rate() needs two samples of the new 422 series in its range: wait until the panel's query has them
    errors = 'sum by (code) (rate(clearml_serving_requests_total{code=~"4..|5.."}[1m]))'
    poll_until(lambda: bool(stack.prometheus.query(errors)), "the 422 in Prometheus", 60)
    # a range query evaluates at start + k * step: align start so that `end` (where the 422 was seen) is one
    step = 2
    end = time.time()
    start = end - math.ceil((end - drill.started_at) / step) * step
    empty = []
    for expr in dashboard.expressions(dashboard.generated_files()):
        concrete = expr.replace(dashboard.RATE, "1m")
        answered = stack.prometheus.query_range(concrete, start, end, step)  # raises on a PromQL error
        if not answered and not reads_live_quality(expr) and not reads_the_node_exporter(expr):
            empty.append(expr)
    assert empty == [], "expressions without data"


def test_the_drift_score_picture_is_drawn_from_the_drill(
    stack: MonitoredStack, drill: DrillResult, tmp_path: Path
) -> None:
    path = report.plot_scores(
        stack.prometheus, drill, monitoring_config.PROFILES["short"], tmp_path / "drift_scores.png"
    )
    assert path.stat().st_size > 20_000
    print(f"drift score picture: {path}")


def poll_until(condition: Callable[[], bool], what: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {deadline_s} s"
        time.sleep(0.5)
