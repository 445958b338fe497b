"""The scheduled ingestion's run: the `get data` step with a given query date, as its own ClearML task (a
new raw dataset version only when the data changed, as in the pipeline)."""

from __future__ import annotations

import global_config
import third_party_patches
from asteroid import database
from asteroid.steps import get_data
from asteroid.tracking import connect_params, run_step, start_task


def run(query_date: str) -> None:
    """Ingest; the process ends here (the task closed), with code 1 and one line on an expected failure."""
    database.validate_query_date(query_date)
    third_party_patches.install_clearml_sdk_patches()

    def step() -> None:
        task = start_task(global_config.GET_DATA_TASK, "data_processing")
        params = connect_params(task, {**get_data.DEFAULTS, "query_date": query_date})
        get_data.run(task, params)

    run_step(step)
