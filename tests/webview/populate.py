"""Real SDK flows against one backend, for the web view tests: a task with reports, two dataset versions, a
pipeline run, a model, a clearml-serving service and a task with debug samples. Collects every web page URL
the SDK printed."""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.backend.backend_harness import BackendHarness

FLOWS = Path(__file__).parents[1] / "backend" / "flows"
WEB_FLOWS = Path(__file__).parent / "flows"
PRINTED_URL = re.compile(r"ClearML (?:results|pipeline|dataset) page: (\S+)")


@dataclass
class Populated:
    """Ids of what the flows created and the web page URLs the SDK printed on the way."""

    task: dict[str, Any]
    datasets: dict[str, Any]
    pipeline: dict[str, Any]
    model: dict[str, Any]
    service_id: str
    printed_urls: list[str] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)


def printed_urls(output: str) -> list[str]:
    return PRINTED_URL.findall(output)


def populate(backend: BackendHarness) -> Populated:
    urls: list[str] = []

    def run(script: str | Path, *args: str) -> Any:
        result = backend.run(FLOWS / script, *args)
        urls.extend(printed_urls(result.stdout + result.stderr))
        return result.last_json()

    task = run("flow_a_write.py", "web a", "reported <b>task</b>")
    datasets = run("flow_b_datasets.py", "web b")
    pipeline = run("flow_c_pipeline.py", "web c")
    model = run("flow_d_model.py", "web d", "web model")
    service_id = _serving(backend, "web d", "web model")
    samples = run(WEB_FLOWS / "flow_debug_samples.py", "web e")
    return Populated(task, datasets, pipeline, model, service_id, urls, samples)


def _serving(backend: BackendHarness, project: str, model_name: str) -> str:
    preprocess = Path(shutil.copy(FLOWS / "serving_preprocess.py", backend.workdir / "serving_preprocess.py"))

    def cli(*args: str) -> str:
        argv = [sys.executable, "-m", "clearml_serving", *args]
        return backend.run_command(argv).stdout

    created = cli("create", "--name", "web service", "--project", project)
    service_id = created.split("created: id=")[-1].split()[0]
    source = ["--engine=xgboost", f"--name={model_name}", f"--project={project}"]
    cli(f"--id={service_id}", "model", "add", *source, "--endpoint=asteroid", f"--preprocess={preprocess}")
    cli(f"--id={service_id}", "metrics", "add", "--endpoint=asteroid", "--variable-scalar", "x=0,1,2")
    cli(f"--id={service_id}", "model", "auto-update", *source, "--endpoint=asteroid_auto", "--max-versions=2")
    cli(
        f"--id={service_id}",
        "model",
        "canary",
        "--endpoint=asteroid_canary",
        "--weights",
        "0.1",
        "0.9",
        "--input-endpoint-prefix=asteroid_auto",
    )
    return service_id
