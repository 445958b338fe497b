"""The stack's monitoring parts on their own: the generated Prometheus and Alertmanager configurations pass
their own checkers, the webhook receiver refuses bad input with a 4xx and logs good notifications, and a real
Alertmanager delivers an alert, then its resolution, to the receiver."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from process_supervisor import Supervisor
from serving_local import monitoring
from serving_local.alert_webhook import read_notifications
from serving_local.config import StackConfig
from serving_local.stack import monitoring_parts


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({monitoring.INSTALL_HINT})")
    return path


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    return StackConfig(
        data_dir=tmp_path, service_id="x", port=free_port(), metrics_port=free_port(),
        broker_port=free_port(), monitoring="on", prometheus_port=free_port(),
        alertmanager_port=free_port(), webhook_port=free_port(),
        node_exporter_port=free_port(), scrape_seconds=1.0,
        alert_group_wait="0s", alert_group_interval="1s",
    )  # fmt: skip


def test_generated_configurations_pass_promtool_and_amtool(config: StackConfig) -> None:
    prometheus_yml, alertmanager_yml = monitoring.write_configs(config)
    for command in (
        [tool("promtool"), "check", "config", str(prometheus_yml)],
        [tool("amtool"), "check-config", str(alertmanager_yml)],
    ):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    assert f"127.0.0.1:{config.webhook_port}/alerts" in alertmanager_yml.read_text()


def start_parts(config: StackConfig, names: tuple[str, ...]) -> Supervisor:
    """The named monitoring parts of the stack, started as the stack starts them."""
    supervisor = Supervisor([part for part in monitoring_parts(config) if part.name in names])
    try:
        supervisor.start_all()
    except BaseException:
        supervisor.stop_all()
        raise
    return supervisor


@pytest.fixture
def parts(config: StackConfig) -> Iterator[StackConfig]:
    tool("prometheus-alertmanager")
    supervisor = start_parts(config, ("webhook", "alertmanager"))
    yield config
    supervisor.stop_all()


BAD_BODIES = [
    ("not JSON", b"hello", 400),
    ("not UTF-8", b"\xff\xfe", 400),
    ("a list", b"[]", 422),
    ("no alerts", b'{"status": "firing", "alerts": []}', 422),
    ("bad status", b'{"status": "on", "alerts": [{"status": "firing", "labels": {"alertname": "a"}}]}', 422),
    ("alert not an object", b'{"status": "firing", "alerts": [1]}', 422),
    ("no alertname", b'{"status": "firing", "alerts": [{"status": "firing", "labels": {}}]}', 422),
    ("label not a string", b'{"status": "firing", "alerts": [{"status": "firing", '
     b'"labels": {"alertname": 1}}]}', 422),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 422),
    ("out of range", b'{"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "a"}, '
     b'"value": 1e400}]}', 422),
    ("NaN", b'{"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "a"}, "v": NaN}]}',
     422),
]  # fmt: skip


def authorized(config: StackConfig) -> dict[str, str]:
    token = monitoring.webhook_token_path(config).read_text().strip()
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_the_webhook_receiver_refuses_bad_input_with_4xx(parts: StackConfig) -> None:
    url = f"{parts.webhook_url}/alerts"
    headers = authorized(parts)
    for name, body, status in BAD_BODIES:
        reply = requests.post(url, data=body, headers=headers, timeout=5)
        assert reply.status_code == status, f"{name}: {reply.status_code} {reply.text}"
        assert reply.json()["error"], name
    assert (
        requests.post(f"{parts.webhook_url}/elsewhere", data=b"{}", headers=headers, timeout=5).status_code
        == 404
    )
    assert requests.put(url, data=b"{}", headers=headers, timeout=5).status_code == 405
    too_big = requests.post(url, data=b" " * (1024 * 1024 + 1), headers=headers, timeout=5)
    assert too_big.status_code == 413
    assert read_notifications(parts.alerts_file) == []
    assert "Traceback" not in parts.component_log("webhook").read_text()
    good = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "Test"}}]}
    assert requests.post(url, json=good, headers=headers, timeout=5).status_code == 200
    assert [r["alerts"] for r in requests.get(url, headers=headers, timeout=5).json()] == [good["alerts"]]


def test_the_webhook_receiver_refuses_forged_and_cross_origin_notifications(parts: StackConfig) -> None:
    url = f"{parts.webhook_url}/alerts"
    good = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "Forged"}}]}
    body = json.dumps(good).encode()
    headers = authorized(parts)
    as_page = {**headers, "Content-Type": "text/plain"}  # what a web page can post without a preflight
    assert requests.post(url, data=body, headers=as_page, timeout=5).status_code == 415
    assert requests.post(url, json=good, timeout=5).status_code == 401  # no token
    wrong = {**headers, "Authorization": "Bearer guessed"}
    assert requests.post(url, json=good, headers=wrong, timeout=5).status_code == 401
    rebound = {**headers, "Host": f"evil.example:{parts.webhook_port}"}  # DNS rebinding
    assert requests.post(url, json=good, headers=rebound, timeout=5).status_code == 421
    assert read_notifications(parts.alerts_file) == []
    overwrite = {**good, "received_at": "garbage"}
    before = time.time()
    assert requests.post(url, json=overwrite, headers=headers, timeout=5).status_code == 200
    assert read_notifications(parts.alerts_file)[0]["received_at"] >= before


def wait_for_notification(config: StackConfig, status: str, deadline_s: float = 60) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for record in read_notifications(config.alerts_file):
            if record["status"] == status:
                return record
        time.sleep(0.2)
    raise AssertionError(f"no {status} notification in {config.alerts_file} within {deadline_s} s")


def test_alertmanager_delivers_firing_and_resolved_to_the_webhook(parts: StackConfig) -> None:
    now = datetime.now(UTC)
    alert = {"labels": {"alertname": "AsteroidTest", "severity": "warning"}, "annotations": {"summary": "s"},
             "startsAt": now.isoformat()}  # fmt: skip
    api = f"{parts.alertmanager_url}/api/v2/alerts"
    assert requests.post(api, json=[alert], timeout=5).status_code == 200
    firing = wait_for_notification(parts, "firing")
    assert firing["alerts"][0]["labels"]["alertname"] == "AsteroidTest"
    resolved = {**alert, "endsAt": (now + timedelta(milliseconds=1)).isoformat()}
    assert requests.post(api, json=[resolved], timeout=5).status_code == 200
    assert wait_for_notification(parts, "resolved")["alerts"][0]["status"] == "resolved"
    assert json.loads(parts.alerts_file.read_text().splitlines()[0])["received_at"] > 0


def guarded_address(config: StackConfig, part: str) -> str:
    """The private address the part's service listens on, from its guard's first line."""
    line = next(line for line in config.component_log(part).read_text().splitlines() if "guarding " in line)
    return line.split(" -> ")[1].split()[0]


def test_alertmanager_refuses_foreign_hosts_cross_origin_writes_and_callers_without_the_guard(
    parts: StackConfig,
) -> None:
    url = parts.alertmanager_url
    silence = {"matchers": [{"name": "alertname", "value": ".+", "isRegex": True, "isEqual": True}],
               "startsAt": datetime.now(UTC).isoformat(), "endsAt": "2099-01-01T00:00:00Z",
               "createdBy": "a web page", "comment": "silence everything"}  # fmt: skip
    as_page = {"Origin": "http://evil.example", "Content-Type": "text/plain"}  # no preflight needed
    api = f"{url}/api/v2/silences"
    assert requests.post(api, data=json.dumps(silence), headers=as_page, timeout=5).status_code == 403
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}  # fmt: skip
    assert requests.options(api, headers=preflight, timeout=5).status_code == 403  # Alertmanager: 200
    after_preflight = {"Origin": "http://evil.example"}  # what the page sends when a preflight passes
    assert requests.post(api, json=silence, headers=after_preflight, timeout=5).status_code == 403
    rebound = {"Host": f"evil.example:{parts.alertmanager_port}"}
    assert requests.post(api, json=silence, headers=rebound, timeout=5).status_code == 421
    assert requests.get(api, timeout=5).json() == []
    private = guarded_address(parts, "alertmanager")
    assert private != f"127.0.0.1:{parts.alertmanager_port}"
    assert requests.get(f"http://{private}/api/v2/silences", timeout=5).status_code == 401
    from_the_ui = {**silence, "createdBy": "the UI"}
    same_origin = requests.post(api, json=from_the_ui, headers={"Origin": url}, timeout=5)
    assert same_origin.status_code == 200, same_origin.text
    assert [entry["createdBy"] for entry in requests.get(api, timeout=5).json()] == ["the UI"]
