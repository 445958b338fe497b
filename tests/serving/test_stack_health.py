"""The supervisor's own metrics and the stack's alert rules: a part given up raises ServingStackDegraded
(and clears it once it runs again), repeated restarts raise ServingStackRestarting, a restart of the
supervisor itself (its counters from zero) raises nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import requests

from process_supervisor import PartStatus
from serving_local import stack_health
from tests.monitoring.conftest import tool

LABELS = 'job="serving-local-stack", instance="127.0.0.1:1", part="statistics"'


def test_the_supervisor_serves_each_parts_state_and_restarts() -> None:
    status = {"inference": PartStatus(), "statistics": PartStatus("down", 6, "exited 6 times")}
    port = stack_health.serve_metrics("127.0.0.1", lambda: status)
    page = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'serving_local_part_up{part="inference"} 1.0' in page
    assert 'serving_local_part_down{part="statistics"} 1.0' in page
    assert 'serving_local_part_restarts_total{part="statistics"} 6.0' in page
    status["statistics"] = PartStatus("running", 7)
    page = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'serving_local_part_down{part="statistics"} 0.0' in page


def promtool_test(tmp_path: Path, series: list[dict], alerts: list[dict]) -> subprocess.CompletedProcess:
    stack_health.write_rules(tmp_path / "stack_rules.yml", "15s")
    (tmp_path / "test.yml").write_text(json.dumps({
        "rule_files": ["stack_rules.yml"], "evaluation_interval": "15s",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": alerts}],
    }))  # fmt: skip
    return subprocess.run(
        [tool("promtool"), "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )


def annotations(alert: int, part: str) -> dict[str, str]:
    rule = stack_health.rules_document("15s")["groups"][0]["rules"][alert]
    return {key: text.replace("{{ $labels.part }}", part) for key, text in rule["annotations"].items()}


def test_a_part_left_down_raises_degraded_until_it_runs_again(tmp_path: Path) -> None:
    degraded = {"exp_labels": {"part": "statistics", "severity": "critical"},
                "exp_annotations": annotations(0, "statistics")}  # fmt: skip
    result = promtool_test(
        tmp_path,
        [{"series": f"serving_local_part_down{{{LABELS}}}", "values": "0 0 1 1 0"}],
        [
            {"eval_time": "1m", "alertname": "ServingStackDegraded", "exp_alerts": []},
            {"eval_time": "3m", "alertname": "ServingStackDegraded", "exp_alerts": [degraded]},
            {"eval_time": "4m", "alertname": "ServingStackDegraded", "exp_alerts": []},
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_restarts_warn_but_a_supervisor_restart_resetting_the_counter_does_not(tmp_path: Path) -> None:
    restarts = f"serving_local_part_restarts_total{{{LABELS}}}"
    warning = {
        "exp_labels": {"job": "serving-local-stack", "instance": "127.0.0.1:1", "part": "statistics",
                       "severity": "warning"},
        "exp_annotations": annotations(1, "statistics"),
    }  # fmt: skip
    quiet = [{"eval_time": f"{minute}m", "alertname": "ServingStackRestarting", "exp_alerts": []}
             for minute in range(21)]  # fmt: skip
    result = promtool_test(
        tmp_path,
        # two restarts, then the supervisor itself restarts (its counter from 0), later four restarts
        [{"series": restarts, "values": "0 1 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 2 3 4"}],
        [*quiet, {"eval_time": "24m", "alertname": "ServingStackRestarting", "exp_alerts": [warning]}],
    )
    assert result.returncode == 0, result.stdout + result.stderr
