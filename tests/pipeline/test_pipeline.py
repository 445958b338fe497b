"""pipeline.py end to end against the embedded backend: locally, on a clearml-agent, on NASA's table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd
import pytest
import requests

import global_config
from asteroid import comparison, dataset_handoff, evaluate, features, schema, splitting, train
from asteroid.serving import contract
from asteroid.steps.parameters import PREPROCESSING_DEFAULTS, RAW_FILE, SPLIT_DIR
from tests.backend.backend_harness import STANDALONE_CODE, BackendHarness, start_agent, terminate_group
from tests.webview.populate import printed_urls

ROOT = global_config.ROOT
FLOWS = Path(__file__).parent / "flows"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_pipeline(backend: BackendHarness, env: dict[str, str], *args: str, check: bool = True) -> Any:
    return backend.run(ROOT / "pipeline.py", *args, extra_env=env, timeout=600, check=check)


def summary_of(env: dict[str, str]) -> dict[str, Any]:
    return json.loads((Path(env["ASTEROID_RUNS_DIR"]) / "latest" / "summary.json").read_text())


def task(backend: BackendHarness, task_id: str) -> dict[str, Any]:
    return backend.call("tasks.get_by_id", {"task": task_id})["task"]


def output(task_doc: dict[str, Any], name: str) -> str:
    return task_doc["hyperparams"]["Outputs"][name]["value"]


def artifact_json(backend: BackendHarness, task_doc: dict[str, Any], key: str) -> Any:
    """A task's JSON file artifact, read from the backend's file store."""
    uri = next(a["uri"] for a in task_doc["execution"]["artifacts"] if a["key"] == key)
    relative = unquote(uri[len(backend.files_url) :]).lstrip("/")
    return json.loads((backend.files_root / relative).read_text())


def test_pipeline_on_generated_sample_data(backend: BackendHarness, project_env: dict[str, str]) -> None:
    # README: .venv/bin/python pipeline.py  (against a server configured by CLEARML_API_HOST and keys)
    mark = backend.log.mark()
    result = run_pipeline(backend, project_env, "--seeds", "2")
    assert "generated" in result.stdout  # no NASA table here: the run says it uses sample data

    summary = summary_of(project_env)
    steps = summary["step_tasks"]
    assert set(steps) == {"get_data", "preprocessing", "training", "select_best"}
    assert all(task(backend, task_id)["status"] == "completed" for task_id in steps.values())
    assert set(summary["step_seconds"]) == set(steps)
    assert summary["rows_per_split"].keys() == {"train", "val", "test"}
    assert sum(summary["rows_per_split"].values()) == global_config.SAMPLE_ROWS
    for section in ("validation", "test", "baseline_validation", "baseline_test"):
        assert {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"} <= summary[section].keys()
    assert summary["test"]["accuracy"] > 0.9

    # one model per seed, all from the training task; the winner is the best on validation, published and
    # the only one tagged
    candidates = summary["candidates"]
    assert sorted(c["seed"] for c in candidates) == [0, 1]
    assert {c["task_id"] for c in candidates} == {steps["training"]} == {summary["winner"]["task_id"]}
    assert summary["winner"]["model_id"] == candidates[0]["model_id"]
    assert candidates[0]["val_pr_auc"] == max(c["val_pr_auc"] for c in candidates)
    models = {
        c["model_id"]: backend.call("models.get_by_id", {"model": c["model_id"]})["model"] for c in candidates
    }
    winner = models.pop(summary["winner"]["model_id"])
    assert winner["ready"] is True and global_config.WINNER_TAG in winner["tags"]
    assert winner["uri"].startswith(backend.files_url)
    assert len({m["uri"] for m in [winner, *models.values()]}) == len(
        candidates
    )  # no upload overwrote another
    assert f"seed-{summary['winner']['seed']}" in winner["tags"]
    main_project = backend.call("projects.get_all", {"name": f"^{global_config.PROJECT_NAME}$"})["projects"]
    assert winner["project"] == main_project[0]["id"]  # where serving looks for the published model
    assert all(global_config.WINNER_TAG not in m["tags"] and not m["ready"] for m in models.values())

    # the release contract travels with the training task: its feature_spec names the served threshold
    spec = artifact_json(backend, task(backend, steps["training"]), contract.FEATURE_SPEC_ARTIFACT)
    assert spec[contract.THRESHOLD_ATTRIBUTE] == schema.HAZARD_THRESHOLD
    assert contract.from_feature_spec(spec).threshold == schema.HAZARD_THRESHOLD

    # the training task carries every seed's plots, beside the metrics tables
    plots = backend.call("events.get_task_plots", {"task": steps["training"], "iters": 1})["plots"]
    expected = {"feature importance", "confusion matrix", "ROC curve", "precision-recall curve", "metrics"}
    expected |= {"model vs CNEOS rule"} | {f"model vs CNEOS rule per split, seed {seed}" for seed in (0, 1)}
    reported = {(plot["metric"], plot["variant"]) for plot in plots}
    assert expected <= {metric for metric, _ in reported}
    assert {("confusion matrix", f"test, seed {seed}") for seed in (0, 1)} <= reported

    # dataset lineage: the preprocessed version is a child of the raw one
    raw_id = output(task(backend, steps["get_data"]), "raw_dataset_id")
    preprocessed_id = output(task(backend, steps["preprocessing"]), "preprocessed_dataset_id")
    datasets = backend.run(FLOWS / "inspect_datasets.py", preprocessed_id, extra_env=project_env).last_json()
    assert datasets["graph"] == {raw_id: [], preprocessed_id: [raw_id]}
    assert {
        "split/train.parquet",
        "split/val.parquet",
        "split/test.parquet",
        "split/feature_spec.json",
    } <= set(datasets["files"])

    # each version's files reached the next step on this machine from the handoff folder, not a download
    handoff = Path(project_env[dataset_handoff.ROOT_ENV])
    assert (handoff / raw_id / RAW_FILE).is_file() and (handoff / preprocessed_id / SPLIT_DIR).is_dir()
    downloaded = [path.name for path in (backend.workdir / "clearml-cache").rglob("ds_*")]
    assert not [name for name in downloaded if raw_id in name or preprocessed_id in name], downloaded

    # same content again: get data reuses the version instead of registering a new one
    rerun = backend.run(ROOT / "get_data.py", extra_env=project_env)
    assert f"reusing dataset {global_config.RAW_DATASET_NAME} version {raw_id}" in rerun.stdout
    backend.log.assert_clean(mark)  # every call of the run matched the SDK's schema classes

    # every page link the SDK printed opens in the web view; the run's page shows each step completed
    urls = printed_urls(result.stdout + result.stderr)
    assert any("/pipelines/" in url for url in urls) and any("/datasets/simple/" in url for url in urls)
    pages = {url: requests.get(url, timeout=30) for url in urls}
    assert {url: reply.status_code for url, reply in pages.items()} == dict.fromkeys(urls, 200)
    run_page = next(reply.text for url, reply in pages.items() if "/pipelines/" in url)
    for name in steps:
        assert f">{name}</text>" in run_page and f"{name}</a>" in run_page
    assert run_page.count("status-completed") >= len(steps) + 1


def test_failing_step_fails_the_pipeline_with_a_clear_message(
    backend: BackendHarness, project_env: dict[str, str]
) -> None:
    result = run_pipeline(backend, project_env, "--seeds", "1", "--query-date", "1990-01-01", check=False)
    assert result.returncode == 1, result.describe()
    assert "step 'get_data': failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(project_env["ASTEROID_RUNS_DIR"]) / "latest" / "summary.json").exists()


def test_bad_arguments_are_rejected_before_any_work(
    backend: BackendHarness, project_env: dict[str, str]
) -> None:
    bad_date = run_pipeline(backend, project_env, "--query-date", "2016-13-45", check=False)
    assert bad_date.returncode == 1 and "query_date" in bad_date.stderr and "Traceback" not in bad_date.stderr
    bad_seeds = run_pipeline(backend, project_env, "--seeds", "0", check=False)
    assert bad_seeds.returncode == 1 and "seeds" in bad_seeds.stderr and "Traceback" not in bad_seeds.stderr


def test_pipeline_steps_run_on_a_clearml_agent(
    backend: BackendHarness, project_env: dict[str, str], tmp_path: Path
) -> None:
    # README: .venv/bin/python pipeline.py --queue default  (this test's queue is pipeline-agents)
    # README: .venv/bin/clearml-agent daemon --queue default --foreground --create-queue  (start_agent runs
    # it as python -m clearml_agent, the console script's module, with AGENT_ENV:)
    # README: export CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL=1
    queue = "pipeline-agents"
    mark = backend.log.mark()
    env = {**project_env, **STANDALONE_CODE}
    agent = start_agent(backend, queue, tmp_path / "agent.log", extra_env=env)
    try:
        result = run_pipeline(backend, env, "--seeds", "1", "--queue", queue, check=False)
    finally:
        terminate_group(agent)
    assert result.returncode == 0, result.describe() + (tmp_path / "agent.log").read_text()[-3000:]
    steps = summary_of(project_env)["step_tasks"]
    for name, task_id in steps.items():
        doc = task(backend, task_id)
        assert doc["status"] == "completed", name
        assert doc["execution"]["queue"], f"step {name} was not enqueued"
    # exactly one model carries the winner tag: this run's (winners of other runs in this module lose it)
    tagged = backend.call("models.get_all", {"tags": [global_config.WINNER_TAG]})["models"]
    assert [m["id"] for m in tagged] == [summary_of(project_env)["winner"]["model_id"]]
    # the agent speaks older API versions; what the backend answered it still matches the SDK's schema
    backend.log.assert_clean(mark, direction="response")


@pytest.mark.skipif(
    not global_config.SHARED_NASA_CSV.exists(), reason="NASA's table (../shared/data/nasa.csv) absent"
)
def test_pipeline_on_nasa_table_meets_the_quality_bar(
    backend: BackendHarness, project_env: dict[str, str]
) -> None:
    """The published winner of a default run: the quality target, the rule's recall, and the very model the
    in-process quality tests (tests/model/test_nasa.py) judge."""
    # README: NEO_SOURCE_CSV=/path/to/nasa.csv .venv/bin/python pipeline.py
    env = {**project_env, "NEO_SOURCE_CSV": str(global_config.SHARED_NASA_CSV)}
    run_pipeline(backend, env, "--seeds", "3")
    summary = summary_of(env)
    assert sum(summary["rows_per_split"].values()) == 4687
    test, rule = summary["test"], summary["baseline_test"]
    assert test["accuracy"] >= 0.99 and test["recall"] >= 0.97, test
    assert test["recall"] >= rule["recall"], (test, rule)
    assert rule["accuracy"] > 0.98  # the CNEOS rule is reported beside the model

    frame_features, labels, groups = features.build_features(pd.read_csv(global_config.SHARED_NASA_CSV))
    split = splitting.group_split(frame_features, labels, groups, seed=PREPROCESSING_DEFAULTS["split_seed"])
    in_process = comparison.pipeline_winner(split, n_models=3)
    assert summary["winner"]["seed"] == in_process.seed
    probabilities = train.predict_proba(in_process.result.booster, split.test.features)
    expected = evaluate.classification_metrics(split.test.labels, probabilities)
    assert test["accuracy"] == pytest.approx(expected["accuracy"])
    assert test["f1"] == pytest.approx(expected["f1"])
