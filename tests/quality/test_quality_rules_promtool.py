"""The live-quality rules under `promtool test rules`, on input series produced by the exporter itself
(asteroid/quality/metrics.py reading a database that fills step by step): correct labels stay quiet, a
catalogue revision that flips hazardous objects fires `AsteroidModelRecallLow` and `AsteroidModelAccuracyLow`,
correct labels again resolve them, and too few labels never fire."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from asteroid.monitoring import rules
from asteroid.monitoring.config import MonitoringConfig
from asteroid.monitoring.reference import TrainingReference
from asteroid.quality import rules as quality_rules
from asteroid.quality import store
from asteroid.quality.metrics import QualityCollector
from asteroid.quality.rules import QualityThresholds
from tests.monitoring.conftest import tool
from tests.monitoring.test_rules_promtool import render_annotation

STEP_S = 15
CONFIG = MonitoringConfig(
    window="1m", for_="30s", interval="15s", min_labelled=100, min_labelled_hazardous=30
)
THRESHOLDS = QualityThresholds(test_accuracy=0.95, test_recall=0.9, margin=0.05)
START = 1_800_000_000.0


def exporter_series(tmp_path: Path, phases: list[tuple[int, int, int]]) -> tuple[list[dict[str, str]], int]:
    """Input series of the exporter over the phases; each phase is (steps, rows per step, flipped per step):
    every step answers `rows` asteroids (a quarter predicted hazardous) and receives their labels, of which
    `flipped` predicted-not-hazardous ones are labelled hazardous (missed by the model)."""
    engine = store.engine(f"sqlite:///{tmp_path / 'quality.db'}")
    series: dict[str, list[str]] = {}
    step = 0
    for steps, rows, flipped in phases:
        for _ in range(steps):
            now = START + step * STEP_S
            _answer_and_label(engine, step, now, rows, flipped)
            registry = CollectorRegistry()
            registry.register(QualityCollector(engine, 60.0, clock=lambda now=now: now))
            for name, value in _samples(generate_latest(registry).decode()).items():
                series.setdefault(name, ["_"] * step).append(repr(value))
            for values in series.values():
                values.extend(["_"] * (step + 1 - len(values)))
            step += 1
    return [{"series": name, "values": " ".join(values)} for name, values in series.items()], step


def _answer_and_label(engine: Any, step: int, now: float, rows: int, flipped: int) -> None:
    hazardous = rows // 4
    predictions = [
        store.Prediction(
            f"s{step}-{row}", now - 5, "asteroid/1", "m", "1", None, None, {}, 0.5, row < hazardous
        )
        for row in range(rows)
    ]
    labels = [
        store.LabelRecord(
            p.request_id, p.hazardous or row - hazardous < flipped, f"l{step}-{row}", now, "feedback"
        )
        for row, p in enumerate(predictions)
    ]
    with engine.begin() as connection:
        store.store_batch(connection, predictions, {})
        store.store_labels(connection, labels)


def _series_name(name: str, labels: dict[str, str]) -> str:
    inside = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inside}}}"


def _samples(text: str) -> dict[str, float]:
    return {
        _series_name(sample.name, sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def expected_alert(name: str, value: float) -> dict[str, Any]:
    rule = next(r for r in quality_rules.alert_rules("asteroid", 1, THRESHOLDS, CONFIG) if r["alert"] == name)
    labels = {"endpoint": "asteroid", "version": "1"}
    annotations = {key: render_annotation(text, labels, value) for key, text in rule["annotations"].items()}
    return {"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": annotations}


def run_promtool(tmp_path: Path, reference: TrainingReference, test: dict[str, Any]) -> None:
    rules_file = tmp_path / "asteroid.rules.yml"
    rules_file.write_text(rules.render(reference, CONFIG, THRESHOLDS))
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test_file = tmp_path / "quality.test.yml"
    test_file.write_text(
        rules.dump_yaml(
            {"rule_files": [rules_file.name], "evaluation_interval": f"{STEP_S}s", "tests": [test]}
        )
    )
    result = subprocess.run(
        [tool("promtool"), "test", "rules", test_file.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def at(step: int) -> str:
    return f"{step * STEP_S}s"


def test_a_catalogue_revision_fires_the_recall_and_accuracy_alerts_and_correct_labels_resolve_them(
    tmp_path: Path, reference: TrainingReference
) -> None:
    # 40 answers a step, 10 of them hazardous; the window (1 m, 5 steps of labels) holds 200 labels
    series, steps = exporter_series(tmp_path, [(8, 40, 0), (12, 40, 10), (12, 40, 0)])
    quiet = [
        {"alertname": name, "eval_time": at(7), "exp_alerts": []}
        for name in ("AsteroidModelRecallLow", "AsteroidModelAccuracyLow")
    ]
    # a full window of revised labels: recall 50 / (50 + 50), accuracy 150 / 200
    revised = [
        {
            "alertname": "AsteroidModelRecallLow",
            "eval_time": at(19),
            "exp_alerts": [expected_alert("AsteroidModelRecallLow", 0.5)],
        },
        {
            "alertname": "AsteroidModelAccuracyLow",
            "eval_time": at(19),
            "exp_alerts": [expected_alert("AsteroidModelAccuracyLow", 0.75)],
        },
    ]
    resolved = [
        {"alertname": name, "eval_time": at(steps - 1), "exp_alerts": []}
        for name in ("AsteroidModelRecallLow", "AsteroidModelAccuracyLow")
    ]
    selector = '{endpoint="asteroid", version="1"}'
    exprs = [
        {"expr": f"{quality_rules.RECALL}{selector}", "eval_time": at(7),
         "exp_samples": [{"labels": f"{quality_rules.RECALL}{selector}", "value": 1.0}]},
        {"expr": f"{quality_rules.PRECISION}{selector}", "eval_time": at(19),
         "exp_samples": [{"labels": f"{quality_rules.PRECISION}{selector}", "value": 1.0}]},
        {"expr": f"{quality_rules.COVERAGE}{selector}", "eval_time": at(19),
         "exp_samples": [{"labels": f"{quality_rules.COVERAGE}{selector}", "value": 1.0}]},
    ]  # fmt: skip
    test = {
        "interval": f"{STEP_S}s",
        "input_series": series,
        "alert_rule_test": [*quiet, *revised, *resolved],
        "promql_expr_test": exprs,
    }
    run_promtool(tmp_path, reference, test)


def test_too_few_labels_never_fire(tmp_path: Path, reference: TrainingReference) -> None:
    # 8 labels a step, 2 hazardous objects of which 2 more missed: recall 0.5 but 20 hazardous labels a window
    series, steps = exporter_series(tmp_path, [(4, 8, 0), (16, 8, 2)])
    test = {
        "interval": f"{STEP_S}s",
        "input_series": series,
        "alert_rule_test": [
            {"alertname": name, "eval_time": at(step), "exp_alerts": []}
            for name in ("AsteroidModelRecallLow", "AsteroidModelAccuracyLow")
            for step in (10, steps - 1)
        ],
    }
    run_promtool(tmp_path, reference, test)
