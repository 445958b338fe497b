"""The champion/challenger gate on ClearML: the rows, both models' answers, the verdict recorded.

Rows: the observations in the SQL database whose close approach is after the challenger's training cut-off
(the `query_date` its pipeline ingested up to), none of which either model trained on when the champion is
older, plus every prediction of the live-quality store that received a feedback label (asteroid/quality/).
Both models answer every row at their own served threshold; `asteroid.gate.judge` decides.

The verdict is recorded on the challenger: its training task gets the tag and the table
(`Logger.report_table`, title `gate.TABLE_TITLE`), its model the tag and the verdict's figures as metadata
(the web view's model page lists both; its serving page shows each served model's tags). A refused challenger
stays published, tagged `gate_refused`, and never reaches the canary route.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from asteroid import database, features, gate, schema, train
from asteroid.quality import store
from asteroid.serving import contract

QUERY_DATE_PARAMETER = "query_date"


@dataclass(frozen=True)
class GateRows:
    features: pd.DataFrame
    labels: np.ndarray
    observations: int  # rows newer than the cut-off
    feedback: int  # labelled predictions


def observations_after(database_url: str, after_date: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and labels of the observations with a close approach after `after_date` (None: none)."""
    if after_date is None:
        return pd.DataFrame(columns=list(schema.FEATURES)), np.zeros(0, dtype=bool)
    after_date = database.validate_query_date(after_date)
    newer = [
        frame[frame[schema.DATE_COLUMN] > after_date] for frame in database.iter_observations(database_url)
    ]
    frame = (
        pd.concat([part for part in newer if len(part)], ignore_index=True) if any(map(len, newer)) else None
    )
    if frame is None:
        return pd.DataFrame(columns=list(schema.FEATURES)), np.zeros(0, dtype=bool)
    built, labels, _ = features.build_features(frame)
    return built, labels.to_numpy(dtype=bool)


def feedback_rows(database_url: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and labels of the stored predictions that received a label."""
    request_id = contract.REQUEST_ID
    statement = sa.select(store.PREDICTIONS.c.features, store.LABELS.c.hazardous).join(
        store.LABELS, store.PREDICTIONS.c[request_id] == store.LABELS.c[request_id]
    )
    with store.engine(database_url).connect() as connection:
        rows = connection.execute(statement).all()
    built = pd.DataFrame([json.loads(row[0]) for row in rows], columns=list(schema.FEATURES))
    return built.astype("float64"), np.array([bool(row[1]) for row in rows], dtype=bool)


def gate_rows(database_url: str, after_date: str | None) -> GateRows:
    newer, newer_labels = observations_after(database_url, after_date)
    labelled, feedback_labels = feedback_rows(database_url)
    parts = [part[list(schema.FEATURES)].astype("float64") for part in (newer, labelled) if len(part)]
    combined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(schema.FEATURES))
    return GateRows(combined, np.concatenate([newer_labels, feedback_labels]), len(newer), len(labelled))


def answers(booster: Any, rows: pd.DataFrame) -> np.ndarray:
    """The model's 0/1 answers as served: hazardous at or above the threshold recorded in the model."""
    if rows.empty:
        return np.zeros(0, dtype=bool)
    return train.predict_proba(booster, rows) >= contract.threshold_of_model(booster)


def load_booster(model: Any) -> Any:
    return train.load_model(model.get_local_copy(raise_on_error=True))


def training_cutoff(model: Any) -> str | None:
    """The `query_date` of the pipeline that trained `model` (its training task's parent), None if unknown."""
    from clearml import Task

    training = Task.get_task(task_id=model.task)
    for task in (training, Task.get_task(task_id=training.parent) if training.parent else None):
        if task is None:
            continue
        for name, value in task.get_parameters().items():
            if name.rsplit("/", 1)[-1] == QUERY_DATE_PARAMETER and value:
                return str(value)
    return None


def run_gate(
    challenger: Any, champion: Any | None, database_url: str, after_date: str | None = None,
    config: gate.GateConfig = gate.DEFAULT_CONFIG,
) -> gate.Verdict:  # fmt: skip
    """Judge `challenger` (a clearml Model) against `champion` (None: none served); record the verdict."""
    cutoff = after_date or training_cutoff(challenger)
    rows = gate_rows(database_url, cutoff)
    print(
        f"gate rows: {rows.observations} observations after {cutoff or '(no cut-off known)'} and "
        f"{rows.feedback} labelled predictions"
    )
    challenger_answers = answers(load_booster(challenger), rows.features)
    champion_answers = None if champion is None else answers(load_booster(champion), rows.features)
    verdict = gate.judge(rows.labels, challenger_answers, champion_answers, config)
    record(verdict, challenger, champion)
    print(verdict.summary())
    return verdict


def record(verdict: gate.Verdict, challenger: Any, champion: Any | None) -> None:
    from clearml import Task

    stale = {gate.PASSED_TAG, gate.REFUSED_TAG} - {verdict.tag}
    challenger.tags = sorted((set(challenger.tags or []) - stale) | {verdict.tag})
    challenger.set_all_metadata(metadata_of(verdict, champion), replace=False)
    task = Task.get_task(task_id=challenger.task)
    task.set_tags(sorted((set(task.get_tags() or []) - stale) | {verdict.tag}))
    table = pd.DataFrame(verdict.table()).astype({"champion": str, "challenger": str})
    task.get_logger().report_table(gate.TABLE_TITLE, gate.TABLE_SERIES, iteration=0, table_plot=table)
    task.flush(wait_for_uploads=True)


def metadata_of(verdict: gate.Verdict, champion: Any | None) -> dict[str, dict[str, str]]:
    values = {
        "gate_verdict": verdict.summary(),
        "gate_champion": champion.id if champion is not None else "(none served)",
        "gate_rows": f"{verdict.rows} ({verdict.positives} hazardous)",
        "gate_recall": f"{verdict.challenger.recall:.4f} vs champion "
        + (f"{verdict.champion.recall:.4f}" if verdict.champion else "-"),
        "gate_mcnemar_p": f"{verdict.p_value:.4g} (alpha {verdict.config.alpha:g})",
    }
    return {key: {"key": key, "type": "str", "value": value} for key, value in values.items()}
