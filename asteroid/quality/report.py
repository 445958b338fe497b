"""A drift report people can read: Evidently's data-drift report of the live features the prediction log
stored in a time range against the served model's training split, saved as HTML and attached to the serving
service's monitoring task (`Logger.report_media`, title `REPORT_TITLE`) so ClearML's web view shows it.

    python -m asteroid.quality report --since 1h     # the last hour; also --until, --out, --no-attach

Evidently picks a test per column (Kolmogorov–Smirnov below 1,000 rows, the normed Wasserstein distance
above, for numeric features) and calls the dataset drifted when half the features drift. It reads rows; the
Prometheus rules read the bucket counts the statistics controller aggregates, score them with PSI against
the training fractions and alert (AsteroidFeatureDrift): those alerts are the source of truth, this report
is the picture to read when one fires.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from asteroid.quality import store
from asteroid.serving import contract

REPORT_TITLE = "live data drift (Evidently)"
MAX_LIVE_ROWS = 20_000  # a uniform sample of the range beyond this (Evidently's cost grows with the rows)
SAMPLE_SEED = 0


@dataclass(frozen=True)
class DriftReport:
    path: Path
    live_rows: int
    reference_rows: int
    drifted_features: list[str]
    drift_share: float  # drifted / all features
    scores: dict[str, float] = field(default_factory=dict)  # feature -> Evidently's drift score
    methods: dict[str, str] = field(default_factory=dict)  # feature -> the test Evidently chose

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "live_rows": self.live_rows,
            "reference_rows": self.reference_rows,
            "drifted_features": self.drifted_features,
            "drift_share": self.drift_share,
            "scores": self.scores,
            "methods": self.methods,
        }


def live_features(
    database_url: str,
    since: float,
    until: float | None = None,
    features: tuple[str, ...] = contract.FEATURE_STATISTICS,
) -> pd.DataFrame:
    """The features of the predictions answered in [since, until), one column per feature (at most
    MAX_LIVE_ROWS rows, sampled uniformly)."""
    columns = store.PREDICTIONS.c
    query = sa.select(columns.features).where(columns.predicted_at >= since)
    if until is not None:
        query = query.where(columns.predicted_at < until)
    with store.engine(database_url).connect() as connection:
        rows = [json.loads(text) for (text,) in connection.execute(query)]
    frame = pd.DataFrame(rows, columns=list(features), dtype="float64")
    return frame.sample(MAX_LIVE_ROWS, random_state=SAMPLE_SEED) if len(frame) > MAX_LIVE_ROWS else frame


def training_features(model: Any) -> pd.DataFrame:
    """The training part of the split the model was trained on (the preprocessed dataset version its
    training task was given, else the latest one)."""
    from clearml import Task

    import global_config
    from asteroid import split_files
    from asteroid.steps.parameters import SPLIT_DIR
    from asteroid.tracking import dataset_local_copy, latest_dataset_id

    training = Task.get_task(task_id=model.task)
    dataset_id = training.get_parameter("General/preprocessed_dataset_id") or latest_dataset_id(
        global_config.PREPROCESSED_DATASET_NAME
    )
    return split_files.load_split(dataset_local_copy(dataset_id, SPLIT_DIR) / SPLIT_DIR).train.features


def build_report(reference: pd.DataFrame, live: pd.DataFrame, path: Path) -> DriftReport:
    """Evidently's DataDriftPreset of `live` against `reference` (same columns), saved as HTML at `path`."""
    import third_party_patches

    if live.empty:
        raise ValueError("no live rows in the range: nothing to compare with the training split")
    third_party_patches.let_evidently_import_on_pandas_3()
    columns = list(reference.columns)
    # evidently 0.7 and its litestar import deprecated numpy/litestar names and call pandas APIs pandas 3
    # deprecates (dropna inplace): their warnings, not this project's
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(evidently|litestar)\.")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*(numpy.core|litestar)")
        from evidently import Report
        from evidently.presets import DataDriftPreset

        snapshot = Report([DataDriftPreset()]).run(current_data=live[columns], reference_data=reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return _summary(snapshot.dict(), path, len(live), len(reference), columns)


def _summary(
    result: dict[str, Any], path: Path, live_rows: int, reference_rows: int, columns: list[str]
) -> DriftReport:
    """The scores and verdicts of a DataDriftPreset snapshot: per column a `ValueDrift` metric (its score,
    the test and the threshold: a p-value drifts below it, a distance at or above it), and
    `DriftedColumnsCount`'s share."""
    scores: dict[str, float] = {}
    methods: dict[str, str] = {}
    drifted: list[str] = []
    share = 0.0
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        if not config["type"].endswith("ValueDrift") or config["column"] not in columns:
            continue
        column, score, method = config["column"], float(metric["value"]), str(config["method"])
        scores[column], methods[column] = score, method
        if (score < config["threshold"]) if "p_value" in method else (score >= config["threshold"]):
            drifted.append(column)
    return DriftReport(path, live_rows, reference_rows, sorted(drifted), share, scores, methods)


def attach(task: Any, report: DriftReport, series: str, iteration: int) -> None:
    """The HTML as a debug sample (media) of the task: ClearML's web view shows it."""
    logger = task.get_logger()
    logger.report_media(REPORT_TITLE, series, iteration=iteration, local_path=str(report.path))
    logger.flush(wait=True)


def report_range(
    database_url: str, reference: pd.DataFrame, since: float, until: float | None, path: Path
) -> DriftReport:
    return build_report(reference, live_features(database_url, since, until, tuple(reference.columns)), path)


def report_windows(
    database_url: str,
    reference: pd.DataFrame,
    windows: dict[str, tuple[float, float | None]],
    out_dir: Path,
    task: Any | None = None,
) -> dict[str, DriftReport]:
    """One report per named time range ([start, end), end None: now), saved in `out_dir` as
    `drift_report_<name>.html` and attached to `task` (series = the name, iteration = its position)."""
    reports = {}
    for iteration, (name, (since, until)) in enumerate(windows.items()):
        report = report_range(database_url, reference, since, until, out_dir / f"drift_report_{name}.html")
        if task is not None:
            attach(task, report, name, iteration)
        reports[name] = report
    return reports


def report_drill_phases(
    database_url: str, model: Any, phases: dict[str, dict[str, float]], out_dir: Path, service_id: str | None
) -> dict[str, DriftReport]:
    """One report per phase of a drift drill (`DrillResult.phases`: name -> start/end), attached to the
    service's monitoring task when a service is given."""
    from asteroid.quality import scalars

    task = scalars.monitoring_task(service_id) if service_id else None
    windows = {name: (phase["start"], phase.get("end")) for name, phase in phases.items()}
    return report_windows(database_url, training_features(model), windows, out_dir, task)
