"""Step 1 — query the observations database and register the result as the raw dataset version."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import global_config
from asteroid import database, dataset_files, dataset_handoff
from asteroid.prefetch import prefetched
from asteroid.steps.parameters import GET_DATA_DEFAULTS, RAW_FILE
from asteroid.tracking import ComputeClock, connect_params, set_output, start_task, upload_and_finalize

DEFAULTS = GET_DATA_DEFAULTS


def content_hash(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def ensure_database(database_url: str) -> None:
    """Load the default source into an empty database, so the step also runs on its own."""
    if database.count_observations(database_url) > 0:
        return
    source, description = database.resolve_source_csv(None)
    print(f"The observations table is empty: loading {description}")
    print(database.load_csv(source, database_url, progress=database.print_progress).summary())


def existing_version_with(content_sha256: str) -> str | None:
    """The id of the latest raw dataset version if it holds exactly this content."""
    from clearml import Dataset

    try:
        latest = Dataset.get(
            dataset_name=global_config.RAW_DATASET_NAME,
            dataset_project=global_config.PROJECT_NAME,
            only_completed=True,
        )
    except ValueError:
        return None
    entry = latest.file_entries_dict.get(RAW_FILE)
    return str(latest.id) if entry is not None and entry.hash == content_sha256 else None


def register_dataset(frame_path: Path, query_date: str) -> tuple[str, bool]:
    """(dataset id, created) — a new version only when the content changed."""
    from clearml import Dataset

    digest = content_hash(frame_path)
    existing = existing_version_with(digest)
    if existing:
        return existing, False
    dataset = Dataset.create(
        dataset_name=global_config.RAW_DATASET_NAME,
        dataset_project=global_config.PROJECT_NAME,
        description=f"NEO observations with close approach <= {query_date}",
    )
    dataset.add_files(str(frame_path))
    upload_and_finalize(dataset)
    return str(dataset.id), True


def run(task: Any, params: dict[str, Any]) -> str:
    database_url = global_config.DATABASE_URL
    clock = ComputeClock()
    with tempfile.TemporaryDirectory() as work_dir:
        path = Path(work_dir) / RAW_FILE
        with clock.measure():
            ensure_database(database_url)
            # streamed from the database into the file a chunk at a time
            # the next batch fetched on a thread while this one is written (both let go of the GIL)
            batches = prefetched(
                database.iter_observation_batches(database_url, params["query_date"] or None), "sql-read"
            )
            written = dataset_files.write_observation_batches(batches, path)
        if written.rows == 0:
            raise ValueError(f"query_date={params['query_date']!r} selects no observations")
        dataset_id, created = register_dataset(path, params["query_date"])
        dataset_handoff.offer(dataset_id, {RAW_FILE: path})  # the next step here reads it without a download
    report(task, written, dataset_id, created)
    clock.report(task)
    set_output(task, "raw_dataset_id", dataset_id)
    return dataset_id


def report(task: Any, written: dataset_files.ObservationsWritten, dataset_id: str, created: bool) -> None:
    logger = task.get_logger()
    logger.report_table("raw data", "preview (first 20 rows)", iteration=0, table_plot=written.preview)
    counts = {
        "rows": written.rows,
        "asteroids": written.asteroids,
        "hazardous": written.hazardous,
        "rejected_at_load": database.count_rejected(global_config.DATABASE_URL),
    }
    for name, value in counts.items():
        logger.report_single_value(name, value)
    verb = "registered new" if created else "content unchanged, reusing"
    print(f"{verb} dataset {global_config.RAW_DATASET_NAME} version {dataset_id}: {counts}")


def main() -> None:
    task = start_task(global_config.GET_DATA_TASK, "data_processing")
    params = connect_params(task, DEFAULTS)
    run(task, params)
