"""End to end on the local stack (embedded backend, stock clearml-serving, Prometheus, Alertmanager, webhook
receiver, all on free ports): a model trained on shuffled labels is refused by the gate and never served; a
healthy challenger steps 10 → 50 → 100 % under traffic with zero failed requests, its controller killed with
SIGKILL mid-rollout and resumed, then promoted; a challenger with an injected serving fault is rolled back by
the canary analysis, AsteroidRolloutRolledBack delivered to the webhook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

import global_config
import serving_local.api
from asteroid import gate, schema
from asteroid.rollout import state as states
from asteroid.rollout.alerts import ALERT_NAME
from tests.backend.backend_harness import BackendHarness, wait_for
from tests.backend.conftest import backend  # noqa: F401
from tests.monitoring.conftest import tool
from tests.net import free_port
from tests.project_env import isolated_project

ROOT = global_config.ROOT
pytestmark = [pytest.mark.integration, pytest.mark.slow]
CUTOFF = "2012-12-31"  # the pipelines ingest up to here; the gate judges on the sample rows after it
ROLLOUT_DEADLINE_S = 300


@dataclass
class Stack:
    backend: BackendHarness
    env: dict[str, str]
    root: Path

    @property
    def state(self) -> serving_local.api.StackState:
        found = serving_local.api.running_stack(self.root / "stack")
        assert found is not None
        return found

    @property
    def store(self) -> states.StateStore:
        return states.StateStore(Path(self.env[states.STATE_ENV]))

    def pipeline(self, *args: str) -> str:
        """Run the pipeline (its winner not released: the rollout serves it); the winner's model id."""
        self.backend.run(ROOT / "pipeline.py", "--seeds", "1", "--query-date", CUTOFF, *args,
                         extra_env={**self.env, "ASTEROID_SERVING_ROLLOUT": "0"}, timeout=900)  # fmt: skip
        summary = json.loads((self.root / "runs" / "latest" / "summary.json").read_text())
        return str(summary["winner"]["model_id"])

    def rollout(self, *args: str, log: Path) -> subprocess.Popen:
        command = [sys.executable, "-m", "asteroid.rollout", *args]
        with log.open("a") as stream:
            return subprocess.Popen(command, cwd=self.backend.workdir, env={**self.backend.env, **self.env},
                                    stdout=stream, stderr=subprocess.STDOUT)  # fmt: skip

    def model(self, model_id: str) -> dict[str, Any]:
        return self.backend.call("models.get_by_id", {"model": model_id})["model"]

    def canary(self) -> dict[str, Any]:
        task = self.backend.call("tasks.get_by_id", {"task": self.state.service_id})["task"]
        from clearml_local.webview.data import parse_hocon

        return parse_hocon(task["configuration"]["canary"]["value"])[global_config.SERVING_ENDPOINT]

    def endpoints(self) -> set[str]:
        task = self.backend.call("tasks.get_by_id", {"task": self.state.service_id})["task"]
        from clearml_local.webview.data import parse_hocon

        return set(parse_hocon(task["configuration"]["endpoints"]["value"]))


@pytest.fixture(scope="module")
def stack(backend: BackendHarness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: F811
    tool("prometheus")
    tool("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("rollout")
    env = {
        **isolated_project(root),
        "ASTEROID_SAMPLE_ROWS": "2000",
        "ASTEROID_MONITORING_PROFILE": "short",
        states.STATE_ENV: str(root / "rollout" / "rollout.json"),
        "SERVING_LOCAL_DATA_DIR": str(root / "stack"),
        "SERVING_LOCAL_MONITORING": "on",
        "SERVING_LOCAL_SCRAPE_SECONDS": "2",
        "SERVING_LOCAL_ALERT_GROUP_WAIT": "1s",
        "SERVING_LOCAL_ALERT_GROUP_INTERVAL": "2s",
        "SERVING_LOCAL_POLL_SECONDS": "2",
        **{f"SERVING_LOCAL_{name}PORT": str(free_port())
           for name in ("", "METRICS_", "BROKER_", "PROMETHEUS_", "ALERTMANAGER_", "WEBHOOK_",
                        "NODE_EXPORTER_")},
    }  # fmt: skip
    backend.run(ROOT / "pipeline.py", "--seeds", "1", "--query-date", CUTOFF, extra_env=env, timeout=900)
    try:
        backend.run(ROOT / "serve.py", extra_env=env, timeout=600)
        yield Stack(backend, env, root)
    finally:
        stop = [sys.executable, "-m", "serving_local", "stop", "--data-dir", str(root / "stack")]
        subprocess.run(stop, env=backend.env, capture_output=True, timeout=120, check=False)


@dataclass
class Traffic:
    """Single rows posted to /serve/asteroid by a few threads until stopped: status codes and answering
    versions counted."""

    url: str
    rows: list[dict[str, Any]]
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def _post(self, offset: int) -> None:
        session, index = requests.Session(), offset
        while not self.stop.is_set():
            reply = session.post(self.url, json=self.rows[index % len(self.rows)], timeout=30)
            self.statuses[reply.status_code] += 1
            if reply.status_code == 200:
                self.versions[reply.json()["model"]["version"]] += 1
            index += 4
            self.stop.wait(0.02)  # about 40 requests per second from 4 threads

    def __enter__(self) -> Traffic:
        self.threads = [threading.Thread(target=self._post, args=(i,), daemon=True) for i in range(4)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def traffic(stack: Stack) -> Traffic:
    frame = pd.read_csv(Path(stack.env["ASTEROID_DATA_DIR"]) / "sample_asteroids.csv", dtype=schema.dtypes())
    rows = json.loads(json.dumps(frame.head(500).to_dict(orient="records")))
    return Traffic(f"{stack.state.serve_url}/{global_config.SERVING_ENDPOINT}", rows)


def seconds_between(rollout: states.RolloutState, first: str, last: str) -> float:
    times = {event["kind"]: event["time"] for event in reversed(rollout.events)}  # the first of each kind
    return float(times[last] - times[first])


def recorded(stack: Stack) -> states.RolloutState:
    rollout = stack.store.load()
    assert rollout is not None
    return rollout


def test_a_model_trained_on_shuffled_labels_is_refused_and_never_served(stack: Stack, tmp_path: Path) -> None:
    # README: .venv/bin/python pipeline.py --inject-fault shuffled_labels
    model_id = stack.pipeline("--inject-fault", "shuffled_labels")
    before = stack.endpoints()
    # README: .venv/bin/python -m asteroid.rollout gate
    judged = stack.rollout("gate", "--model", model_id, log=tmp_path / "gate.log")
    assert judged.wait(timeout=300) == 1, (tmp_path / "gate.log").read_text()
    started = stack.rollout("start", "--model", model_id, "--profile", "drill", log=tmp_path / "gate.log")
    assert started.wait(timeout=300) == 1, (tmp_path / "gate.log").read_text()
    output = (tmp_path / "gate.log").read_text()
    assert "gate refused" in output and "stays published, tagged gate_refused" in output, output
    model = stack.model(model_id)
    assert "gate_refused" in model["tags"] and model["ready"]
    assert "gate_refused" in stack.backend.call("tasks.get_by_id", {"task": model["task"]})["task"]["tags"]
    assert model["metadata"]["gate_verdict"]["value"].startswith("gate refused")  # the model page shows it
    plots = stack.backend.call("events.get_task_plots", {"task": model["task"], "iters": 1})["plots"]
    assert any(plot.get("metric") == gate.TABLE_TITLE for plot in plots)  # the verdict's table
    assert stack.endpoints() == before and stack.store.load() is None


def test_a_healthy_challenger_is_promoted_under_traffic_through_a_kill_9_without_a_failed_request(
    stack: Stack, tmp_path: Path
) -> None:
    model_id = stack.pipeline("--split-seed", "7")
    log = tmp_path / "rollout.log"
    with traffic(stack) as sent:
        # README: .venv/bin/python -m asteroid.rollout start --profile drill
        controller = stack.rollout("start", "--model", model_id, "--profile", "drill", log=log)
        wait_for(lambda: stack.store.load() is not None and recorded(stack).weight >= 50,
                 lambda: f"50 %: {log.read_text()[-3000:]}", ROLLOUT_DEADLINE_S, interval_s=0.2)  # fmt: skip
        os.kill(controller.pid, signal.SIGKILL)  # mid-rollout, without a chance to clean up
        controller.wait(timeout=30)
        assert recorded(stack).active and not stack.store.controller_running()
        # README: .venv/bin/python -m asteroid.rollout status
        status = stack.rollout("status", log=tmp_path / "status.log")
        assert status.wait(timeout=120) == 0
        assert "controller: no controller" in (tmp_path / "status.log").read_text()
        # README: .venv/bin/python -m asteroid.rollout resume
        resumed = stack.rollout("resume", log=log)
        assert resumed.wait(timeout=ROLLOUT_DEADLINE_S) == 0, log.read_text()[-5000:]
    final = recorded(stack)
    assert final.phase == states.COMPLETED, log.read_text()[-5000:]
    print(
        f"promoted {seconds_between(final, 'started', 'promoted'):.0f} s after the start, champion retired "
        f"{seconds_between(final, 'started', 'champion_retired'):.0f} s after the start"
    )
    print(f"requests during the rollout: {dict(sent.statuses)}; answered by version {dict(sent.versions)}")
    assert set(sent.statuses) == {200}, sent.statuses  # no request failed while the weights changed
    assert sent.versions[str(final.challenger.version)] > 0 and sent.versions[str(final.champion.version)] > 0
    assert "production" in stack.model(model_id)["tags"]
    assert final.champion.url not in stack.endpoints()  # retired after the grace period
    assert stack.canary().get("load_endpoint_prefix") == f"{global_config.SERVING_ENDPOINT}/"
    output = log.read_text()
    assert "$ clearml-serving --id" in output
    assert "model canary --endpoint asteroid --weights 90 10" in output


def test_a_challenger_failing_requests_when_served_is_rolled_back_and_the_alert_delivered(
    stack: Stack, tmp_path: Path
) -> None:
    # README: .venv/bin/python pipeline.py --inject-fault serving:error_rate=0.3
    model_id = stack.pipeline("--split-seed", "11", "--inject-fault", "serving:error_rate=0.3")
    log = tmp_path / "rollout.log"
    with traffic(stack) as sent:
        controller = stack.rollout("start", "--model", model_id, "--profile", "drill", log=log)
        assert controller.wait(timeout=ROLLOUT_DEADLINE_S) == 2, log.read_text()[-5000:]
    final = recorded(stack)
    assert (final.phase, final.failed_check) == (states.ROLLED_BACK, "error_rate"), log.read_text()[-5000:]
    print(f"rolled back {seconds_between(final, 'started', 'rolled_back'):.0f} s after the start")
    assert {"rolled_back", "rolled_back:error_rate"} <= set(stack.model(model_id)["tags"])
    canary = stack.canary()
    assert canary["load_endpoints"] == [final.champion.url, final.challenger.url]
    assert [float(w) for w in canary["weights"]] == [100.0, 0.0]
    print(f"requests during the rollout: {dict(sent.statuses)}; answered by version {dict(sent.versions)}")

    def delivered() -> list[dict[str, Any]]:
        return [alert for record in serving_local.api.read_alerts(stack.root / "stack")
                for alert in record["alerts"] if alert["labels"]["alertname"] == ALERT_NAME]  # fmt: skip

    wait_for(lambda: bool(delivered()), f"{ALERT_NAME} at the webhook", 60)
    labels = delivered()[0]["labels"]
    expected = ("error_rate", str(final.challenger.version), model_id)
    assert (labels["check"], labels["version"], labels["model_id"]) == expected
    exported = requests.get(stack.state.request_metrics_url, timeout=10).text.splitlines()
    champion_errors = [line for line in exported if line.startswith("clearml_serving_version_requests_total")
                       and f'endpoint="{final.champion.url}"' in line and 'code="5' in line]  # fmt: skip
    assert champion_errors == []  # every failed request was the injected fault's, on the challenger


def test_a_winner_released_at_once_after_a_rollback_takes_the_route_back_to_the_newest_version(
    stack: Stack,
) -> None:
    # the rolled-back rollout left a route naming its two versions; releasing a new winner directly (as the
    # pipeline's selection step and `serve.py` do) removes the oldest versions, which that route named
    before = recorded(stack)
    assert before.phase == states.ROLLED_BACK
    stack.backend.run(ROOT / "pipeline.py", "--seeds", "1", "--query-date", CUTOFF, "--split-seed", "13",
                      extra_env=stack.env, timeout=900)  # fmt: skip
    summary = json.loads((stack.root / "runs" / "latest" / "summary.json").read_text())
    winner, url = summary["winner"]["model_id"], summary["serving"]["endpoint"]
    canary = stack.canary()
    assert canary.get("load_endpoints") in (None, []) and canary["load_endpoint_prefix"] == "asteroid/"
    assert url in stack.endpoints() and before.champion.url not in stack.endpoints()
    sender = traffic(stack)

    def serves_winner() -> bool:
        reply = requests.post(sender.url, json=sender.rows[0], timeout=30)
        return reply.status_code == 200 and reply.json()["model"]["id"] == winner

    wait_for(serves_winner, "/serve/asteroid to answer with the winner released at once", 90, interval_s=0.5)
