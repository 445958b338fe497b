"""The real clearml SDK and clearml-serving CLI against the embedded backend, each in fresh subprocesses.

Every test also checks that all API calls it caused match the SDK's own schema classes and that the SDK
called no endpoint the backend does not implement.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.backend.backend_harness import BackendHarness, Mark

FLOWS = Path(__file__).parent / "flows"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def stored_object(backend: BackendHarness, url: str) -> Path:
    """Where the file server keeps the object behind ``url``."""
    assert url.startswith(backend.files_url + "/"), f"{url} is not on the file server {backend.files_url}"
    return backend.files_root / unquote(urlsplit(url).path).lstrip("/")


def test_task_reports_round_trip_through_a_fresh_process(backend: BackendHarness, mark: Mark) -> None:
    project, name = "flow a", "training run"
    written = backend.run(FLOWS / "flow_a_write.py", project, name).last_json()
    assert stored_object(backend, written["model_url"]).is_file()

    read = backend.run(FLOWS / "flow_a_read.py", written["task_id"], project, name).last_json()
    losses = written["losses"]
    assert read["status"] == "completed"
    assert read["by_name_id"] == written["task_id"]
    assert read["scalars"]["loss"]["train"]["x"] == list(range(len(losses)))
    assert read["scalars"]["loss"]["train"]["y"] == losses
    expected_last = {"last": losses[-1], "min": min(losses), "max": max(losses)}
    assert read["last_metrics"]["loss"]["train"] == expected_last
    assert read["parameters"] == {f"General/{k}": str(v) for k, v in written["connected"].items()}
    assert read["artifact"]["frame"] == written["frame"]
    assert stored_object(backend, read["artifact"]["url"]).is_file()
    assert read["model"]["ids"] == [written["model_id"]]
    assert read["model"]["url"] == written["model_url"]
    assert read["model"]["sha256"] == written["model_sha256"]
    assert written["marker"] in read["console"]
    assert {"curve", "importance"} <= set(read["plot_metrics"])
    backend.log.assert_clean(mark)


def test_dataset_versions_lineage_and_listing(backend: BackendHarness, mark: Mark) -> None:
    result = backend.run(FLOWS / "flow_b_datasets.py", "flow b").last_json()
    parent, child = result["parent_id"], result["child_id"]
    assert result["fetched_id"] == parent
    assert result["fetched_files"] == result["parent_files"]
    assert result["derived_id"] == child
    assert result["derived_graph"] == {parent: [], child: [parent]}
    everything = {**result["parent_files"], **result["child_files"]}
    assert result["derived_list"] == sorted(everything)
    assert result["derived_local"] == everything
    assert result["listed"] == sorted([parent, child])
    backend.log.assert_clean(mark)


def test_pipeline_runs_cloned_steps_and_a_function_step(backend: BackendHarness, mark: Mark) -> None:
    result = backend.run(FLOWS / "flow_c_pipeline.py", "flow c").last_json()
    nodes = result["nodes"]
    assert result["node_names"] == ["combine", "one", "two"]
    assert sorted(nodes) == ["combine", "one", "two"]
    assert {name: node["status"] for name, node in nodes.items()} == dict.fromkeys(nodes, "completed")
    assert result["pipeline_status"] == "completed"
    cloned = {nodes["one"]["id"], nodes["two"]["id"]}
    assert cloned.isdisjoint(result["base_ids"].values()), "steps must run clones, not the base tasks"
    assert {node["parent"] for node in nodes.values()} == {result["pipeline_id"]}
    assert nodes["one"]["parameters"] == {"General/value": "5", "General/factor": "2"}
    # step two's value is a reference to step one's parameter, resolved by the controller
    assert nodes["two"]["parameters"] == {"General/value": "5", "General/factor": "3"}
    assert nodes["one"]["artifacts"] == nodes["two"]["artifacts"] == ["result"]
    assert nodes["combine"]["parameters"]["kwargs/first_id"] == nodes["one"]["id"]
    assert nodes["combine"]["parameters"]["kwargs/second_id"] == nodes["two"]["id"]
    assert result["total"] == {"total": 5 * 2 + 5 * 3 + 0.5}
    backend.log.assert_clean(mark)


# --- clearml-serving CLI -----------------------------------------------------------------------------------


def serving(backend: BackendHarness, *args: str) -> str:
    """Run the clearml-serving CLI (its ``__main__`` module, as the console script does); its stdout."""
    return backend.run_command([sys.executable, "-m", "clearml_serving", *args]).stdout


def json_after(text: str, heading: str) -> Any:
    """The JSON document the CLI prints after a heading line such as ``Endpoints:``."""
    assert heading in text, f"{heading!r} not in CLI output:\n{text}"
    start = text.index("{", text.index(heading))
    return json.JSONDecoder().raw_decode(text, start)[0]


def test_serving_cli_registers_endpoints_metrics_and_monitoring(backend: BackendHarness, mark: Mark) -> None:
    project, model_name = "flow d", "asteroid model"
    model = backend.run(FLOWS / "flow_d_model.py", project, model_name).last_json()
    preprocess = Path(shutil.copy(FLOWS / "serving_preprocess.py", backend.workdir / "serving_preprocess.py"))
    created = serving(backend, "create", "--name", "flow d service", "--project", project)
    assert "created: id=" in created, created
    service_id = created.split("created: id=")[-1].split()[0]
    source = ["--engine=xgboost", f"--name={model_name}", f"--project={project}"]

    def cli(*args: str) -> str:
        return serving(backend, f"--id={service_id}", *args)

    cli("model", "add", *source, "--endpoint=asteroid", f"--preprocess={preprocess}")
    cli("metrics", "add", "--endpoint=asteroid", "--variable-scalar", "x=0,1,2")
    cli("model", "auto-update", *source, "--endpoint=asteroid_auto", "--max-versions=2")
    listing, metrics = cli("model", "list"), cli("metrics", "list")

    endpoint = json_after(listing, "Endpoints:")["asteroid"]
    assert (endpoint["engine_type"], endpoint["model_id"]) == ("xgboost", model["model_id"])
    monitor = json_after(listing, "Model Monitoring:")["asteroid_auto"]
    assert (monitor["monitor_name"], monitor["monitor_project"]) == (model_name, project)
    assert monitor["max_versions"] == 2
    assert json_after(metrics, "Logged Metrics:")["asteroid"]["metrics"]["x"]["buckets"] == [0.0, 1.0, 2.0]
    assert_preprocess_uploaded(backend, service_id, endpoint["preprocess_artifact"], preprocess.read_bytes())
    backend.log.assert_clean(mark)


def assert_preprocess_uploaded(backend: BackendHarness, service_id: str, key: str, content: bytes) -> None:
    task = backend.call("tasks.get_by_id", {"task": service_id})["task"]
    artifacts = {a["key"]: a for a in task["execution"]["artifacts"]}
    assert key in artifacts, f"serving task has artifacts {sorted(artifacts)}, not {key}"
    assert stored_object(backend, artifacts[key]["uri"]).read_bytes() == content
