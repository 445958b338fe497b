"""The closed loop end to end on the local stack (embedded backend, stock clearml-serving, Prometheus,
Alertmanager, the webhook receiver, the retrain receiver; every port free): a critical AsteroidFeatureDrift
pushed into Alertmanager reaches the retrain receiver through the route the stack generated, the receiver
launches the real pipeline once, `python -m asteroid.loop_drill` gates and promotes its winner under traffic,
then rolls back a challenger with an injected serving fault, AsteroidRolloutRolledBack delivered; no client
request failed but those the injected fault failed."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

import serving_local.api
from asteroid.loop_drill import automation_settings
from asteroid.rollout import state as states
from tests.backend.backend_harness import BackendHarness
from tests.backend.conftest import backend  # noqa: F401
from tests.monitoring.conftest import tool
from tests.monitoring.monitored_stack import monitored_stack_env, stack_dir, stop_stack
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]
CUTOFF = "2012-12-31"  # every pipeline ingests up to here: the gate judges on the sample rows after it


def drift_alert() -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": "AsteroidFeatureDrift", "severity": "critical",
                   "feature": "absolute_magnitude", "endpoint": "asteroid"},
        "annotations": {"summary": "absolute_magnitude drifted (test)"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=30)).isoformat(),
    }  # fmt: skip


def test_a_drift_alert_retrains_promotes_and_a_faulty_challenger_is_rolled_back(
    backend: BackendHarness,  # noqa: F811
    tmp_path: Path,
) -> None:
    tool("prometheus")
    tool("prometheus-alertmanager")
    env = {
        **monitored_stack_env(tmp_path),
        "ASTEROID_AUTOMATION_DIR": str(tmp_path / "automation"),
        "ASTEROID_RETRAIN_PORT": str(free_port()),
        states.STATE_ENV: str(tmp_path / "rollout" / "state.json"),
    }
    automation = {**env, **automation_settings(seeds=1, query_date=CUTOFF)}

    def automation_cli(*args: str) -> str:
        command = [sys.executable, "-m", "asteroid.automation", *args]
        return backend.run_command(command, timeout=300, extra_env=automation).stdout

    backend.run(ROOT / "pipeline.py", "--seeds", "1", "--query-date", CUTOFF, extra_env=env, timeout=900)
    automation_cli("start")
    try:
        env["SERVING_LOCAL_EXTRA_RECEIVERS"] = automation_cli("alert-route").strip().splitlines()[-1]
        backend.run(ROOT / "serve.py", extra_env=env, timeout=600)
        stack = serving_local.api.running_stack(stack_dir(tmp_path))
        assert stack is not None and stack.alertmanager_url
        pushed = requests.post(f"{stack.alertmanager_url}/api/v2/alerts", json=[drift_alert()], timeout=10)
        assert pushed.status_code == 200, pushed.text
        log = tmp_path / "loop.log"
        loop = [sys.executable, "-m", "asteroid.loop_drill", "--faulty-query-date", CUTOFF, "--log", str(log)]
        ran = backend.run_command(loop, timeout=1800, extra_env=env, check=False)
        assert ran.returncode == 0, f"{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}\n{log.read_text()[-5000:]}"
        audit = json.loads(automation_cli("audit", "--json"))
    finally:
        automation_cli("stop")
        stop_stack(tmp_path, {**backend.env, **env})

    section = json.loads((tmp_path / "runs" / "latest" / "loop.json").read_text())
    print(json.dumps({key: value for key, value in section.items() if key != "decisions"}, indent=1))
    launched = [row for row in audit if row["decision"] == "launched"]
    assert len(launched) == 1 and launched[0]["subject"].startswith("AsteroidFeatureDrift"), audit
    decisions = [entry["decision"] for entry in section["decisions"]]
    healthy, faulty = section["healthy_challenger"], section["faulty_challenger"]
    assert healthy["phase"] == states.COMPLETED and healthy["stages"] == [10, 50, 100], section
    assert "promoted" in decisions and "analysis passed" in decisions
    assert (faulty["phase"], faulty["failed_check"]) == (states.ROLLED_BACK, "error_rate"), section
    assert "analysis failed" in decisions and "rolled_back" in decisions
    assert section["faulty_first_request_to_rollback_alert_delivered_s"] is not None  # delivered
    assert healthy["gate"].startswith("gate passed") and faulty["gate"].startswith("gate passed")
    counts = section["requests_during_rollouts"]
    assert counts["server_errors_not_injected"] == 0 and counts["other_failures"] == 0, counts
    assert counts["server_errors_injected"] > 0, counts
    assert section["alert_to_first_canary_request_s"] > 0
    assert Path(section["picture"]).stat().st_size > 10_000
