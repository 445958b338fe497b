"""A real clearml-agent (pinned version, no Docker, no virtualenv build) pulls a task from the embedded
backend's queue and runs it to completion on this machine."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backend.backend_harness import BackendHarness, Mark, terminate_group, wait_for

FLOWS = Path(__file__).parent / "flows"
AGENT_ENV = {
    "CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL": "1",
    "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL": sys.executable,
}
# Agents on this machine run tasks that carry their whole script (there may be no git remote to clone).
STANDALONE_CODE = {"ASTEROID_STEP_CODE": "standalone"}
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start_agent(
    backend: BackendHarness, queue: str, log: Path, extra_env: dict[str, str] | None = None
) -> Any:
    """A clearml-agent daemon serving ``queue`` with this Python environment; stop it with terminate_group."""
    argv = [
        sys.executable,
        "-m",
        "clearml_agent",
        "daemon",
        "--queue",
        queue,
        "--foreground",
        "--create-queue",
    ]
    process = backend.spawn(argv, log, extra_env={**AGENT_ENV, **(extra_env or {})})
    try:
        wait_until_serving(backend, queue, process, log)
    except BaseException:
        terminate_group(process)
        raise
    return process


def wait_until_serving(
    backend: BackendHarness, queue: str, process: Any, log: Path, deadline_s: float = 120
) -> None:
    """Until a registered worker listens on ``queue`` (the agent creates the queue at start-up)."""

    def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the agent exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        workers = backend.call("workers.get_all")["workers"]
        return any(q["name"] == queue for worker in workers for q in worker.get("queues", []))

    wait_for(serving, f"an agent serving queue {queue!r}", deadline_s, interval_s=0.2)


@pytest.fixture
def agent(backend: BackendHarness, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    queue, log = "agent-tests", tmp_path / "agent.log"
    process = start_agent(backend, queue, log)
    try:
        yield queue, log
    finally:
        terminate_group(process)


def wait_for_status(backend: BackendHarness, task_id: str, log: Path, deadline_s: float = 240) -> str:
    """The final status of a task an agent runs; fails with the agent's log after ``deadline_s``."""
    final = ("completed", "failed", "stopped")

    def status() -> str:
        return str(backend.call("tasks.get_by_id", {"task": task_id})["task"]["status"])

    wait_for(
        lambda: status() in final,
        lambda: f"task {task_id} to finish; agent log:\n{log.read_text()[-4000:]}",
        deadline_s,
        0.5,
    )
    return status()


def test_agent_pulls_and_completes_an_enqueued_task(
    backend: BackendHarness, agent: tuple[str, Path], mark: Mark
) -> None:
    queue, log = agent
    task_id = backend.run(FLOWS / "flow_e_enqueue.py", queue, "7").last_json()["task_id"]

    status = wait_for_status(backend, task_id, log)

    assert status == "completed", log.read_text()[-4000:]
    task = backend.call("tasks.get_by_id", {"task": task_id})["task"]
    assert task["last_worker"], "the agent did not record itself as the worker"
    metric = next(iter(task["last_metrics"].values()))
    assert next(iter(metric.values()))["value"] == 7.0  # the override reached the agent's run
    logs = backend.call("events.get_task_log", {"task": task_id, "batch_size": 500})["events"]
    assert any("agent job ran with factor=7" in (event.get("msg") or "") for event in logs)
    queues = backend.call("queues.get_all", {"name": f"^{queue}$"})["queues"]
    assert queues and queues[0]["entries"] == []
    backend.log.assert_clean(mark, direction="response")
