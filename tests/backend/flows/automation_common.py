"""Helpers the automation flows share: a draft task carrying a whole script, and polling with a deadline."""

import time
from collections.abc import Callable
from pathlib import Path

from clearml import Task

DEADLINE_S = 150.0


def draft_task(script: str, name: str, parameters: dict) -> Task:
    """A draft task of ``script`` (a file beside this one) that an agent or a local job can run as stored."""
    task = Task.create(
        project_name="automation",
        task_name=name,
        script=str(Path(__file__).with_name(script)),
        add_task_init_call=False,
        packages=False,
        force_single_script_file=True,
    )
    task.set_parameters(parameters)
    return task


def wait_until(condition: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> object:
    """The first truthy value of ``condition``; raises naming ``what`` after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.5)  # polling interval, bounded by the deadline


def console_of(task_id: str) -> str:
    """What a task has logged so far (the schedulers log their decisions to their own task)."""
    events = Task._get_default_session().send_request(
        "events", "get_task_log", json={"task": task_id, "batch_size": 500}
    )
    return "\n".join(event.get("msg") or "" for event in events.json()["data"]["events"])
