"""ClearML's own automation, run as threads of the automation service: a `TaskScheduler` runs the ingestion
(`get_data` with the day's query date, a new raw dataset version only when the data changed) on its
schedule, and a `TriggerScheduler` turns each new `raw_asteroid_dataset` version into a retrain event.

Both keep their own task on the server (project `DevOps`, the schedulers' default) and log their decisions
to it; they answer to whichever ClearML server the SDK is configured for."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import global_config
from asteroid.automation.config import AutomationConfig
from asteroid.automation.retrain import Retrainer, utc_day
from asteroid.automation.store import Event

SCHEDULER_PROJECT = "DevOps"
INGEST_SCHEDULER_TASK = "asteroid ingestion schedule"
DATASET_TRIGGER_TASK = "asteroid retrain trigger"
INGEST_TIMEOUT_S = 3600.0


def ingest_command(query_date: str) -> list[str]:
    return [sys.executable, "-m", "asteroid.automation", "ingest", "--query-date", query_date]


def ingest_once(log_path: Path, clock: Callable[[], float] = time.time) -> int:
    """Run the ingestion for today (UTC) as a process of its own; its exit code (its output in the log)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = ingest_command(utc_day(clock()))
    with log_path.open("ab") as log:
        log.write(
            f"--- {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC: {' '.join(command[1:])}\n".encode()
        )
        log.flush()
        done = subprocess.run(
            command,
            cwd=global_config.ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=INGEST_TIMEOUT_S,
            check=False,
        )
    return done.returncode


def ingest_scheduler(config: AutomationConfig) -> Any:
    from clearml.automation import TaskScheduler

    scheduler = TaskScheduler(
        force_create_task_name=INGEST_SCHEDULER_TASK, force_create_task_project=SCHEDULER_PROJECT
    )
    if config.ingest_every_minutes:
        timing: dict[str, Any] = {"minute": config.ingest_every_minutes}
    else:
        timing = {"day": 1, "hour": config.ingest_hour, "minute": config.ingest_minute}
    scheduler.add_task(
        schedule_function=lambda: ingest_once(config.data_dir / "ingest.log"),
        name="ingest",
        single_instance=True,
        execute_immediately=config.ingest_at_start,
        **timing,
    )
    return scheduler


def dataset_event(dataset_id: str) -> Event:
    return Event("dataset", f"dataset:{dataset_id}", dataset_id)


def dataset_project_name(dataset_id: str) -> str:
    from clearml import Task

    return str(Task.get_task(task_id=dataset_id).get_project_name())


def on_new_dataset(
    retrainer: Retrainer, dataset_id: str, project_of: Callable[[str], str] = dataset_project_name
) -> bool:
    """Submit a new raw dataset version of the project as a retrain event (one of another project is
    ignored); whether it was submitted."""
    project = project_of(dataset_id)
    if not project.startswith(f"{global_config.PROJECT_NAME}/.datasets/"):
        print(f"dataset trigger: ignored version {dataset_id} of project {project!r}", flush=True)
        return False
    retrainer.submit([dataset_event(dataset_id)])
    return True


def dataset_trigger(config: AutomationConfig, retrainer: Retrainer) -> Any:
    """A TriggerScheduler submitting each new raw dataset version of the project as a retrain event.

    It filters by dataset name only: with ``trigger_project`` the SDK adds one trigger per dataset project
    existing when the trigger is added, and none at all before the first version was ever registered
    (clearml 2.1.12, ``TriggerScheduler.add_dataset_trigger``); the project is checked when it fires."""
    from clearml.automation import TriggerScheduler

    trigger = TriggerScheduler(
        pooling_frequency_minutes=config.trigger_poll_minutes,
        force_create_task_name=DATASET_TRIGGER_TASK,
        force_create_task_project=SCHEDULER_PROJECT,
    )
    trigger.add_dataset_trigger(
        name="new raw dataset version",
        schedule_function=lambda dataset_id: on_new_dataset(retrainer, str(dataset_id)),
        trigger_name=f"^{global_config.RAW_DATASET_NAME}$",
    )
    return trigger


def start_in_thread(scheduler: Any, name: str) -> threading.Thread:
    """The scheduler's loop (``start()`` never returns) in a daemon thread: it ends with the service."""
    thread = threading.Thread(target=scheduler.start, name=name, daemon=True)
    thread.start()
    return thread
