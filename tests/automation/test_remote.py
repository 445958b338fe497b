"""The automation service as a ClearML service task: `start --remote` enqueues it on `services`, a real
clearml-agent runs it against the embedded backend with the agent's environment, the receiver launches a
retrain for an alert, `status --remote` reads the address back from the task and `stop --remote` ends it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.automation.test_service import Service, wait
from tests.backend.backend_harness import STANDALONE_CODE, BackendHarness, start_agent, terminate_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_service_runs_as_a_task_on_the_services_queue(backend: BackendHarness, tmp_path: Path) -> None:
    # README: .venv/bin/python -m asteroid.automation start --remote
    service = Service(tmp_path)
    configuration = {k: v for k, v in service.env.items() if k.startswith(("ASTEROID_", "NEO_"))}
    agent = start_agent(backend, "services", tmp_path / "agent.log", extra_env=configuration)
    env = {**STANDALONE_CODE, **configuration}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "asteroid.automation", *args]
        return backend.run_command(command, timeout=300, check=False, extra_env=env)  # type: ignore[return-value]

    try:
        started = cli("start", "--remote")
        assert started.returncode == 0, started.describe()  # type: ignore[attr-defined]
        assert f"retrain receiver: {service.url}" in started.stdout
        reply = service.alert("remote")
        assert reply.json()["decisions"][0]["decision"] == "launched"
        wait(lambda: len(service.launches()) == 1, "the launch")
        status = cli("status", "--remote")
        stopped = cli("stop", "--remote")
        wait(lambda: not service.answers(), "the agent to end the service")
        after = cli("status", "--remote")
    finally:
        terminate_group(agent)

    assert f"retrain receiver: {service.url}" in status.stdout
    assert stopped.stdout.startswith("stopped ClearML task(s)")
    assert after.returncode == 3
    task_id = stopped.stdout.split()[-1]
    task = backend.call("tasks.get_by_id", {"task": task_id})["task"]
    assert (task["status"], task["type"]) == ("stopped", "service")
