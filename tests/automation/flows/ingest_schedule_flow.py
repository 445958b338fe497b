"""The automation's ingestion schedule (ClearML's TaskScheduler, unchanged) against a server: every minute,
`get data` with the day's query date as a task of its own; the first run registers a raw dataset version,
the next finds the content unchanged and registers none. Writes the ingest log and the raw versions to the
file its first argument names. (automation_common: tests/backend/flows, on PYTHONPATH.)"""

import json
import sys
from pathlib import Path

from automation_common import wait_until
from clearml import Dataset, Task

import global_config
from asteroid.automation import schedules
from asteroid.automation.config import AutomationConfig

result_path, workdir = Path(sys.argv[1]), Path.cwd()
config = AutomationConfig(data_dir=workdir / "automation", database_url="unused")
config = config.with_overrides(ingest_every_minutes=1, ingest_at_start=True)
log = config.data_dir / "ingest.log"


def log_has(text: str) -> bool:
    return log.exists() and text in log.read_text()


scheduler = schedules.ingest_scheduler(config)
schedules.start_in_thread(scheduler, "ingest")
wait_until(lambda: log_has("registered new dataset"), "the first ingestion", 240)
wait_until(lambda: log_has("content unchanged, reusing"), "the second ingestion", 240)
versions = Dataset.list_datasets(
    dataset_project=global_config.PROJECT_NAME,
    partial_name=global_config.RAW_DATASET_NAME,
    only_completed=True,
)
result_path.write_text(
    json.dumps(
        {
            "log": log.read_text(),
            "versions": [v["id"] for v in versions if v["name"] == global_config.RAW_DATASET_NAME],
            "descriptions": [Task.get_task(task_id=v["id"]).comment for v in versions],
        }
    )
)
