"""The statistics controller restarted by the supervisor starts its counters from zero: the drift and serving
alerts, which read counters through increase() and rate(), neither fire nor resolve because of that reset
(promtool, with the controller's own metric classes producing the series)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from asteroid.monitoring.reference import TrainingReference
from tests.monitoring.controller_series import ControllerSimulation
from tests.monitoring.test_rules_promtool import (
    INFERENCE,
    ROWS_PER_STEP,
    SHIFTED,
    at,
    run_promtool,
    series_test,
)

RESTART_STEP = 8  # the controller restarts after this step's scrape
STEPS = 16


def restart(simulation: ControllerSimulation, reference: TrainingReference) -> None:
    """A new controller process: the same metrics, every counter at zero."""
    fresh = ControllerSimulation(reference)
    simulation.registry, simulation.histograms = fresh.registry, fresh.histograms


def run_with_restart(reference: TrainingReference, rows: pd.DataFrame) -> ControllerSimulation:
    rng = np.random.default_rng(1)
    simulation = ControllerSimulation(reference)
    simulation.step(None)
    for step in range(1, STEPS + 1):
        if step == RESTART_STEP + 1:
            restart(simulation, reference)
        sample = rows.iloc[rng.integers(0, len(rows), size=ROWS_PER_STEP)]
        simulation.step(sample, np.where(sample["hazardous"] == 1, 0.9, 0.1))
    return simulation


def inference_series_with_reset() -> list[dict[str, str]]:
    """The inference app's request counters, restarted at the same step."""
    requests = f'clearml_serving_requests_total{{{INFERENCE}, endpoint="asteroid"'
    after = STEPS - RESTART_STEP - 1
    return [
        {"series": f'{requests}, code="200"}}', "values": f"0+30x{RESTART_STEP} 0+30x{after}"},
        {"series": f'{requests}, code="422"}}', "values": f"0x{RESTART_STEP} 0x{after}"},
    ]


def firing(alertname: str, step: int, count: int) -> dict:
    return {
        "expr": f'count(ALERTS{{alertname="{alertname}", alertstate="firing", severity="warning"}}) '
        "or vector(0)",
        "eval_time": at(step),
        "exp_samples": [{"labels": "{}", "value": count}],
    }


def test_normal_traffic_across_a_restart_raises_nothing(
    tmp_path: Path, reference: TrainingReference, normal_rows: pd.DataFrame
) -> None:
    simulation = run_with_restart(reference, normal_rows)
    quiet = [
        {"eval_time": at(step), "alertname": name, "exp_alerts": []}
        for step in range(RESTART_STEP - 1, STEPS + 1)
        for name in ("AsteroidFeatureDrift", "AsteroidPredictionDrift", "AsteroidNoTraffic",
                     "AsteroidServingErrors")
    ]  # fmt: skip
    run_promtool(
        tmp_path, reference, [series_test(simulation, quiet, extra_series=inference_series_with_reset())]
    )


def test_drift_keeps_firing_across_a_restart(
    tmp_path: Path, reference: TrainingReference, drifted_rows: pd.DataFrame
) -> None:
    simulation = run_with_restart(reference, drifted_rows)
    still = [firing("AsteroidFeatureDrift", step, len(SHIFTED)) for step in range(RESTART_STEP, STEPS + 1)]
    run_promtool(tmp_path, reference, [series_test(simulation, [], still)])
