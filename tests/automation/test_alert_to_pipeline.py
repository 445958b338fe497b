"""The whole trigger chain against the embedded backend, nothing faked: the automation service (started as
users start it) gets a critical drift alert, launches the real pipeline, whose `get data` registers a new raw
dataset version; the service's real TriggerScheduler sees that version and suppresses it (cooldown) — one
retrain per alert, not two."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests

from tests.automation.test_receiver import firing, notification
from tests.automation.test_service import wait
from tests.backend.backend_harness import BackendHarness
from tests.net import free_port
from tests.project_env import isolated_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PIPELINE_DEADLINE_S = 600.0


def test_a_drift_alert_runs_the_pipeline_once(backend: BackendHarness, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **isolated_project(tmp_path),
        "ASTEROID_AUTOMATION_DIR": str(tmp_path / "automation"),
        "ASTEROID_RETRAIN_PORT": str(port),
        "ASTEROID_AUTOMATION_SCHEDULES": "dataset",
        "ASTEROID_TRIGGER_POLL_MINUTES": str(2 / 60),
        "ASTEROID_RETRAIN_COOLDOWN_SECONDS": "3600",
        "ASTEROID_RETRAIN_COMMAND": f"{sys.executable} pipeline.py --query-date {{query_date}} --seeds 1",
    }

    def cli(*args: str) -> str:
        command = [sys.executable, "-m", "asteroid.automation", *args]
        return backend.run_command(command, timeout=300, extra_env=env).stdout

    summary_path = tmp_path / "runs" / "latest" / "summary.json"
    cli("start")
    try:
        token = (tmp_path / "automation" / "retrain_token").read_text().strip()
        alert = notification(
            firing("AsteroidFeatureDrift", "drift", severity="critical", feature="absolute_magnitude")
        )
        reply = requests.post(
            f"http://127.0.0.1:{port}/alerts",
            json=alert,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert reply.json()["decisions"][0]["decision"] == "launched"
        wait(summary_path.exists, "the launched pipeline's summary", PIPELINE_DEADLINE_S)
        get_data = json.loads(summary_path.read_text())["step_tasks"]["get_data"]
        task = backend.call("tasks.get_by_id", {"task": get_data})["task"]
        raw_version = task["hyperparams"]["Outputs"]["raw_dataset_id"]["value"]
        wait(
            lambda: f"dataset:{raw_version}" in cli("audit"), "the trigger to see the pipeline's raw version"
        )
        audit = cli("audit")
    finally:
        cli("stop")

    assert "alert AsteroidFeatureDrift (alert:drift@2026-05-28T10:00:00Z): launched" in audit
    assert f"dataset {raw_version} (dataset:{raw_version}): cooldown" in audit
    assert audit.count(": launched") == 1
    launch_log = (tmp_path / "automation" / "launches" / "retrain-1.log").read_text()
    assert "winner: seed 0" in launch_log


def test_the_default_service_runs_both_clearml_schedulers_and_stops_cleanly(
    backend: BackendHarness, tmp_path: Path
) -> None:
    env = {
        **isolated_project(tmp_path),
        "ASTEROID_AUTOMATION_DIR": str(tmp_path / "automation"),
        "ASTEROID_RETRAIN_PORT": str(free_port()),
    }

    def cli(*args: str) -> str:
        command = [sys.executable, "-m", "asteroid.automation", *args]
        return backend.run_command(command, timeout=300, extra_env=env).stdout

    started = cli("start")
    stopped = cli("stop")

    task_ids = {line.split()[-1] for line in started.splitlines() if line.strip().startswith("scheduler ")}
    tasks = [backend.call("tasks.get_by_id", {"task": task_id})["task"] for task_id in task_ids]
    assert sorted(task["name"] for task in tasks) == [
        "asteroid ingestion schedule",
        "asteroid retrain trigger",
    ]
    assert stopped.startswith("automation stopped")  # not killed after the grace
