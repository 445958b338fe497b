"""The generated rules under `promtool check rules` and `promtool test rules`, with input series produced by
clearml-serving's own statistics classes (tests/monitoring/controller_series.py): drift fires for the shifted
features only, normal traffic stays quiet, low volume is suppressed, a return to normal resolves, and the
serving alerts fire on their own series."""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from asteroid import schema
from asteroid.monitoring import rules
from asteroid.monitoring.config import MonitoringConfig
from asteroid.monitoring.reference import TrainingReference
from asteroid.serving.contract import PROBABILITY
from tests.monitoring.conftest import tool
from tests.monitoring.controller_series import CURL_ACCEPT, PROMETHEUS_ACCEPT, ControllerSimulation

# One scrape and one rule evaluation every 15 s; a 1-minute window holds four scrape intervals.
STEP_S = 15
CONFIG = MonitoringConfig(window="1m", for_="30s", interval="15s", min_observations=300)
ROWS_PER_STEP = 150
WINDOW_STEPS = 4
SHIFTED = {"absolute_magnitude", "est_dia_km_avg", "relative_velocity_km_per_sec"}


@dataclass
class Phase:
    steps: int
    drifted: bool = False
    rows_per_step: int = ROWS_PER_STEP
    hazardous: float | None = None  # probability sent for every row; None: 0.9 for hazardous rows, else 0.1


def simulate(reference: TrainingReference, phases: list[Phase], normal: pd.DataFrame, drifted: pd.DataFrame,
             accept: str = PROMETHEUS_ACCEPT) -> ControllerSimulation:  # fmt: skip
    rng = np.random.default_rng(0)
    simulation = ControllerSimulation(reference, accept)
    simulation.step(None)  # the controller's metrics exist (all zero) before the first request
    for phase in phases:
        source = drifted if phase.drifted else normal
        for _ in range(phase.steps):
            rows = source.iloc[rng.integers(0, len(source), size=phase.rows_per_step)]
            if phase.hazardous is None:
                probabilities = np.where(rows["hazardous"] == 1, 0.9, 0.1)
            else:
                probabilities = np.full(len(rows), phase.hazardous)
            simulation.step(rows, probabilities)
    return simulation


def python_psi(simulation: ControllerSimulation, reference: TrainingReference, step: int) -> dict[str, float]:
    """PSI per feature over the window ending at `step`, computed here independently of the PromQL."""
    scores = {}
    for feature in reference.features:
        increases = []
        for label in feature.labels:
            values = simulation.bucket_values(reference.metric(feature.name, "_bucket"), label)
            increases.append(values[step] - values[step - WINDOW_STEPS])
        total = sum(increases)
        live = [max(count / total, CONFIG.epsilon) for count in increases]
        train = [max(fraction, CONFIG.epsilon) for fraction in feature.fractions]
        scores[feature.name] = sum((p - q) * math.log(p / q) for p, q in zip(live, train, strict=True))
    return scores


def render_annotation(template: str, labels: dict[str, str], value: float) -> str:
    """The few Go template forms the rules use, as Prometheus renders them."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
    text = text.replace('{{ $value | printf "%.3f" }}', f"{value:.3f}")
    return text.replace("{{ $value | humanizePercentage }}", f"{value * 100:.4g}%")


def expected_alert(rule: dict[str, Any], labels: dict[str, str], value: float) -> dict[str, Any]:
    return {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {
            key: render_annotation(text, labels, value) for key, text in rule["annotations"].items()
        },
    }


def alert_rule(reference: TrainingReference, name: str, severity: str | None = None) -> dict[str, Any]:
    return next(
        rule for rule in rules.alert_rules(reference, CONFIG)
        if rule["alert"] == name and (severity is None or rule["labels"]["severity"] == severity)
    )  # fmt: skip


def drift_alerts(reference: TrainingReference, psi: dict[str, float], features: set[str]) -> list[dict]:
    expected = []
    for feature in sorted(features):
        labels = {"endpoint": "asteroid", "version": "1", "feature": feature}
        for severity, threshold in (("warning", CONFIG.psi_warning), ("critical", CONFIG.psi_critical)):
            assert psi[feature] >= threshold, (feature, psi[feature])
            expected.append(expected_alert(alert_rule(reference, "AsteroidFeatureDrift", severity), labels,
                                           psi[feature]))  # fmt: skip
    return expected


def at(step: int) -> str:
    return f"{step * STEP_S}s"


def run_promtool(tmp_path: Path, reference: TrainingReference, tests: list[dict]) -> None:
    rules_file = tmp_path / "asteroid.rules.yml"
    rules_file.write_text(rules.render(reference, CONFIG))
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test_file = tmp_path / "asteroid.test.yml"
    test_file.write_text(rules.dump_yaml({
        "rule_files": [rules_file.name], "evaluation_interval": f"{STEP_S}s", "tests": tests,
    }))  # fmt: skip
    result = subprocess.run(
        [tool("promtool"), "test", "rules", test_file.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def series_test(simulation: ControllerSimulation, alerts: list[dict], exprs: list[dict] | None = None,
                extra_series: list[dict] | None = None) -> dict:  # fmt: skip
    return {
        "interval": f"{STEP_S}s",
        "input_series": simulation.input_series() + (extra_series or []),
        "alert_rule_test": alerts,
        "promql_expr_test": exprs or [],
    }


@pytest.mark.parametrize("accept", [PROMETHEUS_ACCEPT, CURL_ACCEPT], ids=["openmetrics", "text"])
def test_drift_fires_for_the_shifted_features_only(
    tmp_path: Path,
    reference: TrainingReference,
    normal_rows: pd.DataFrame,
    drifted_rows: pd.DataFrame,
    accept: str,
) -> None:
    """Under the names Prometheus stores (':' written as '_') and under the controller's own names."""
    simulation = simulate(reference, [Phase(8), Phase(8, drifted=True)], normal_rows, drifted_rows, accept)
    end = 16  # the last step; the window holds drifted rows only
    psi = python_psi(simulation, reference, end)
    assert {name for name, score in psi.items() if score >= CONFIG.psi_warning} == SHIFTED
    run_promtool(tmp_path, reference, [series_test(
        simulation,
        [
            {"eval_time": at(8), "alertname": "AsteroidFeatureDrift", "exp_alerts": []},
            {"eval_time": at(end), "alertname": "AsteroidFeatureDrift",
             "exp_alerts": drift_alerts(reference, psi, SHIFTED)},
        ],
        [{"expr": f'count({rules.PSI}{{feature!="{PROBABILITY}"}} >= {CONFIG.psi_warning})',
          "eval_time": at(end), "exp_samples": [{"labels": "{}", "value": len(SHIFTED)}]}],
    )])  # fmt: skip


def test_normal_traffic_stays_quiet_and_every_feature_is_scored(
    tmp_path: Path, reference: TrainingReference, normal_rows: pd.DataFrame, drifted_rows: pd.DataFrame
) -> None:
    simulation = simulate(reference, [Phase(16)], normal_rows, drifted_rows)
    assert max(python_psi(simulation, reference, 16).values()) < CONFIG.psi_warning
    quiet = [
        {"eval_time": at(step), "alertname": name, "exp_alerts": []}
        for step in (6, 11, 16) for name in ("AsteroidFeatureDrift", "AsteroidPredictionDrift")
    ]  # fmt: skip
    # every feature got a score: the live buckets' `le` labels match the training fractions' labels
    scored = {
        "expr": f'count({rules.PSI}{{feature!="{PROBABILITY}"}} < {CONFIG.psi_warning})',
        "eval_time": at(16),
        "exp_samples": [{"labels": "{}", "value": len(reference.features)}],
    }
    run_promtool(tmp_path, reference, [series_test(simulation, quiet, [scored])])


def test_low_volume_is_suppressed(
    tmp_path: Path, reference: TrainingReference, normal_rows: pd.DataFrame, drifted_rows: pd.DataFrame
) -> None:
    few = CONFIG.min_observations // WINDOW_STEPS - 20  # the window holds fewer than min_observations
    simulation = simulate(reference, [Phase(16, drifted=True, rows_per_step=few)], normal_rows, drifted_rows)
    drifting = {"expr": f"count({rules.PSI} >= {CONFIG.psi_critical})", "eval_time": at(16),
                "exp_samples": [{"labels": "{}", "value": len(SHIFTED)}]}  # fmt: skip
    run_promtool(tmp_path, reference, [series_test(
        simulation, [{"eval_time": at(16), "alertname": "AsteroidFeatureDrift", "exp_alerts": []}], [drifting]
    )])  # fmt: skip


def test_return_to_normal_resolves(
    tmp_path: Path, reference: TrainingReference, normal_rows: pd.DataFrame, drifted_rows: pd.DataFrame
) -> None:
    simulation = simulate(reference, [Phase(8, drifted=True), Phase(8)], normal_rows, drifted_rows)
    psi = python_psi(simulation, reference, 8)
    run_promtool(tmp_path, reference, [series_test(simulation, [
        {"eval_time": at(8), "alertname": "AsteroidFeatureDrift",
         "exp_alerts": drift_alerts(reference, psi, SHIFTED)},
        {"eval_time": at(16), "alertname": "AsteroidFeatureDrift", "exp_alerts": []},
    ])])  # fmt: skip


def test_prediction_drift_fires_against_the_training_base_rate(
    tmp_path: Path, reference: TrainingReference, normal_rows: pd.DataFrame, drifted_rows: pd.DataFrame
) -> None:
    simulation = simulate(reference, [Phase(4), Phase(8, hazardous=0.97)], normal_rows, drifted_rows)
    labels = {"endpoint": "asteroid", "version": "1"}
    alert = expected_alert(
        alert_rule(reference, "AsteroidPredictionDrift"), labels, 1.0 - reference.base_rate
    )
    run_promtool(tmp_path, reference, [series_test(simulation, [
        {"eval_time": at(4), "alertname": "AsteroidPredictionDrift", "exp_alerts": []},
        {"eval_time": at(12), "alertname": "AsteroidPredictionDrift", "exp_alerts": [alert]},
    ])])  # fmt: skip


INFERENCE = 'job="clearml-serving-inference", instance="127.0.0.1:8080"'


def test_serving_alerts_fire_on_their_own_series(
    tmp_path: Path, reference: TrainingReference, normal_rows: pd.DataFrame, drifted_rows: pd.DataFrame
) -> None:
    simulation = simulate(reference, [Phase(12)], normal_rows, drifted_rows)
    steps = len(simulation.values[next(iter(simulation.values))]) - 1
    requests = f'clearml_serving_requests_total{{{INFERENCE}, endpoint="asteroid"'
    inference_series = [
        {"series": f'{requests}, code="200"}}', "values": f"0+30x{steps}"},
        {"series": f'{requests}, code="422"}}', "values": f"0x6 0+30x{steps - 6}"},
        *({"series": f'clearml_serving_request_duration_seconds_bucket{{{INFERENCE}, endpoint="asteroid", '
                     f'le="{le}"}}', "values": "0x5 0+30x6" if le in ("2.5", "+Inf") else f"0x{steps}"}
          for le in ("0.1", "1.0", "2.5", "+Inf")),
        {"series": 'up{job="clearml-serving-statistics", instance="127.0.0.1:9999"}', "values": "1x6 0x6"},
    ]  # fmt: skip
    errors = expected_alert(alert_rule(reference, "AsteroidServingErrors"), {"endpoint": "asteroid"}, 0.5)
    down_labels = {"job": "clearml-serving-statistics", "instance": "127.0.0.1:9999"}
    down = expected_alert(alert_rule(reference, "AsteroidStatisticsDown"), down_labels, 0.0)
    latency_rule = alert_rule(reference, "AsteroidLatencyHigh")
    latency = {"exp_labels": latency_rule["labels"], "exp_annotations": {
        key: text.replace("{{ $value | humanizeDuration }}", "2.485s")
        for key, text in latency_rule["annotations"].items()}}  # fmt: skip
    run_promtool(tmp_path, reference, [series_test(simulation, [
        {"eval_time": at(5), "alertname": "AsteroidServingErrors", "exp_alerts": []},
        {"eval_time": at(12), "alertname": "AsteroidServingErrors", "exp_alerts": [errors]},
        {"eval_time": at(5), "alertname": "AsteroidLatencyHigh", "exp_alerts": []},
        {"eval_time": at(10), "alertname": "AsteroidLatencyHigh", "exp_alerts": [latency]},
        {"eval_time": at(5), "alertname": "AsteroidStatisticsDown", "exp_alerts": []},
        {"eval_time": at(12), "alertname": "AsteroidStatisticsDown", "exp_alerts": [down]},
        {"eval_time": at(12), "alertname": "AsteroidNoTraffic", "exp_alerts": []},
    ], extra_series=inference_series)])  # fmt: skip


def test_no_traffic_fires_without_successful_requests(tmp_path: Path, reference: TrainingReference) -> None:
    simulation = ControllerSimulation(reference)
    for _ in range(8):
        simulation.step(None)
    rule = alert_rule(reference, "AsteroidNoTraffic")
    run_promtool(tmp_path, reference, [series_test(simulation, [
        {"eval_time": at(1), "alertname": "AsteroidNoTraffic", "exp_alerts": []},
        {"eval_time": at(7), "alertname": "AsteroidNoTraffic", "exp_alerts": [expected_alert(rule, {}, 0.0)]},
    ])])  # fmt: skip


@pytest.mark.parametrize("profile", ["production", "short"])
def test_the_rules_of_every_profile_pass_promtool_check(tmp_path: Path, reference: TrainingReference,
                                                         profile: str) -> None:  # fmt: skip
    from asteroid.monitoring.config import load

    path = tmp_path / "rules.yml"
    path.write_text(rules.render(reference, load(profile)))
    check = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_training_fractions_count_values_as_the_statistics_controller_does(normal_rows: pd.DataFrame) -> None:
    from clearml_serving.statistics.metrics import ScalarHistogram
    from prometheus_client import CollectorRegistry

    from asteroid import feature_stats
    from asteroid.serving import contract

    values = normal_rows["absolute_magnitude"]
    edges = contract.served_edges(
        feature_stats.bucket_edges(normal_rows[["absolute_magnitude"]])["absolute_magnitude"]
    )
    histogram = ScalarHistogram("h", "h", buckets=edges, registry=CollectorRegistry())
    histogram.observe(values.tolist())
    counts = [sample.value for sample in histogram.collect()[0].samples if sample.name == "h_bucket"]
    assert feature_stats.bucket_fractions(values, edges) == [count / len(values) for count in counts]


@pytest.mark.parametrize(
    "shift", ["absolute_magnitude", "relative_velocity_km_per_sec", "miss_dist_astronomical"]
)
def test_each_shift_changes_exactly_the_features_it_names(sample_frame: pd.DataFrame, shift: str) -> None:
    from asteroid import features
    from asteroid.serving import traffic

    normal = features.build_features(sample_frame)[0]
    shifted = features.build_features(traffic.drifted(sample_frame, (shift,)))[0]
    changed = [name for name in normal.columns if not np.allclose(normal[name], shifted[name])]
    # The computed in_cneos_cell follows H too, but too little to drift (traffic.AFFECTED_FEATURES).
    measured = [name for name in changed if name not in schema.COMPUTED_FEATURES]
    assert measured == traffic.affected_features((shift,))
