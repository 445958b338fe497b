"""Step 2 — features, labels and a group-aware split, registered as a child of the raw dataset."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

import global_config
from asteroid import dataset_files, dataset_handoff, feature_stats, features, split_files, splitting
from asteroid.steps.parameters import LEGACY_RAW_FILE, PREPROCESSING_DEFAULTS, RAW_FILE, SPLIT_DIR
from asteroid.tracking import (
    ComputeClock,
    connect_params,
    dataset_copy,
    latest_dataset_id,
    set_output,
    start_task,
    upload_and_finalize,
)

DEFAULTS = PREPROCESSING_DEFAULTS


def raw_file(directory: Path) -> Path:
    """The observations file of a raw dataset version's copy: Parquet, or the CSV of an earlier release."""
    for name in (RAW_FILE, LEGACY_RAW_FILE):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(
        f"no {RAW_FILE} (nor {LEGACY_RAW_FILE}) in {directory}: not a raw dataset version"
    )


def build_split(raw: pd.DataFrame, params: dict[str, Any]) -> splitting.Split:
    feature_frame, labels, groups = features.build_features(raw)
    return splitting.group_split(
        feature_frame,
        labels,
        groups,
        seed=params["split_seed"],
        val_fraction=params["val_fraction"],
        test_fraction=params["test_fraction"],
    )


def register_child(split: splitting.Split, parent: Any, n_buckets: int) -> tuple[str, dict[str, Any]]:
    """The split as a new version, child of the raw version `parent` (the SDK's Dataset, already fetched)."""
    from clearml import Dataset

    with tempfile.TemporaryDirectory() as work_dir:
        split_dir = split_files.save_split(split, Path(work_dir) / SPLIT_DIR, n_buckets)
        spec = split_files.load_feature_spec(split_dir)
        dataset = Dataset.create(
            dataset_name=global_config.PREPROCESSED_DATASET_NAME,
            dataset_project=global_config.PROJECT_NAME,
            parent_datasets=[parent],
            description=f"features, labels and group split (seed {split.seed}) of raw dataset {parent.id}",
        )
        dataset.add_files(str(split_dir), dataset_path=SPLIT_DIR)
        upload_and_finalize(dataset)
        # the training step on this machine reads them without a download
        files = [path for path in split_dir.rglob("*") if path.is_file()]
        names = [f"{SPLIT_DIR}/{path.relative_to(split_dir).as_posix()}" for path in files]
        dataset_handoff.offer(str(dataset.id), dict(zip(names, files, strict=True)))
    return str(dataset.id), spec


def run(task: Any, params: dict[str, Any]) -> str:
    raw_id = params["raw_dataset_id"] or latest_dataset_id(global_config.RAW_DATASET_NAME)
    raw_dataset, raw_copy = dataset_copy(raw_id)
    raw_path = raw_file(raw_copy)
    clock = ComputeClock()
    with clock.measure():
        split = build_split(dataset_files.read_observations(raw_path, features.INPUT_COLUMNS), params)
    dataset_id, spec = register_child(split, raw_dataset, params["n_buckets"])
    report(task, split, spec)
    clock.report(task)
    set_output(task, "preprocessed_dataset_id", dataset_id)
    print(
        f"registered {global_config.PREPROCESSED_DATASET_NAME} {dataset_id} (parent {raw_id}): "
        f"{split.summary()}"
    )
    return dataset_id


def report(task: Any, split: splitting.Split, spec: dict[str, Any]) -> None:
    logger = task.get_logger()
    stats = feature_stats.feature_statistics(split.train.features).round(6)
    logger.report_table("feature statistics", "train", iteration=0, table_plot=stats.reset_index())
    summary = pd.DataFrame(split.summary()).T.reset_index(names="split")
    logger.report_table("split", "rows, positives, asteroids", iteration=0, table_plot=summary)
    for part, counts in split.summary().items():
        logger.report_single_value(f"rows_{part}", counts["rows"])
    # The serving metrics and drift alerts use these edges as histogram buckets.
    task.upload_artifact("bucket_edges", artifact_object=spec["bucket_edges"])
    for name, edges in spec["bucket_edges"].items():
        counts = pd.cut(split.train.features[name], [-float("inf"), *edges, float("inf")]).value_counts(
            sort=False
        )
        logger.report_histogram(
            "training distribution",
            name,
            values=counts.to_list(),
            iteration=0,
            xlabels=[f"<= {edge:.4g}" for edge in edges] + ["> max"],
            xaxis=name,
            yaxis="rows",
        )


def main() -> None:
    task = start_task(global_config.PREPROCESS_TASK, "data_processing")
    params = connect_params(task, DEFAULTS)
    run(task, params)
