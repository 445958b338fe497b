"""ClearML's own automation, each scheduler a process of the automation service: a `TaskScheduler` runs the
ingestion (`get_data` with the day's query date, a new raw dataset version only when the data changed) on
its schedule, and a `TriggerScheduler` hands each new `raw_asteroid_dataset` version to the retrain receiver,
which decides.

Each keeps its own task on the server (project `DevOps`, the schedulers' default) and logs its decisions to
it; they answer to whichever ClearML server the SDK is configured for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import global_config
import third_party_patches
from asteroid.automation.config import DATASETS_PATH, AutomationConfig
from asteroid.automation.retrain import utc_day

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


def dataset_project_name(dataset_id: str) -> str:
    from clearml import Task

    return str(Task.get_task(task_id=dataset_id).get_project_name())


def on_new_dataset(
    submit: Callable[[str], None], dataset_id: str, project_of: Callable[[str], str] = dataset_project_name
) -> bool:
    """Submit a new raw dataset version of the project (one of another project is ignored); whether it was
    submitted."""
    project = project_of(dataset_id)
    if not project.startswith(f"{global_config.PROJECT_NAME}/.datasets/"):
        print(f"dataset trigger: ignored version {dataset_id} of project {project!r}", flush=True)
        return False
    submit(dataset_id)
    return True


def post_dataset(config: AutomationConfig, token: str, dataset_id: str, deadline_s: float = 600.0) -> None:
    """Hand a new dataset version to the receiver (the one place that decides), retrying while it restarts;
    OSError after ``deadline_s`` seconds."""
    url = f"http://{config.host}:{config.port}{DATASETS_PATH}"
    body = json.dumps({"dataset_id": dataset_id}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deadline, delay = time.monotonic() + deadline_s, 1.0
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30) as reply:
                print(f"dataset trigger: version {dataset_id}: {reply.read().decode()}", flush=True)
                return
        except OSError as exc:  # urllib's HTTPError and URLError are OSErrors
            refused = isinstance(exc, urllib.error.HTTPError) and exc.code < 500
            if refused or time.monotonic() > deadline:
                raise OSError(f"the receiver at {url} did not take dataset {dataset_id}: {exc}") from None
            time.sleep(delay)  # the receiver restarts; retried with backoff until the deadline
            delay = min(delay * 2, 30.0)


def dataset_trigger(config: AutomationConfig, submit: Callable[[str], None]) -> Any:
    """A TriggerScheduler submitting each new raw dataset version of the project.

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
        schedule_function=lambda dataset_id: on_new_dataset(submit, str(dataset_id)),
        trigger_name=f"^{global_config.RAW_DATASET_NAME}$",
    )
    return trigger


def start_in_thread(scheduler: Any, name: str) -> threading.Thread:
    """The scheduler's loop (``start()`` never returns) in a daemon thread."""
    thread = threading.Thread(target=scheduler.start, name=name, daemon=True)
    thread.start()
    return thread


def task_file(config: AutomationConfig, name: str) -> Path:
    """Where a scheduler's process records its ClearML task once it runs."""
    return config.data_dir / "schedulers" / f"{name}.json"


def run_scheduler(config: AutomationConfig, name: str) -> int:
    """One ClearML scheduler in this process (each needs its own: the SDK's schedulers call ``Task.init``,
    one task per process), until the process is stopped."""
    from asteroid.automation.receiver import read_or_create_token
    from asteroid.clearml_server import ensure_server

    third_party_patches.install_clearml_sdk_patches()
    ensure_server(verbose=True)
    if name == "ingest":
        scheduler = ingest_scheduler(config)
    else:
        token = read_or_create_token(config.token_path)
        scheduler = dataset_trigger(config, lambda dataset_id: post_dataset(config, token, dataset_id))
    thread = start_in_thread(scheduler, name)
    while getattr(scheduler, "_task", None) is None and thread.is_alive():
        time.sleep(0.2)  # the SDK creates the scheduler's task as its loop starts
    path = task_file(config, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"task_id": str(scheduler._task.id), "pid": os.getpid()}))
    thread.join()
    return 1  # the loop never ends on its own: it failed
