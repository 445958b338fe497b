"""The automation service as its users run it (`python -m asteroid.automation ...` in processes of their own,
the receiver only: no ClearML scheduler), with a launch command that records each launch in a file: start,
status, audit and stop; and every acknowledged alert launched exactly once across a `kill -9` and restart."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from asteroid.automation import store
from tests.automation.test_receiver import firing, notification
from tests.net import free_port

DEADLINE_S = 60.0


class Service:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "automation"
        self.launched = tmp_path / "launched.txt"
        self.port = free_port()
        self.database_url = f"sqlite:///{tmp_path / 'decisions.db'}"
        self.env = {
            **os.environ,
            "ASTEROID_AUTOMATION_DIR": str(self.dir),
            "NEO_DATABASE_URL": self.database_url,
            "ASTEROID_AUTOMATION_SCHEDULES": "none",
            "ASTEROID_RETRAIN_PORT": str(self.port),
            "ASTEROID_RETRAIN_COOLDOWN_SECONDS": "0",
            "ASTEROID_RETRAIN_COMMAND": (
                f"sh -c 'echo $ASTEROID_RETRAIN_LAUNCH {{query_date}} >> {shlex.quote(str(self.launched))}'"
            ),
        }
        self.url = f"http://127.0.0.1:{self.port}/alerts"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asteroid.automation", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            check=False,
        )

    def spawn(self) -> subprocess.Popen:
        """The service in the foreground, in a session of its own (so that kill -9 reaches only it)."""
        process = subprocess.Popen(
            [sys.executable, "-m", "asteroid.automation", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait(lambda: self.answers(), "the receiver to answer")
        return process

    def answers(self) -> bool:
        try:
            return requests.get(self.url.replace("/alerts", "/healthz"), timeout=2).ok
        except requests.ConnectionError:
            return False

    def alert(self, fingerprint: str) -> requests.Response:
        token = (self.dir / "retrain_token").read_text().strip()
        return requests.post(
            self.url,
            json=notification(firing("AsteroidModelRecallLow", fingerprint)),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    def launches(self) -> list[str]:
        return self.launched.read_text().split("\n")[:-1] if self.launched.exists() else []

    def launch_states(self) -> list[str | None]:
        with store.engine(self.database_url).connect() as connection:
            return [d.launch_state for d in store.decisions(connection, 100)]


def wait(condition, what: str, deadline_s: float = DEADLINE_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling interval, bounded by the deadline


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    try:
        yield service
    finally:
        service.cli("stop")


def test_start_status_audit_and_stop(service: Service) -> None:
    # README: .venv/bin/python -m asteroid.automation start
    # README: .venv/bin/python -m asteroid.automation status
    # README: .venv/bin/python -m asteroid.automation audit
    # README: .venv/bin/python -m asteroid.automation stop
    started = service.cli("start")
    assert started.returncode == 0, started.stderr
    assert f"retrain receiver: {service.url}" in started.stdout
    assert service.cli("start").stdout.startswith("automation already runs")

    assert service.alert("one").json()["decisions"][0]["decision"] == "launched"
    assert service.alert("one").json()["decisions"][0]["decision"] == "duplicate"
    wait(lambda: service.launch_states() == ["started", None], "the launch to start")
    status, audit = service.cli("status"), service.cli("audit")
    records = json.loads(service.cli("audit", "--json").stdout)
    stopped = service.cli("stop")

    assert f"retrain receiver: {service.url}" in status.stdout
    assert "alert AsteroidModelRecallLow (alert:one@2026-05-28T10:00:00Z): launched" in audit.stdout
    assert "launch started at" in audit.stdout
    assert "): duplicate — this event already launched a retrain" in audit.stdout
    assert [(r["decision"], r["launch_state"]) for r in records] == [
        ("launched", "started"),
        ("duplicate", None),
    ]
    assert records[0]["launched_at"] >= records[0]["decided_at"]
    assert stopped.stdout.startswith("automation stopped")
    assert service.cli("status").returncode == 3
    assert f"would listen on {service.url}" in service.cli("status").stdout
    assert service.launches() == ["retrain-1 " + time.strftime("%Y-%m-%d", time.gmtime())]


def test_every_acknowledged_alert_launches_exactly_once_across_kill_9(service: Service) -> None:
    first = service.spawn()
    acknowledged = [service.alert(f"fp{n}") for n in range(6)]
    os.kill(first.pid, signal.SIGKILL)  # at once: some launches may still be queued, one may be starting
    first.wait(timeout=10)
    wait(lambda: not service.answers(), "the receiver to die with the service")
    assert all(reply.status_code == 200 for reply in acknowledged)

    second = service.spawn()
    wait(lambda: service.launch_states() == ["started"] * 6, "every launch to start after the restart")
    wait(lambda: len(service.launches()) >= 6, "every launch command to run")
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=20)
    third = service.spawn()  # a restart with nothing queued starts nothing
    wait(lambda: service.launch_states() == ["started"] * 6, "the audit to stay as it is")
    third.send_signal(signal.SIGTERM)
    third.wait(timeout=20)

    tokens = sorted(line.split()[0] for line in service.launches())
    assert tokens == sorted(f"retrain-{n}" for n in range(1, 7))


def test_a_taken_port_is_reported_in_one_line(tmp_path: Path, taken_port: int) -> None:
    service = Service(tmp_path)
    service.env["ASTEROID_RETRAIN_PORT"] = str(taken_port)

    started = service.cli("start")

    assert started.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken_port}: Address already in use" in started.stderr
    assert len(started.stderr.strip().splitlines()) == 1
    assert service.cli("status").returncode == 3


def test_the_supervisor_restarts_a_killed_receiver_and_its_queued_launches_start_once(
    service: Service,
) -> None:
    assert service.cli("start").returncode == 0
    state = json.loads((service.dir / "automation.json").read_text())
    acknowledged = [service.alert(f"fp{n}") for n in range(4)]
    os.kill(state["parts"]["receiver"], signal.SIGKILL)

    wait(lambda: service.answers() and len(service.launch_states()) == 4, "the receiver to be restarted")
    wait(lambda: service.launch_states() == ["started"] * 4, "every launch to start")
    wait(lambda: len(service.launches()) == 4, "every launch command to run")

    assert all(reply.status_code == 200 for reply in acknowledged)
    assert sorted(line.split()[0] for line in service.launches()) == [f"retrain-{n}" for n in range(1, 5)]
    assert "receiver exited" in (service.dir / "automation.log").read_text()
