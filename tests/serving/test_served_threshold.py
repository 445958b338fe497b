"""A model trained with `threshold` 0.3 is served at 0.3 (the hook, through clearml-serving's real engine,
answers `hazardous` from 0.3 on) and monitored at 0.3 (the generated rules count the rows above 0.3 as
predicted hazardous, under promtool), both read from the release contract training recorded.

The model is a real one, trained as the pipeline trains, on sample data whose labels are a coin flip (40 %
hazardous) for the CNEOS cell's faintest asteroids: on them it answers probabilities between 0.3 and 0.5,
where a model served or monitored at the default 0.5 would disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from asteroid import features, schema, split_files, splitting, train
from asteroid.monitoring import rules
from asteroid.monitoring.reference import TrainingReference, from_contract
from asteroid.serving import contract
from tests.monitoring.controller_series import ControllerSimulation
from tests.monitoring.test_rules_promtool import STEP_S, at, run_promtool
from tests.serving.conftest import hook_engine, serve

THRESHOLD = 0.3
ROWS_PER_STEP = 50  # per scrape step: half between the thresholds, half below both


@dataclass(frozen=True)
class TrainedAt:
    model_file: Path
    spec: dict[str, Any]  # the feature_spec the training task attaches
    rows: pd.DataFrame  # model features of the sample rows
    records: list[dict[str, Any]]  # the same rows as a client posts them
    probabilities: np.ndarray  # the offline model's, per row

    def indices(self, low: float, high: float) -> np.ndarray:
        return np.flatnonzero((self.probabilities >= low) & (self.probabilities < high))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame,
            sample_records: list[dict]) -> TrainedAt:  # fmt: skip
    frame, labels, groups = features.build_features(sample_frame)
    faint_in_cell = (frame[schema.CNEOS_CELL] == 1) & (frame["absolute_magnitude"] > 21.0)
    coin = np.random.default_rng(0).random(int(groups.max()) + 1) < 0.4  # one flip per asteroid
    labels = labels.where(~faint_in_cell, coin[groups.to_numpy()].astype("int64"))
    split = splitting.group_split(frame, labels, groups, seed=3)
    spec = split_files.load_feature_spec(split_files.save_split(split, tmp_path_factory.mktemp("split")))
    result = train.train_classifier(split, seed=0)
    # what the training step does with its `threshold` parameter
    contract.stamp_model(result.booster, THRESHOLD)
    spec = contract.spec_with_threshold(spec, THRESHOLD)
    model_file = train.save_model(result.booster, tmp_path_factory.mktemp("model") / "asteroid_xgb.json")
    probabilities = train.predict_proba(result.booster, frame)
    return TrainedAt(model_file, spec, frame, sample_records, probabilities)


@pytest.fixture(scope="module")
def between(trained: TrainedAt) -> np.ndarray:
    rows = trained.indices(THRESHOLD, schema.HAZARD_THRESHOLD)
    assert len(rows) >= ROWS_PER_STEP, "the model has too few probabilities between the two thresholds"
    return rows


@pytest.fixture(scope="module")
def below(trained: TrainedAt) -> np.ndarray:
    return trained.indices(0.0, THRESHOLD)


def test_the_contract_reads_the_threshold_training_recorded(trained: TrainedAt) -> None:
    assert json.loads(json.dumps(trained.spec))[contract.THRESHOLD_ATTRIBUTE] == THRESHOLD
    assert contract.from_feature_spec(trained.spec).threshold == THRESHOLD
    assert contract.threshold_of_model(train.load_model(trained.model_file)) == THRESHOLD


def test_the_hook_answers_hazardous_from_the_trained_threshold_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: TrainedAt, between: np.ndarray,
    below: np.ndarray,
) -> None:  # fmt: skip
    engine = hook_engine(tmp_path, trained.model_file, monkeypatch)
    rows = [*between[:ROWS_PER_STEP], *below[:ROWS_PER_STEP]]
    reply, _ = serve(engine, {"rows": [trained.records[i] for i in rows]})
    answers = reply["predictions"]
    np.testing.assert_allclose([a[contract.PROBABILITY] for a in answers], trained.probabilities[rows],
                               atol=1e-7)  # fmt: skip
    assert [a["hazardous"] for a in answers] == [True] * ROWS_PER_STEP + [False] * ROWS_PER_STEP


def hazardous_ratio_test(reference: TrainingReference, trained: TrainedAt, rows: np.ndarray,
                         expected: float) -> dict[str, Any]:  # fmt: skip
    """promtool case: the same rows every step; the recorded predicted-hazardous ratio of the window."""
    simulation = ControllerSimulation(reference)
    simulation.step(None)
    for _ in range(8):
        simulation.step(trained.rows.iloc[rows], trained.probabilities[rows])
    return {
        "interval": f"{STEP_S}s",
        "input_series": simulation.input_series(),
        "promql_expr_test": [{
            "expr": f"{rules.HAZARDOUS} == bool {rules.promql_number(expected)}",
            "eval_time": at(8),
            "exp_samples": [{"labels": '{endpoint="asteroid", version="1"}', "value": 1}],
        }],
    }  # fmt: skip


def test_the_rules_count_the_predicted_hazardous_share_at_the_trained_threshold(
    tmp_path: Path, trained: TrainedAt, between: np.ndarray, below: np.ndarray
) -> None:
    reference = from_contract(contract.from_feature_spec(trained.spec), "asteroid", 1)
    assert reference.threshold == THRESHOLD
    assert reference.hazardous_labels[0] == "0.4"  # the buckets above the 0.3 edge
    rows = np.array([*between[: ROWS_PER_STEP // 2], *below[: ROWS_PER_STEP // 2]])
    # half the rows are answered hazardous at 0.3, and so counted by the rules of this version
    run_promtool(tmp_path, reference, [hazardous_ratio_test(reference, trained, rows, 0.5)])


def test_rules_at_the_default_threshold_would_count_none_of_them(
    tmp_path: Path, trained: TrainedAt, between: np.ndarray, below: np.ndarray
) -> None:
    """What the fixed 0.5 of the old rules saw on the same traffic: the test above can fail."""
    spec = {key: value for key, value in trained.spec.items() if key != contract.THRESHOLD_ATTRIBUTE}
    reference = from_contract(contract.from_feature_spec(spec), "asteroid", 1)
    assert reference.threshold == schema.HAZARD_THRESHOLD
    rows = np.array([*between[: ROWS_PER_STEP // 2], *below[: ROWS_PER_STEP // 2]])
    run_promtool(tmp_path, reference, [hazardous_ratio_test(reference, trained, rows, 0.0)])
