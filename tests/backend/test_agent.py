"""A real clearml-agent (pinned version, no Docker, no virtualenv build) pulls a task from the embedded
backend's queue and runs it to completion on this machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend.backend_harness import BackendHarness, Mark, start_agent, terminate_group, wait_for

FLOWS = Path(__file__).parent / "flows"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
