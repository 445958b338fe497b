"""Fault injection for the drills: a model trained on shuffled labels is refused by the gate; a model carrying
a serving fault passes the offline scoring untouched but misbehaves in the hook, and the canary analysis of
what the hook did catches it."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from asteroid import features, gate, splitting, train
from asteroid.rollout import faults
from asteroid.rollout.analysis import VersionWindow, analyse
from asteroid.rollout.config import DRILL
from asteroid.serving import contract
from tests.serving.conftest import hook_engine, sample_records, serve, trained_model  # noqa: F401


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", faults.Faults()),
        ("shuffled_labels", faults.Faults(shuffled_labels=True)),
        ("serving:error_rate=0.3", faults.Faults(serving={"error_rate": 0.3})),
        ("serving:latency_s=0.8,hazardous_rate=1",
         faults.Faults(serving={"latency_s": 0.8, "hazardous_rate": 1.0})),
    ],
)  # fmt: skip
def test_fault_specs_parse(spec: str, expected: faults.Faults) -> None:
    assert faults.parse(spec) == expected


BAD_SPECS = [("labels", "unknown fault"), ("serving:speed=2", "speed"),
             ("serving:error_rate=1.5", "error_rate must be in")]  # fmt: skip


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_fault_specs_are_refused_with_their_name(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        faults.parse(spec)


def test_a_model_trained_on_shuffled_labels_is_refused_by_the_gate(sample_frame: pd.DataFrame) -> None:
    split = splitting.group_split(*features.build_features(sample_frame), seed=3)
    bad_split = faults.with_shuffled_training_labels(split)
    assert bad_split.train.labels.sum() == split.train.labels.sum()  # the same labels, shuffled
    assert not bad_split.train.labels.equals(split.train.labels) and bad_split.test is split.test
    champion = train.train_classifier(split, seed=0).booster
    shuffled = train.train_classifier(bad_split, seed=0).booster
    rows, truth = split.test.features, split.test.labels.to_numpy()
    verdict = gate.judge(truth, train.predict(shuffled, rows), train.predict(champion, rows))
    assert not verdict.passed, verdict.reasons
    assert verdict.challenger.recall < verdict.champion.recall
    assert verdict.p_value < gate.DEFAULT_CONFIG.alpha and verdict.champion_only > verdict.challenger_only


def faulty_model(source: Path, folder: Path, spec: str) -> Path:
    booster = train.load_model(source)
    faults.stamp(booster, spec)
    assert booster.attr(contract.FAULT_ATTRIBUTE) == faults.parse(spec).serving_attribute()
    return train.save_model(booster, folder / "faulty.json")


def canary_windows(
    champion: Any, challenger: Any, records: list[dict], weight: float
) -> tuple[VersionWindow, ...]:
    """Send each record through the route: to the challenger with probability `weight`; what each version's
    series would record (requests, 5xx, p99, rows answered and answered hazardous)."""
    draw = np.random.default_rng(7)
    seen: dict[str, dict[str, Any]] = {name: {"requests": 0, "errors": 0, "hazardous": 0, "latency": []}
                                       for name in ("champion", "challenger")}  # fmt: skip
    for record in records:
        name = "challenger" if draw.random() < weight else "champion"
        engine, counts = (challenger if name == "challenger" else champion), seen[name]
        began = time.perf_counter()
        counts["requests"] += 1
        try:
            reply, _ = serve(engine, record)
            counts["hazardous"] += bool(reply["hazardous"])
        except RuntimeError:  # clearml-serving answers any other exception than ValueError with a 500
            counts["errors"] += 1
        counts["latency"].append(time.perf_counter() - began)
    return tuple(
        VersionWindow(requests=c["requests"], errors=c["errors"],
                      latency_p99_s=float(np.quantile(c["latency"], 0.99)),
                      answered_rows=c["requests"] - c["errors"], hazardous_rows=c["hazardous"])
        for c in (seen["champion"], seen["challenger"])
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "failed"),
    [("serving:error_rate=0.3", "error_rate"), ("serving:hazardous_rate=0.5", "hazardous_rate"),
     ("serving:latency_s=0.6", "latency_p99")],
)  # fmt: skip
def test_a_served_fault_is_caught_by_the_canary_analysis(
    tmp_path: Path, trained_model: Path, sample_records: list[dict], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    spec: str, failed: str,
) -> None:  # fmt: skip
    champion = hook_engine(tmp_path / "a", trained_model, monkeypatch)
    challenger = hook_engine(tmp_path / "b", faulty_model(trained_model, tmp_path, spec), monkeypatch)
    # the latency fault sleeps in the request: fewer requests, and a canary weight of 10 % otherwise
    slow = failed == "latency_p99"
    records, weight = (sample_records[:24], 0.5) if slow else (sample_records[:400], 0.1)
    champion_window, challenger_window = canary_windows(champion, challenger, records, weight)
    config = replace(DRILL, min_requests=5, min_answered_rows=5) if slow else DRILL
    result = analyse(champion_window, challenger_window, config)
    assert result.conclusive and result.failed_checks == [failed], result.describe()
    healthy = analyse(champion_window, champion_window, config)
    assert healthy.passed, healthy.describe()
