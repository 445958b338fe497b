"""tune.py against the embedded backend: a few trials on generated sample data, locally and on a
clearml-agent; the optimizer's top trials against the trials' own reports; the same seed, the same trials;
the winner used by ``pipeline.py --params-from``; the optimizer's trial table in the web view (and in Chromium
when installed); bad arguments."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import global_config
from asteroid.steps.parameters import MODELS_OUTPUT
from asteroid.tuning.space import SECTION, typed_params
from tests.backend.backend_harness import STANDALONE_CODE, BackendHarness, start_agent, terminate_group
from tests.project_env import isolated_project

ROOT = global_config.ROOT
pytestmark = [pytest.mark.integration, pytest.mark.slow]
SEED = 7
# Three trials: fewer than the pruner's startup trials, so none is pruned and the same seed must give the same
# trials whatever the timing. Two group splits keep the rule check short.
SMALL_RUN = ("--trials", "3", "--seed", str(SEED), "--seeds", "2", "--keep-top", "2", "--check-top", "2")
SMALL_CHECK = ("--check-splits", "2")


@dataclass(frozen=True)
class TuningRun:
    stdout: str
    result: dict[str, Any]


@pytest.fixture(scope="module")
def project_env(backend: BackendHarness, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An isolated project with one pipeline run: the preprocessed dataset the trials train on."""
    env = isolated_project(tmp_path_factory.mktemp("tuning-project"))
    backend.run(ROOT / "pipeline.py", "--seeds", "1", extra_env=env, timeout=600)
    return env


def tune(backend: BackendHarness, env: dict[str, str], *args: str) -> TuningRun:
    completed = backend.run(ROOT / "tune.py", *args, extra_env=env, timeout=600)
    result = json.loads((Path(env["ASTEROID_RUNS_DIR"]) / "latest" / "tuning.json").read_text())
    return TuningRun(completed.stdout, result)


@pytest.fixture(scope="module")
def local_run(backend: BackendHarness, project_env: dict[str, str]) -> TuningRun:
    # README: .venv/bin/python tune.py --trials 20
    return tune(backend, project_env, *SMALL_RUN, *SMALL_CHECK)


def task(backend: BackendHarness, task_id: str) -> dict[str, Any]:
    return backend.call("tasks.get_by_id", {"task": task_id})["task"]


def children(backend: BackendHarness, parent: str) -> list[dict[str, Any]]:
    """The optimizer's trials, oldest first (archived ones included)."""
    return backend.call("tasks.get_all", {"parent": parent, "order_by": ["created"]})["tasks"]


def searched(doc: dict[str, Any]) -> dict[str, Any]:
    return {name: item["value"] for name, item in doc["hyperparams"].get(SECTION, {}).items()}


def own_objective(doc: dict[str, Any]) -> float:
    """A trial's objective from its own report of its models: the best validation PR-AUC of its seeds."""
    models = json.loads(doc["hyperparams"]["Outputs"][MODELS_OUTPUT]["value"])
    return max(model["val_pr_auc"] for model in models)


def test_a_local_run_records_its_trials_budget_and_recommendation(
    backend: BackendHarness, local_run: TuningRun
) -> None:
    result = local_run.result
    optimizer = task(backend, result["optimizer_task_id"])
    assert optimizer["type"] == "optimizer" and optimizer["status"] == "completed"
    recorded = {name: item["value"] for name, item in optimizer["hyperparams"]["tuning"].items()}
    assert recorded["trials"] == "3" and f"seed={SEED}" in recorded["sampler"]
    assert recorded["save_top_k_tasks_only"] == "2" and recorded["queue"] == "local"
    assert "search space" in optimizer["configuration"]
    space = optimizer["configuration"]["search space"]["value"]  # HOCON text, one line per parameter
    for name in ("eta", "max_depth", "min_child_weight", "gamma", "subsample", "num_boost_round"):
        assert re.search(rf"^{name} = ", space, re.MULTILINE), space

    trials = children(backend, optimizer["id"])
    assert sorted(doc["id"] for doc in trials) == sorted(result["trials"]) and len(trials) == 3
    assert all(doc["status"] == "completed" and not doc["execution"].get("queue") for doc in trials)
    assert "trial 3/3 done" in local_run.stdout and "best so far" in local_run.stdout

    # top trials: as the optimizer ranked them, and as the trials' own reports rank them
    ranked = sorted(trials, key=own_objective, reverse=True)
    assert [entry["task_id"] for entry in result["top"]] == [doc["id"] for doc in ranked[:2]]
    assert [entry["objective"] for entry in result["top"]] == [own_objective(doc) for doc in ranked[:2]]
    # save_top_k_tasks_only=2: the worst of the three is archived, the others are not
    archived = [doc["id"] for doc in trials if "archived" in doc.get("system_tags", [])]
    assert archived == [ranked[-1]["id"]]

    recommendation = result["recommendation"]
    checks = recommendation["rule_checks"]
    assert checks["defaults"]["splits"] == 2
    outputs = optimizer["hyperparams"]["Outputs"]
    assert json.loads(outputs["recommended_params"]["value"]) == recommendation["params"]
    if recommendation["trial_id"]:  # a trial is recommended only if it passed and beat the defaults
        assert checks[recommendation["trial_id"]]["passed"]
        assert recommendation["objective"] > recommendation["defaults_objective"]
        trial = task(backend, recommendation["trial_id"])
        assert typed_params(searched(trial)) == recommendation["params"]
    failed_before = [name for name, check in checks.items() if name != "defaults" and not check["passed"]]
    assert recommendation["trial_id"] not in failed_before


def test_the_same_seed_gives_the_same_trials(
    backend: BackendHarness, project_env: dict[str, str], local_run: TuningRun
) -> None:
    again = tune(backend, project_env, *SMALL_RUN, *SMALL_CHECK, "--check-top", "1")
    first = [searched(doc) for doc in children(backend, local_run.result["optimizer_task_id"])]
    second = [searched(doc) for doc in children(backend, again.result["optimizer_task_id"])]
    assert first == second and len({json.dumps(trial, sort_keys=True) for trial in first}) == 3


def test_the_pipeline_trains_with_the_recommended_parameters(
    backend: BackendHarness, project_env: dict[str, str], local_run: TuningRun
) -> None:
    # README: .venv/bin/python pipeline.py --params-from <optimizer task id>
    optimizer_id = local_run.result["optimizer_task_id"]
    result = backend.run(
        ROOT / "pipeline.py",
        "--seeds",
        "1",
        "--params-from",
        optimizer_id,
        extra_env=project_env,
        timeout=600,
    )
    assert f"Training parameters from optimizer task {optimizer_id}" in result.stdout
    summary = json.loads((Path(project_env["ASTEROID_RUNS_DIR"]) / "latest" / "summary.json").read_text())
    assert summary["params_from"] == optimizer_id
    training = task(backend, summary["step_tasks"]["training"])
    assert typed_params(searched(training)) == local_run.result["recommendation"]["params"]
    pipeline = task(backend, summary["pipeline_id"])
    assert pipeline["hyperparams"]["Args"]["params_from"]["value"] == optimizer_id


def test_params_from_a_training_task_and_from_nothing(
    backend: BackendHarness, project_env: dict[str, str], local_run: TuningRun
) -> None:
    trial_id = local_run.result["top"][-1]["task_id"]
    result = backend.run(
        ROOT / "pipeline.py", "--seeds", "1", "--params-from", trial_id, extra_env=project_env, timeout=600
    )
    assert f"Training parameters from training task {trial_id}" in result.stdout
    summary = json.loads((Path(project_env["ASTEROID_RUNS_DIR"]) / "latest" / "summary.json").read_text())
    training = task(backend, summary["step_tasks"]["training"])
    assert searched(training) == searched(task(backend, trial_id))
    missing = backend.run(
        ROOT / "pipeline.py", "--params-from", "f" * 32, extra_env=project_env, check=False, timeout=120
    )
    assert missing.returncode == 1 and "--params-from" in missing.stderr and "Traceback" not in missing.stderr


def test_the_web_view_shows_the_trial_table_linked_to_each_trial(
    backend: BackendHarness, local_run: TuningRun
) -> None:
    optimizer_id = local_run.result["optimizer_task_id"]
    plots = backend.call("events.get_task_plots", {"task": optimizer_id, "iters": 1})["plots"]
    by_title = {plot["metric"]: json.loads(plot["plot_str"]) for plot in plots}
    assert {"summary", "Parallel Coordinates", "CNEOS rule check"} <= set(by_title)
    table = by_title["summary"]["data"][0]
    assert table["type"] == "table"
    links = re.findall(r'href="([^"]+)"', json.dumps(table["cells"]["values"][0]).replace('\\"', '"'))
    assert len(links) == 3
    for link in links:
        page = requests.get(link, timeout=30)
        assert page.status_code == 200 and any(trial in page.text for trial in local_run.result["trials"])
    parallel = by_title["Parallel Coordinates"]["data"][0]
    assert parallel["type"] == "parcoords" and len(parallel["dimensions"]) >= 3


def test_the_trial_table_renders_in_chromium(
    backend: BackendHarness, local_run: TuningRun, tmp_path: Path
) -> None:
    from tests.webview.browser import RUNS, assert_not_blank, read_dom, render

    optimizer = task(backend, local_run.result["optimizer_task_id"])
    experiment = f"{backend.api_url}/projects/{optimizer['project']}/experiments/{optimizer['id']}"
    url = f"{experiment}/output/metrics/plots"
    shot = RUNS / "tuning" / "optimizer-plots.png"
    rendered = render(url, tmp_path / "profile", screenshot=shot)
    assert_not_blank(shot)
    assert "Uncaught" not in rendered.log, rendered.log
    dom = read_dom(rendered.dom)
    summary = dom.charts_titled("summary")
    assert summary and summary[0].svgs, [chart.title for chart in dom.charts]
    assert all(trial in dom.text for trial in local_run.result["trials"])
    assert dom.charts_titled("Parallel Coordinates")[0].svgs


def test_trials_run_on_a_clearml_agent(
    backend: BackendHarness, project_env: dict[str, str], tmp_path: Path
) -> None:
    # README: .venv/bin/python tune.py --queue default
    queue = "tuning-agents"
    env = {**project_env, **STANDALONE_CODE}
    agent = start_agent(backend, queue, tmp_path / "agent.log", extra_env=env)
    try:
        run = backend.run(
            ROOT / "tune.py",
            *("--queue", queue, "--trials", "2", "--seeds", "1", "--check-top", "1", "--keep-top", "2"),
            *SMALL_CHECK,
            extra_env=env,
            timeout=600,
            check=False,
        )
    finally:
        terminate_group(agent)
    assert run.returncode == 0, run.describe() + (tmp_path / "agent.log").read_text()[-3000:]
    result = json.loads((Path(env["ASTEROID_RUNS_DIR"]) / "latest" / "tuning.json").read_text())
    trials = children(backend, result["optimizer_task_id"])
    assert len(trials) == 2
    assert all(doc["status"] == "completed" and doc["last_worker"] for doc in trials), trials
    agent_log = (tmp_path / "agent.log").read_text()
    assert all(f"Running task id [{doc['id']}]" in agent_log for doc in trials)


def test_without_a_dataset_it_says_to_run_the_pipeline_first(
    backend: BackendHarness, project_env: dict[str, str]
) -> None:
    env = {**project_env, "ASTEROID_PROJECT": "tuning without data"}
    result = backend.run(ROOT / "tune.py", "--trials", "1", extra_env=env, check=False, timeout=300)
    assert result.returncode == 1, result.describe()
    assert "run pipeline.py first" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--param", "depth=2:4"), "unknown parameter 'depth'"),
        (("--only", "eta,colour"), "unknown parameter 'colour'"),
        (("--param", "eta=0.3:0.1"), "eta: empty range"),
        (("--param", "max_depth=4:4"), "max_depth: empty range"),
        (("--trials", "-1"), "--trials must be at least 1"),
        (("--time-limit", "-5"), "--time-limit must be above 0"),
        (("--trials", "many"), "invalid int value"),
    ],
)
def test_bad_arguments_end_with_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    # rejected before any server is looked for: no backend needed
    result = subprocess.run(
        [sys.executable, str(ROOT / "tune.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr
    assert result.stdout == ""
