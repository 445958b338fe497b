"""The Grafana-managed drift rules fire exactly where the Prometheus drift rules fire, at the boundaries too
(a PSI exactly at a threshold, an observation count exactly at the minimum), evaluated by Prometheus' own
engine (`promtool test rules`) on the same series.

Grafana is not installed here. Its rule is a PromQL query (A), reduced to its last value (B), and a condition
(C) on that value; on an instant query the reduction is the value itself, so the rule fires for the series
of `(A) <op> <threshold>`, with the operator Grafana's condition uses. The test translates the generated
condition into that PromQL comparison (Grafana's strict `gt` threshold into `>`) and checks it selects the
features the Prometheus alert fires for; with the former `gt` condition it fails on the PSI at a threshold.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from asteroid.monitoring import dashboard, rules
from asteroid.monitoring.config import MonitoringConfig
from asteroid.monitoring.reference import TrainingReference
from tests.monitoring.conftest import tool
from tests.monitoring.test_rules_promtool import expected_alert

CONFIG = MonitoringConfig(window="1m", for_="0s", interval="15s", min_observations=300)
LABELS = {"endpoint": "asteroid", "version": "1"}
# feature -> (PSI, observations in the window): each side of each threshold and of the minimum
SERIES = {
    "below_warning": (0.0999999, 300),
    "at_warning": (0.1, 300),
    "above_warning": (0.1000001, 300),
    "below_critical": (0.2499999, 1000),
    "at_critical": (0.25, 1000),
    "at_critical_too_few": (0.25, 299),
}
GRAFANA_OPERATORS = {"gt": ">", "lt": "<"}  # Grafana's threshold expression types, as PromQL


def grafana_rules() -> list[dict[str, Any]]:
    return [rule for group in dashboard.alert_provisioning(CONFIG)["groups"] for rule in group["rules"]]


def as_promql(rule: dict[str, Any]) -> tuple[str, float]:
    """(PromQL selecting the series the Grafana rule fires for, its threshold)."""
    queries = {query["refId"]: query["model"] for query in rule["data"]}
    query, reduce, condition = queries["A"], queries["B"], queries[rule["condition"]]
    assert query["instant"] and reduce == {
        "refId": "B",
        "type": "reduce",
        "expression": "A",
        "reducer": "last",
    }
    if condition["type"] == "math":
        match = re.fullmatch(r"\$B (>=|>|<=|<|==|!=) ([0-9.e+-]+)", condition["expression"])
        assert match, condition
        operator, threshold = match[1], float(match[2])
    else:
        assert condition["type"] == "threshold" and condition["expression"] == "B", condition
        evaluator = condition["conditions"][0]["evaluator"]
        operator, threshold = GRAFANA_OPERATORS[evaluator["type"]], float(evaluator["params"][0])
    return f"count by (feature) (({query['expr']}) {operator} {rules.promql_number(threshold)})", threshold


def firing(threshold: float) -> list[str]:
    """Where the Prometheus rule's condition holds (PSI >= threshold with enough observations)."""
    return sorted(f for f, (psi, n) in SERIES.items() if psi >= threshold and n >= CONFIG.min_observations)


def input_series() -> list[dict[str, str]]:
    series = []
    for feature, (psi, observations) in SERIES.items():
        labels = ", ".join(f'{key}="{value}"' for key, value in {**LABELS, "feature": feature}.items())
        series.append({"series": f"{rules.PSI}{{{labels}}}", "values": f"{psi!r}x8"})
        series.append({"series": f"{rules.OBSERVATIONS}{{{labels}}}", "values": f"{observations}x8"})
    return series


def drift_alert_rules(reference: TrainingReference) -> list[dict[str, Any]]:
    return [rule for rule in rules.alert_rules(reference, CONFIG) if rule["alert"] == "AsteroidFeatureDrift"]


def prometheus_alerts(reference: TrainingReference, severity: str, threshold: float) -> list[dict[str, Any]]:
    """The alerts the Prometheus rule of this severity must fire (those where its condition holds)."""
    rule = next(rule for rule in drift_alert_rules(reference) if rule["labels"]["severity"] == severity)
    return [
        expected_alert(rule, {**LABELS, "feature": feature}, SERIES[feature][0])
        for feature in firing(threshold)
    ]


def test_the_drift_series_of_the_boundaries_are_on_both_sides() -> None:
    assert firing(CONFIG.psi_warning) == ["above_warning", "at_critical", "at_warning", "below_critical"]
    assert firing(CONFIG.psi_critical) == ["at_critical"]


def test_grafana_and_prometheus_drift_rules_fire_for_the_same_series(
    tmp_path: Path, reference: TrainingReference
) -> None:
    alerts = [
        rule for rule in rules.alert_rules(reference, CONFIG) if rule["alert"] == "AsteroidFeatureDrift"
    ]
    rules_file = tmp_path / "drift.rules.yml"
    rules_file.write_text(
        rules.dump_yaml({"groups": [{"name": "drift", "interval": "15s", "rules": alerts}]})
    )
    expected_alerts, expr_tests = [], []
    for rule in grafana_rules():
        severity = rule["labels"]["severity"]
        expr, threshold = as_promql(rule)
        assert threshold == {"warning": CONFIG.psi_warning, "critical": CONFIG.psi_critical}[severity]
        expected_alerts += prometheus_alerts(reference, severity, threshold)
        samples = [{"labels": f'{{feature="{feature}"}}', "value": 1} for feature in firing(threshold)]
        expr_tests.append({"expr": expr, "eval_time": "1m", "exp_samples": samples})
    assert len(expr_tests) == 2
    alert_tests = [{"eval_time": "1m", "alertname": "AsteroidFeatureDrift", "exp_alerts": expected_alerts}]
    test_file = tmp_path / "drift.test.yml"
    test_file.write_text(rules.dump_yaml({
        "rule_files": [rules_file.name], "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": input_series(), "alert_rule_test": alert_tests,
                   "promql_expr_test": expr_tests}],
    }))  # fmt: skip
    result = subprocess.run(
        [tool("promtool"), "test", "rules", test_file.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


@pytest.mark.parametrize("rule", grafana_rules(), ids=lambda rule: rule["uid"])
def test_the_grafana_summary_states_the_comparison(rule: dict[str, Any]) -> None:
    _, threshold = as_promql(rule)
    assert f"(≥ {threshold:g} is {rule['labels']['severity']})" in rule["annotations"]["summary"]
