"""End to end: pipeline on sample data → `serve.py` (deploy with clearml-serving's API, start the local stack
on free ports) → HTTP requests → the same probabilities as the model loaded offline, 4xx for bad input,
statistics through the Kafka-protocol broker, and a new winner served without restarting anything."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests

import global_config
import serving_local.api
from asteroid import feature_rows, features, schema, train
from asteroid.serving.traffic import arrow_ipc
from tests.backend.backend_harness import BackendHarness, wait_for
from tests.backend.conftest import backend  # noqa: F401
from tests.net import free_port
from tests.project_env import isolated_project

ROOT = global_config.ROOT
pytestmark = [pytest.mark.integration, pytest.mark.slow]
SYNC_DEADLINE_S = 90  # the stack re-reads the service every POLL_SECONDS; loading a new version adds a little
POLL_SECONDS = 2


@dataclass
class Deployment:
    backend: BackendHarness
    env: dict[str, str]
    serve_url: str
    request_metrics_url: str
    statistics_url: str
    service_id: str
    summary: dict[str, Any]

    @property
    def endpoint_url(self) -> str:
        return f"{self.serve_url}/{global_config.SERVING_ENDPOINT}"

    def post(self, body: Any, path: str | None = None, **kwargs: Any) -> requests.Response:
        url = f"{self.serve_url}/{path}" if path else self.endpoint_url
        if body is not None and "data" not in kwargs:
            kwargs["json"] = body
        return requests.post(url, timeout=30, **kwargs)


def run(harness: BackendHarness, env: dict[str, str], script: str, *args: str, check: bool = True) -> Any:
    return harness.run(ROOT / script, *args, extra_env=env, timeout=600, check=check)


def latest_summary(env: dict[str, str]) -> dict[str, Any]:
    return json.loads((Path(env["ASTEROID_RUNS_DIR"]) / "latest" / "summary.json").read_text())


@pytest.fixture(scope="module")
def deployment(backend: BackendHarness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:  # noqa: F811
    root = tmp_path_factory.mktemp("serving")
    env = {
        **isolated_project(root),
        "ASTEROID_SAMPLE_ROWS": "2000",
        "SERVING_LOCAL_DATA_DIR": str(root / "stack"),
        "SERVING_LOCAL_PORT": str(free_port()),
        "SERVING_LOCAL_METRICS_PORT": str(free_port()),
        "SERVING_LOCAL_BROKER_PORT": str(free_port()),
        "SERVING_LOCAL_POLL_SECONDS": str(POLL_SECONDS),
        "SERVING_LOCAL_MONITORING": "off",  # Prometheus and Alertmanager: tests/monitoring/test_drift_e2e.py
    }
    run(backend, env, "pipeline.py", "--seeds", "1")
    try:
        # README: make serve  (the Makefile's serve target is python serve.py)
        result = run(backend, env, "serve.py")
        state = serving_local.api.running_stack(root / "stack")
        assert state is not None, result.describe()
        yield Deployment(
            backend,
            env,
            state.serve_url,
            state.request_metrics_url,
            state.statistics_url,
            state.service_id,
            latest_summary(env),
        )
        assert "rolled out as /serve/asteroid/1" in result.stdout, result.describe()
    finally:
        stop = [sys.executable, "-m", "serving_local", "stop", "--data-dir", str(root / "stack")]
        subprocess.run(stop, env=backend.env, capture_output=True, timeout=120, check=False)


def offline_model(deployment: Deployment, model_id: str) -> Any:
    """The model file as the training step uploaded it, read straight from the file server's storage."""
    uri = deployment.backend.call("models.get_by_id", {"model": model_id})["model"]["uri"]
    relative = unquote(uri[len(deployment.backend.files_url) :]).lstrip("/")
    return train.load_model(deployment.backend.files_root / relative)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(json.dumps(frame.to_dict(orient="records")))


def sample_rows(deployment: Deployment) -> pd.DataFrame:
    return pd.read_csv(
        Path(deployment.env["ASTEROID_DATA_DIR"]) / "sample_asteroids.csv", dtype=schema.dtypes()
    )


def served_probabilities(
    deployment: Deployment, frame: pd.DataFrame, batch: int = 1000, path: str | None = None
) -> np.ndarray:
    rows = records(frame)
    answers = []
    for start in range(0, len(rows), batch):
        reply = deployment.post({"rows": rows[start : start + batch]}, path=path)
        assert reply.status_code == 200, reply.text
        answers += [prediction["probability"] for prediction in reply.json()["predictions"]]
    return np.array(answers)


def metric_values(url: str, name: str) -> dict[str, float]:
    """Samples of one metric family in a Prometheus text page: label text -> value."""
    values = {}
    for line in requests.get(url, timeout=10).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key[len(name) :]] = float(value)
    return values


def test_served_probabilities_equal_the_offline_model(deployment: Deployment) -> None:
    winner = deployment.summary["winner"]["model_id"]
    frame = sample_rows(deployment).head(500)
    expected = train.predict_proba(offline_model(deployment, winner), features.build_features(frame)[0])
    served = served_probabilities(deployment, frame, batch=100, path="asteroid/1")
    np.testing.assert_array_equal(served, expected)
    one = deployment.post(records(frame.head(1))[0], path="asteroid/1")
    assert one.status_code == 200
    assert one.json()["probability"] == expected[0]
    assert one.json()["model"] == {"id": winner, "version": "1", "endpoint": "asteroid/1"}


ARROW = "application/vnd.apache.arrow.stream"


def test_arrow_batches_over_http_answer_as_json_batches_in_the_format_accept_asks(
    deployment: Deployment,
) -> None:
    rows = records(sample_rows(deployment).head(300))
    body = arrow_ipc(pa.Table.from_pylist(rows))
    expected = deployment.post({"rows": rows}, path="asteroid/1").json()["predictions"]
    as_json = deployment.post(None, path="asteroid/1", data=body, headers={"Content-Type": ARROW})
    assert as_json.status_code == 200, as_json.text
    assert [p["probability"] for p in as_json.json()["predictions"]] == [p["probability"] for p in expected]
    as_arrow = deployment.post(
        None, path="asteroid/1", data=body, headers={"Content-Type": ARROW, "Accept": ARROW}
    )
    assert as_arrow.status_code == 200 and as_arrow.headers["content-type"] == ARROW, as_arrow.text[:300]
    table = pa.ipc.open_stream(as_arrow.content).read_all()
    assert table.column("probability").to_pylist() == [p["probability"] for p in expected]
    assert table.column("hazardous").to_pylist() == [p["hazardous"] for p in expected]
    # the same bad rows get the same 422 as JSON; a malformed stream a 422 naming it; the app keeps serving
    bad = [{**row, "Eccentricity": 1.2} for row in rows[:3]]
    json_error = deployment.post({"rows": bad}, path="asteroid/1")
    arrow_error = deployment.post(
        None, path="asteroid/1", data=arrow_ipc(pa.Table.from_pylist(bad)), headers={"Content-Type": ARROW}
    )
    assert arrow_error.status_code == json_error.status_code == 422
    assert arrow_error.json() == json_error.json()
    for malformed in (body[: len(body) // 2], b"\xff\xff\xff\xff" + bytes(range(256)), b'{"rows": []}'):
        reply = deployment.post(None, path="asteroid/1", data=malformed, headers={"Content-Type": ARROW})
        assert reply.status_code == 422 and "Arrow IPC stream" in reply.text, reply.text[:300]
    again = deployment.post(None, path="asteroid/1", data=body, headers={"Content-Type": ARROW})
    assert again.status_code == 200


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("missing field", {"json": {"Absolute Magnitude": 20.0}}, 422, "field 'Est Dia in KM(min)' is missing"),
    ("unknown field", {"json": {"rows": [{"colour": "red"}]}}, 422, "unknown field 'colour'"),
    ("string", {"json": {"rows": [{"Eccentricity": "x"}]}}, 422, "field 'Eccentricity' must be a number"),
    (
        "NaN",
        {"data": '{"Eccentricity": NaN}', "headers": {"Content-Type": "application/json"}},
        422,
        "finite",
    ),
    ("Infinity", {"data": b'{"rows": [{"Eccentricity": Infinity}]}', "headers": {}}, 422, "Infinity"),
    ("null", {"json": {"rows": [None]}}, 422, "must be a JSON object of the asteroid's fields, got null"),
    ("empty body", {"data": b""}, 422, "the request body is empty"),
    ("non-JSON", {"data": b"hello", "headers": {"Content-Type": "application/json"}}, 422, "JSON decode"),
    ("array of non-objects", {"json": {"rows": [1, 2]}}, 422, "row 1: must be a JSON object"),
    ("bare array as JSON", {"json": [{"a": 1}]}, 422, "valid dictionary"),
    (
        "huge batch",
        {"json": {"rows": [{}] * (feature_rows.MAX_BATCH_ROWS + 1)}},
        422,
        f"at most {feature_rows.MAX_BATCH_ROWS} are allowed",
    ),
    ("not UTF-8", {"data": b"\xff\xfe", "headers": {"Content-Type": "text/plain"}}, 422, "not UTF-8"),
]


def test_bad_requests_get_4xx_naming_the_problem_and_the_app_keeps_serving(deployment: Deployment) -> None:
    for name, kwargs, status, text in BAD_REQUESTS:
        reply = deployment.post(None, **kwargs)
        assert reply.status_code == status, f"{name}: {reply.status_code} {reply.text[:300]}"
        assert text in reply.text, f"{name}: {reply.text[:300]}"
    unknown = deployment.post({"rows": []}, path="no-such-endpoint")
    assert unknown.status_code == 404 and "no-such-endpoint" in unknown.text
    good = deployment.post(records(sample_rows(deployment).head(1))[0])
    assert good.status_code == 200, good.text
    # the inference-side metrics count every answer by endpoint and code; 404s share one label
    counts = metric_values(deployment.request_metrics_url, "clearml_serving_requests_total")
    assert counts['{code="422",endpoint="asteroid"}'] >= len(BAD_REQUESTS)
    assert counts['{code="404",endpoint="_unknown"}'] >= 1
    assert counts['{code="200",endpoint="asteroid"}'] >= 1


def test_statistics_reach_prometheus_through_the_broker(deployment: Deployment) -> None:
    family = "asteroid_1:absolute_magnitude_sum"
    before = max(metric_values(deployment.statistics_url, family).values(), default=0.0)
    frame = sample_rows(deployment).head(200)
    served_probabilities(deployment, frame, batch=50, path="asteroid/1")

    def observed() -> float:
        return max(metric_values(deployment.statistics_url, family).values(), default=0.0)

    wait_for(lambda: observed() >= before + 200, "200 feature observations on the statistics controller", 60)
    # buckets are the training data's edges and sum to the observations (none is NaN or out of type)
    buckets = metric_values(deployment.statistics_url, "asteroid_1:absolute_magnitude_bucket")
    assert sum(buckets.values()) == observed()
    assert len(buckets) >= 5
    probability = metric_values(deployment.statistics_url, "asteroid_1:probability_bucket")
    assert '{le="0.5"}' in probability
    assert metric_values(deployment.statistics_url, "asteroid_1:_count_total")[""] >= 4


def test_deploying_again_changes_nothing(deployment: Deployment) -> None:
    def configuration() -> list[Any]:
        task = deployment.backend.call("tasks.get_by_id", {"task": deployment.service_id})["task"]
        return sorted((name, value.get("value")) for name, value in task["configuration"].items())

    before = configuration()
    again = run(deployment.backend, deployment.env, "serve.py", "--deploy-only")
    assert "served as /serve/asteroid/1" in again.stdout and "$ clearml-serving" not in again.stdout
    assert configuration() == before


def test_the_example_single_file_hook_command_still_works(deployment: Deployment) -> None:
    # README: clearml-serving --id <service id> model add --engine xgboost --endpoint asteroid_example --preprocess preprocess_serving.py --project "Asteroid Hazard" --name asteroid-xgboost --tags pipeline_winner --published  # noqa: E501
    command = [
        sys.executable, "-m", "clearml_serving", "--id", deployment.service_id, "model", "add",
        "--engine", "xgboost", "--endpoint", "asteroid_example",
        "--preprocess", str(ROOT / "preprocess_serving.py"),
        "--project", global_config.PROJECT_NAME, "--name", global_config.MODEL_NAME,
        "--tags", global_config.WINNER_TAG, "--published",
    ]  # fmt: skip
    deployment.backend.run_command(command, extra_env=deployment.env, timeout=120)
    row = records(sample_rows(deployment).head(1))[0]

    def answered() -> bool:
        return deployment.post(row, path="asteroid_example").status_code == 200

    wait_for(answered, "the single-file hook endpoint", SYNC_DEADLINE_S, interval_s=0.5)


def test_a_new_winner_is_served_without_restarting_anything(deployment: Deployment) -> None:
    data_dir = Path(deployment.env["SERVING_LOCAL_DATA_DIR"])
    stack_pid = serving_local.api.running_stack(data_dir).pid
    run(deployment.backend, deployment.env, "pipeline.py", "--seeds", "1", "--split-seed", "7")
    summary = latest_summary(deployment.env)
    new_winner = summary["winner"]["model_id"]
    assert new_winner != deployment.summary["winner"]["model_id"]
    assert summary["serving"] == {"service_id": deployment.service_id, "endpoint": "asteroid/2"}
    # the rollout regenerated the monitoring rules for the new version's training data
    rules = (serving_local.api.rules_dir(data_dir) / "asteroid.yml").read_text()
    assert "asteroid_2[:_]absolute_magnitude_bucket" in rules and "asteroid_1[" not in rules
    row = records(sample_rows(deployment).head(1))[0]

    def serves_new_winner() -> bool:
        reply = deployment.post(row)
        return reply.status_code == 200 and reply.json()["model"]["id"] == new_winner

    wait_for(
        serves_new_winner, "/serve/asteroid to answer with the new winner", SYNC_DEADLINE_S, interval_s=0.2
    )
    # how long after the rollout (which ends inside the selection step) the new version answered
    selection = deployment.backend.call("tasks.get_by_id", {"task": summary["step_tasks"]["select_best"]})[
        "task"
    ]
    rolled_out = dt.datetime.fromisoformat(selection["completed"]).timestamp()
    print(f"new winner served {time.time() - rolled_out:.1f} s after its selection step completed")
    assert (
        deployment.post(row, path="asteroid/1").json()["model"]["version"] == "1"
    )  # the older version stays
    assert serving_local.api.running_stack(data_dir).pid == stack_pid  # nothing was restarted


@pytest.mark.skipif(
    not global_config.SHARED_NASA_CSV.exists(), reason="NASA's table (../shared/data/nasa.csv) absent"
)
def test_every_nasa_row_is_served_as_the_offline_model_predicts(deployment: Deployment) -> None:
    # Each worker re-reads the service on its own clock, so right after a new winner (the test above) one
    # batch may come from the older version: every batch is compared with the model that answered it.
    frame = pd.read_csv(global_config.SHARED_NASA_CSV, dtype=schema.dtypes())
    rows = records(frame)
    features_frame = features.build_features(frame)[0]
    served = 0
    for start in range(0, len(rows), 1000):
        reply = deployment.post({"rows": rows[start : start + 1000]})
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        model = offline_model(deployment, answer["model"]["id"])
        expected = train.predict_proba(model, features_frame.iloc[start : start + 1000])
        probabilities = np.array([prediction["probability"] for prediction in answer["predictions"]])
        np.testing.assert_array_equal(probabilities, expected)
        served += len(probabilities)
    assert served == 4687
