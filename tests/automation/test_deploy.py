"""The production wiring, offline: Alertmanager's generated configuration (deploy/alertmanager) routes the
retraining alerts — and only those — to the automation service's receiver as well as to the webhook (amtool
answers which receivers an alert reaches), at the address and with the token file the Compose stack gives
the automation service."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from asteroid.automation.config import RETRAIN_ALERTS
from asteroid.monitoring import deploy_files
from asteroid.monitoring import rules as monitoring_rules
from asteroid.monitoring.config import MonitoringConfig
from asteroid.quality import rules as quality_rules
from asteroid.quality.rules import QualityThresholds
from tests.deploy import compose

ALERTMANAGER_YML = compose.DEPLOY / "alertmanager" / "alertmanager.yml"
SERVING = compose.DEPLOY / "serving" / "docker-compose.yml"


def receivers_of(*labels: str) -> set[str]:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed")
    done = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.strip().split(","))


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (("alertname=AsteroidFeatureDrift", "severity=critical"), {"retrain", "webhook"}),
        (("alertname=AsteroidFeatureDrift", "severity=warning"), {"webhook"}),
        (("alertname=AsteroidModelRecallLow", "severity=warning"), {"retrain", "webhook"}),
        (("alertname=AsteroidModelAccuracyLow", "severity=warning"), {"retrain", "webhook"}),
        (("alertname=AsteroidServingDown", "severity=critical"), {"webhook"}),
    ],
)
def test_alertmanager_routes_the_retraining_alerts_to_the_receiver(
    labels: tuple[str, ...], expected: set
) -> None:
    assert receivers_of(*labels) == expected


def test_the_committed_alertmanager_file_is_the_generators() -> None:
    assert ALERTMANAGER_YML.read_text() == deploy_files.alertmanager_config()


def test_the_receiver_is_where_compose_runs_it_with_the_token_alertmanager_mounts() -> None:
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    (retrain,) = [r for r in config["receivers"] if r["name"] == "retrain"]
    webhook = retrain["webhook_configs"][0]
    services = compose.merged_services(SERVING)
    automation, alertmanager = services["automation"], services["alertmanager"]
    env = automation["environment"]

    assert webhook["url"] == f"http://automation:{env['ASTEROID_RETRAIN_PORT']}/alerts"
    assert str(env["ASTEROID_RETRAIN_PORT"]) in [str(port) for port in automation["expose"]]
    token_dir = env["ASTEROID_RETRAIN_TOKEN_FILE"].rsplit("/", 1)[0]
    credentials = webhook["http_config"]["authorization"]["credentials_file"]
    assert f"retrain-token:{token_dir}" in automation["volumes"]
    assert f"retrain-token:{credentials.rsplit('/', 1)[0]}:ro" in alertmanager["volumes"]
    assert credentials.rsplit("/", 1)[1] == env["ASTEROID_RETRAIN_TOKEN_FILE"].rsplit("/", 1)[1]


def test_every_retraining_alert_is_an_alert_the_project_generates_with_its_labels() -> None:
    config = MonitoringConfig()
    generated = [
        *quality_rules.alert_rules("asteroid", 1, QualityThresholds(0.9, 0.9, 0.05), config),
        *(monitoring_rules._drift_alert(config, severity, 0.2) for severity in ("warning", "critical")),
    ]
    alerts = {(rule["alert"], rule.get("labels", {}).get("severity")) for rule in generated}
    for name, labels in RETRAIN_ALERTS.items():
        severities = {severity for alert, severity in alerts if alert == name}
        assert severities, f"{name} is not an alert the project generates"
        assert labels.get("severity", next(iter(severities))) in severities, name
