"""ClearML's automation, unchanged, on the embedded backend: HyperParameterOptimizer with Optuna (locally and
through an agent), TaskScheduler, TriggerScheduler, the clearml-data CLI and the Task calls they rest on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backend.backend_harness import BackendHarness, Mark, start_agent, terminate_group, wait_for

FLOWS = Path(__file__).parent / "flows"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def agent_queue(backend: BackendHarness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One clearml-agent serving a queue for the whole module."""
    queue, log = "automation", tmp_path_factory.mktemp("agent") / "agent.log"
    process = start_agent(backend, queue, log)
    try:
        yield queue
    finally:
        terminate_group(process)


def task(backend: BackendHarness, task_id: str) -> dict[str, Any]:
    return backend.call("tasks.get_by_id", {"task": task_id})["task"]


def console(backend: BackendHarness, task_id: str) -> str:
    events = backend.call("events.get_task_log", {"task": task_id, "batch_size": 500})["events"]
    return "\n".join(event.get("msg") or "" for event in events)


def loss_entry(backend: BackendHarness, task_id: str) -> dict[str, Any]:
    return task(backend, task_id)["last_metrics"][md5("loss")][md5("loss")]


def assert_top_by_objective(backend: BackendHarness, result: dict[str, Any]) -> None:
    """The optimizer's top experiments are its trials ordered by the smallest loss each reported."""
    reported = {trial: loss_entry(backend, trial)["min_value"] for trial in result["trials"]}
    expected = sorted(reported, key=lambda trial: reported[trial])
    assert [reported[t] for t in result["top"]] == [reported[t] for t in expected]
    assert set(result["top"]) == set(result["trials"])


def test_optuna_optimizer_runs_trials_locally_and_stops_them_at_the_iteration_budget(
    backend: BackendHarness, mark: Mark
) -> None:
    result = backend.run(FLOWS / "hpo_optimize.py", "local", timeout=300).last_json()

    assert len(result["trials"]) == 3
    assert_top_by_objective(backend, result)
    for trial in result["trials"]:
        # the trial holds after iteration 3 until stopped: only the iteration histogram can have stopped it
        assert "trial ended holding, status stopped" in console(backend, trial)
        assert task(backend, trial)["parent"] == result["optimizer"]
    backend.log.assert_clean(mark, direction="response")


def test_optuna_optimizer_enqueues_trials_for_an_agent(
    backend: BackendHarness, agent_queue: str, mark: Mark
) -> None:
    result = backend.run(FLOWS / "hpo_optimize.py", "queue", agent_queue, timeout=400).last_json()

    assert len(result["trials"]) == 3
    assert_top_by_objective(backend, result)
    assert all(task(backend, t)["status"] == "completed" for t in result["trials"])
    backend.log.assert_clean(mark, direction="response")
