"""The project's pipeline on generated sample data, then every page link the SDK printed, opened in headless
Chromium and checked as a person would: the experiment's name and status, the scalar charts with every
reported series, the training task's confusion-matrix and ROC plots drawn by plotly, the preprocessed
dataset's parent version, every pipeline step `completed`. Screenshots go to runs/webview/pipeline/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import global_config
from tests.backend.backend_harness import BackendHarness
from tests.project_env import isolated_project
from tests.webview.browser import RUNS, Dom, assert_not_blank, read_dom, render
from tests.webview.populate import printed_urls

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHOTS = RUNS / "pipeline"


@dataclass(frozen=True)
class PipelineRun:
    """What one pipeline run printed and recorded."""

    urls: list[str]
    steps: dict[str, str]  # step name -> task id
    project_env: dict[str, str]


@pytest.fixture(scope="module")
def pipeline_run(backend: BackendHarness, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    env = isolated_project(tmp_path_factory.mktemp("pipeline-project"))
    result = backend.run(global_config.ROOT / "pipeline.py", "--seeds", "2", extra_env=env, timeout=600)
    summary = json.loads((Path(env["ASTEROID_RUNS_DIR"]) / "latest" / "summary.json").read_text())
    return PipelineRun(printed_urls(result.stdout + result.stderr), summary["step_tasks"], env)


@pytest.fixture(scope="module")
def browser_profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("chromium-profile")


def task(backend: BackendHarness, task_id: str) -> dict[str, Any]:
    return backend.call("tasks.get_by_id", {"task": task_id})["task"]


def task_id_of(url: str) -> str:
    return urlsplit(url).path.split("/experiments/")[1].split("/")[0]


def kind_of(url: str) -> str:
    return urlsplit(url).path.split("/")[1]


def open_page(url: str, name: str, profile: Path) -> Dom:
    """The rendered page, its screenshot saved as ``<name>.png`` and checked not to be blank; the browser
    refused nothing (Content-Security-Policy) and no script failed."""
    shot = SHOTS / f"{name}.png"
    rendered = render(url, profile, screenshot=shot)
    assert_not_blank(shot)
    assert "Content Security Policy" not in rendered.log and "Uncaught" not in rendered.log, rendered.log
    dom = read_dom(rendered.dom)
    assert "Traceback" not in dom.text
    return dom


def experiment_url(backend: BackendHarness, doc: dict[str, Any], tab: str = "") -> str:
    return f"{backend.api_url}/projects/{doc['project']}/experiments/{doc['id']}{tab}"


def test_the_run_printed_a_page_of_every_kind(backend: BackendHarness, pipeline_run: PipelineRun) -> None:
    urls = pipeline_run.urls
    assert {kind_of(url) for url in urls} == {"projects", "pipelines", "datasets"}, urls
    assert all(url.startswith(backend.api_url + "/") for url in urls)
    printed_tasks = {task_id_of(url) for url in urls}
    assert set(pipeline_run.steps.values()) <= printed_tasks  # every step printed its results page


def test_every_printed_page_shows_its_experiments_name_and_status(
    backend: BackendHarness, pipeline_run: PipelineRun, browser_profile: Path
) -> None:
    for index, url in enumerate(pipeline_run.urls):
        shown = task(backend, task_id_of(url))
        dom = open_page(url, f"{index:02d}-{kind_of(url)}-{shown['id'][:8]}", browser_profile)
        assert shown["name"] in dom.text, url
        assert shown["status"] == "completed" and "completed" in dom.text, url


def test_scalar_charts_have_every_reported_series(
    backend: BackendHarness, pipeline_run: PipelineRun, browser_profile: Path
) -> None:
    checked = 0
    for name, task_id in pipeline_run.steps.items():
        reported = backend.call("events.scalar_metrics_iter_histogram", {"task": task_id})
        if not reported:
            continue
        doc = task(backend, task_id)
        url = experiment_url(backend, doc, "/output/metrics/scalar")
        dom = open_page(url, f"scalars-{name}", browser_profile)
        assert {chart.title for chart in dom.charts} == set(reported), name
        for chart in dom.charts:
            variants = set(reported[chart.title])
            assert chart.svgs and chart.traces >= len(variants), (name, chart)
            assert variants <= set(chart.legend), (name, chart)
        checked += 1
    assert checked, "no step reported scalars"


def test_training_plots_show_the_confusion_matrix_and_roc_curve(
    backend: BackendHarness, pipeline_run: PipelineRun, browser_profile: Path
) -> None:
    doc = task(backend, pipeline_run.steps["training"])
    dom = open_page(experiment_url(backend, doc, "/output/metrics/plots"), "plots-training", browser_profile)
    assert doc["name"] in dom.text
    matrices, curves = dom.charts_titled("confusion matrix /"), dom.charts_titled("ROC curve /")
    assert matrices and curves, [chart.title for chart in dom.charts]
    assert all(chart.svgs and chart.heatmaps for chart in matrices), matrices  # plotly's heatmap image
    assert all(chart.svgs and chart.traces for chart in curves), curves
    assert all(chart.svgs for chart in dom.charts)  # every reported plot was drawn


def test_the_preprocessed_dataset_page_shows_its_parent_version(
    backend: BackendHarness, pipeline_run: PipelineRun, browser_profile: Path
) -> None:
    outputs = {
        step: task(backend, pipeline_run.steps[step])["hyperparams"]["Outputs"]
        for step in ("get_data", "preprocessing")
    }
    raw = task(backend, outputs["get_data"]["raw_dataset_id"]["value"])
    preprocessed_id = outputs["preprocessing"]["preprocessed_dataset_id"]["value"]
    url = next(u for u in pipeline_run.urls if kind_of(u) == "datasets" and task_id_of(u) == preprocessed_id)
    dom = open_page(url, "dataset-preprocessed", browser_profile)
    assert dom.row_with("Parents")[1] == raw["name"]
    assert raw["name"] in dom.text and "split/train.parquet" in dom.text


def test_the_pipeline_page_shows_every_step_completed(
    backend: BackendHarness, pipeline_run: PipelineRun, browser_profile: Path
) -> None:
    url = next(u for u in pipeline_run.urls if kind_of(u) == "pipelines")
    controller = task(backend, task_id_of(url))
    dom = open_page(url, "pipeline", browser_profile)
    assert controller["name"] in dom.text and dom.row_with("Status")[1] == "completed"
    for name, task_id in pipeline_run.steps.items():
        row = dom.row_with(name)
        assert row[1] == task(backend, task_id)["name"] and row[2] == "completed", row
