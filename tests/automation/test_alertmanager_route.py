"""A real Alertmanager, configured as the local serving stack generates it with the automation's
extra-receivers file (SERVING_LOCAL_EXTRA_RECEIVERS), routes the retraining alerts to the retrain receiver
with its bearer token — and every alert still to the stack's own webhook."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from serving_local import monitoring
from serving_local.alert_webhook import read_notifications
from serving_local.config import StackConfig
from serving_local.errors import StackError
from serving_local.monitoring_config import read_extra_receivers
from tests.automation.test_service import Service, wait
from tests.net import free_port
from tests.serving.test_monitoring_parts import start_parts, tool

pytestmark = [pytest.mark.integration]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    process = service.spawn()
    try:
        yield service
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def stack(tmp_path: Path, receiver: Service) -> Iterator[StackConfig]:
    tool("prometheus-alertmanager")
    config = StackConfig(
        data_dir=tmp_path / "stack", service_id="x", port=free_port(), metrics_port=free_port(),
        broker_port=free_port(), monitoring="on", prometheus_port=free_port(),
        alertmanager_port=free_port(), webhook_port=free_port(),
        node_exporter_port=free_port(), scrape_seconds=1.0,
        alert_group_wait="0s", alert_group_interval="1s",
        extra_receivers_file=receiver.dir / "alertmanager_receivers.json",
    )  # fmt: skip
    supervisor = start_parts(config, ("webhook", "alertmanager"))
    try:
        yield config
    finally:
        supervisor.stop_all()


def test_the_alert_route_command_writes_the_file_the_stack_reads(tmp_path: Path) -> None:
    service = Service(tmp_path)
    written = service.cli("alert-route")

    path = Path(written.stdout.strip())
    (receiver,) = read_extra_receivers(path)
    assert receiver.url == service.url and receiver.name == "retrain"
    assert Path(receiver.token_file or "").read_text().strip()
    config = StackConfig(data_dir=tmp_path / "stack", service_id="x", extra_receivers_file=path)
    assert f"url: {service.url}" in monitoring.alertmanager_config(config)


def test_the_generated_configuration_with_the_retrain_route_passes_amtool(stack: StackConfig) -> None:
    _, alertmanager_yml = monitoring.write_configs(stack)
    checked = subprocess.run(
        [tool("amtool"), "check-config", str(alertmanager_yml)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "receiver: retrain" in alertmanager_yml.read_text()


def test_alertmanager_sends_the_retraining_alerts_to_the_receiver(
    stack: StackConfig, receiver: Service
) -> None:
    now = datetime.now(UTC).isoformat()

    def alert(name: str, **labels: str) -> dict:
        return {"labels": {"alertname": name, **labels}, "annotations": {"summary": "s"}, "startsAt": now}

    alerts = [
        alert("AsteroidFeatureDrift", severity="critical", feature="a"),
        alert("AsteroidFeatureDrift", severity="warning", feature="b"),  # warning drift: not retrained on
        alert("AsteroidModelRecallLow", severity="warning"),
        alert("AsteroidServingErrors", severity="critical"),  # not a retraining alert
    ]
    reply = requests.post(f"{stack.alertmanager_url}/api/v2/alerts", json=alerts, timeout=5)
    assert reply.status_code == 200

    wait(lambda: len(receiver.launch_states()) >= 2, "two retrain decisions")
    wait(lambda: len(notified(stack)) == 4, "the stack's webhook to get all four alerts")
    with_launches = receiver.cli("audit").stdout

    assert "AsteroidFeatureDrift" in with_launches and "AsteroidModelRecallLow" in with_launches
    assert "AsteroidServingErrors" not in with_launches
    assert with_launches.count(": launched") == 2  # the cooldown is 0 in this test; each alert once
    wait(lambda: len(receiver.launches()) == 2, "the two launches to run")


def notified(stack: StackConfig) -> set[tuple[str, str]]:
    return {
        (a["labels"]["alertname"], a["labels"].get("feature", ""))
        for record in read_notifications(stack.alerts_file)
        for a in record["alerts"]
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read the extra receivers file"),
        ('{"name": "r"}', "must hold a JSON list"),
        (
            '[{"url": "http://x/alerts", "routes": [["a=\\"b\\""]]}]',
            "field 'name' must be a non-empty string",
        ),
        (
            '[{"name": "r", "url": "http://x/alerts", "routes": []}]',
            "'routes' must be a list of matcher lists",
        ),
        (
            '[{"name": "r", "url": "http://x/alerts", "routes": [[1]]}]',
            "'routes' must be a list of matcher lists",
        ),
        ('[{"name": "r", "url": "u", "routes": [["a=\\"b\\""]], "token_file": 3}]', "'token_file' must be"),
    ],
)
def test_a_bad_extra_receivers_file_stops_the_stack_naming_the_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "receivers.json"
    path.write_text(content)
    config = StackConfig(data_dir=tmp_path / "stack", service_id="x", extra_receivers_file=path)
    with pytest.raises(StackError, match=message):
        monitoring.alertmanager_config(config)
