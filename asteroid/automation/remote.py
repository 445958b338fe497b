"""The automation service as a ClearML service task run by an agent (`start --remote`): a task of
`service_task.py` in project `DevOps`, enqueued on a queue (`services` by default) whose agent runs it with
the agent's environment (the same ASTEROID_* configuration as a local start). Once its receiver answers, the
service records its state as the task's `automation/*` parameters; `stop --remote` stops the task (the agent
ends the process), `status --remote` reads them back. It works against any server an agent serves: the
embedded one as well as a real one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from asteroid.automation.schedules import SCHEDULER_PROJECT

SERVICE_TASK = "asteroid automation"
SECTION = "automation"
SCRIPT = Path(__file__).with_name("service_task.py")
RUNNING = ["queued", "in_progress"]


def create_and_enqueue(queue: str) -> Any:
    """A new service task of ``service_task.py``, enqueued on ``queue``."""
    from clearml import Task

    from asteroid.pipeline import uses_standalone_code

    task = Task.create(
        project_name=SCHEDULER_PROJECT,
        task_name=SERVICE_TASK,
        task_type="service",
        script=str(SCRIPT),
        add_task_init_call=False,
        packages=False,
        force_single_script_file=uses_standalone_code(),
    )
    Task.enqueue(task, queue_name=queue)
    return task


def running_tasks() -> list[Any]:
    from clearml import Task

    return list(
        Task.get_tasks(
            project_name=SCHEDULER_PROJECT,
            task_name=f"^{SERVICE_TASK}$",
            task_filter={"status": RUNNING, "order_by": ["-last_update"]},
        )
    )


def recorded_state(task: Any) -> dict[str, Any]:
    """What the service recorded on its task (empty until its receiver answers)."""
    text = task.get_parameter(f"{SECTION}/state") or ""
    try:
        state = json.loads(text)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def record_state(task_id: str, state: dict[str, Any]) -> None:
    from clearml import Task

    Task.get_task(task_id=task_id).set_parameter(f"{SECTION}/state", json.dumps(state))


def wait_for_state(task: Any, timeout: float) -> dict[str, Any]:
    """The recorded state once there is one; RuntimeError naming the task's status when it ends first or
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task.reload()
        state = recorded_state(task)
        if state:
            return state
        status = task.get_status()
        if status not in RUNNING:
            raise RuntimeError(f"the service task {task.id} is {status}: {task.data.status_message or ''}")
        time.sleep(1.0)  # polling interval, bounded by the deadline
    raise RuntimeError(
        f"the service task {task.id} did not start within {timeout:.0f} s (is an agent serving its queue?)"
    )


def stop_all() -> list[str]:
    """Stop every running service task; their ids."""
    stopped = []
    for task in running_tasks():
        task.mark_stopped(force=True, status_message="stopped by python -m asteroid.automation stop --remote")
        stopped.append(str(task.id))
    return stopped
