"""ClearML's automation, unchanged, on the embedded backend: HyperParameterOptimizer with Optuna (locally and
through an agent), TaskScheduler, TriggerScheduler, the clearml-data CLI and the Task calls they rest on."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backend.backend_harness import BackendHarness, Mark, start_agent, terminate_group

FLOWS = Path(__file__).parent / "flows"
CLEARML_DATA = Path(sys.executable).with_name("clearml-data")  # the SDK's console script in this environment
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
    """Each trial's stored minimum is what hpo_trial.py reports for its x; the optimizer's top experiments
    are the trials ordered by it."""
    reported = {trial: loss_entry(backend, trial)["min_value"] for trial in result["trials"]}
    for trial, minimum in reported.items():
        x = int(task(backend, trial)["hyperparams"]["General"]["x"]["value"])
        assert minimum == (x - 3) ** 2 + 1 / 3  # the loss at the last of iterations 0..2
    expected = sorted(reported, key=lambda trial: reported[trial])
    assert [reported[t] for t in result["top"]] == [reported[t] for t in expected]
    assert set(result["top"]) == set(result["trials"])


def run_with_result_file(backend: BackendHarness, flow: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run a flow whose threads or children may print after it is done: it writes its result to the file
    its first argument names, instead of stdout."""
    result = tmp_path / "result.json"
    backend.run(FLOWS / flow, str(result), *args, timeout=400)
    return dict(json.loads(result.read_text()))


def test_optuna_optimizer_runs_trials_locally_and_stops_them_at_the_iteration_budget(
    backend: BackendHarness, tmp_path: Path, mark: Mark
) -> None:
    result = run_with_result_file(backend, "hpo_optimize.py", tmp_path, "local")

    assert len(result["trials"]) == 3
    assert_top_by_objective(backend, result)
    for trial in result["trials"]:
        # the trial holds after iteration 2 until stopped: only the iteration histogram can have stopped it
        assert "trial ended holding, status stopped" in console(backend, trial)
        assert task(backend, trial)["parent"] == result["optimizer"]
    backend.log.assert_clean(mark, direction="response")


def test_optuna_optimizer_enqueues_trials_for_an_agent(
    backend: BackendHarness, agent_queue: str, tmp_path: Path, mark: Mark
) -> None:
    result = run_with_result_file(backend, "hpo_optimize.py", tmp_path, "queue", agent_queue)

    assert len(result["trials"]) == 3
    assert_top_by_objective(backend, result)
    assert all(task(backend, t)["status"] == "completed" for t in result["trials"])
    backend.log.assert_clean(mark, direction="response")


def test_task_scheduler_runs_a_function_and_a_task_once_while_it_runs(
    backend: BackendHarness, agent_queue: str, tmp_path: Path, mark: Mark
) -> None:
    result = run_with_result_file(backend, "scheduler_flow.py", tmp_path, agent_queue)

    assert len(result["clones"]) == 1  # single_instance: the second minute's launch was skipped
    assert result["x"] == "5"  # the clone was edited before it was enqueued
    assert result["status"] == "stopped"  # Task.mark_stopped reached the agent's run
    backend.log.assert_clean(mark, direction="response")


def test_trigger_scheduler_fires_on_a_dataset_version_a_published_model_and_a_metric_threshold(
    backend: BackendHarness, agent_queue: str, tmp_path: Path, mark: Mark
) -> None:
    result = run_with_result_file(backend, "trigger_flow.py", tmp_path, agent_queue)

    assert result["job_dataset_id"] == result["second"]
    assert result["fired"] == {"model": [result["model"]], "task": [result["scored"]]}
    backend.log.assert_clean(mark, direction="response")


def test_task_calls_page_clone_dequeue_stop_and_delete_with_models(
    backend: BackendHarness, mark: Mark
) -> None:
    project = backend.call("projects.create", {"name": "paging", "description": ""})["id"]
    for number in range(510):
        backend.call("tasks.create", {"name": f"t{number}", "type": "training", "project": project})
    backend.call("queues.create", {"name": "idle"})

    run = backend.run(FLOWS / "task_ops_flow.py", "paging", "idle")
    result = run.last_json()

    assert (result["first_page"], result["found"]) == (500, 510)
    assert task(backend, result["clone"])["parent"] == result["parent"]
    assert task(backend, result["clone"])["status"] == "created"
    assert backend.call("queues.get_all", {"name": "^idle$"})["queues"][0]["entries"] == []
    assert task(backend, result["running"])["status"] == "stopped"
    assert backend.call("models.get_by_id", {"model": result["model"]})["model"]["last_iteration"] == 1000
    assert result["deleted"] is True
    assert "Failed parsing response" not in run.stdout + run.stderr
    gone = backend.post("models.get_by_id", {"model": result["doomed_model"]})
    assert gone.status_code == 400
    backend.log.assert_clean(mark, direction="response")


def test_clearml_data_cli_creates_versions_with_a_parent_and_gets_them(
    backend: BackendHarness, tmp_path: Path, mark: Mark
) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    (tmp_path / "b.csv").write_text("b\n2\n")
    home = {"HOME": str(tmp_path)}  # the CLI keeps its current dataset in ~/.clearml_data.json

    def cli(*args: str) -> str:
        return backend.run_command([str(CLEARML_DATA), *args], extra_env=home).stdout

    def created_id(output: str) -> str:
        return next(line.split("id=")[1].strip() for line in output.splitlines() if "id=" in line)

    first = created_id(cli("create", "--project", "cli", "--name", "rows"))
    cli("add", "--id", first, "--files", str(tmp_path / "a.csv"))
    cli("upload", "--id", first)
    cli("close", "--id", first)
    second = created_id(cli("create", "--project", "cli", "--name", "rows", "--parents", first))
    cli("add", "--id", second, "--files", str(tmp_path / "b.csv"))
    cli("close", "--id", second)

    listing = cli("list", "--id", second)
    copy = tmp_path / "copy"
    cli("get", "--id", second, "--copy", str(copy))

    assert "a.csv" in listing and "b.csv" in listing
    assert sorted(p.name for p in copy.iterdir()) == ["a.csv", "b.csv"]
    assert task(backend, second)["status"] == "completed"
    backend.log.assert_clean(mark, direction="response")
