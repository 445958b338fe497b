"""Durability and process management: acknowledged writes survive ``kill -9`` of ``python -m clearml_local
serve``, and the ``start``/``status``/``stop`` subcommands manage a background server through its one state
file (``backend.json``: pid and URLs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.backend.backend_harness import API_PREFIX, child_environment, wait_for
from tests.net import free_port

pytestmark = pytest.mark.slow
DEADLINE_S = 30.0


def answers(api_url: str) -> bool:
    try:
        return requests.get(f"{api_url}{API_PREFIX}debug.ping", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class Server:
    data_dir: Path
    api_port: int
    files_port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def files_url(self) -> str:
        return f"http://127.0.0.1:{self.files_port}"

    def cli(self, command: str) -> list[str]:
        return [
            sys.executable, "-m", "clearml_local", command, "--data-dir", str(self.data_dir),
            "--api-port", str(self.api_port), "--files-port", str(self.files_port),
        ]  # fmt: skip

    def token(self) -> str:
        creds = json.loads((self.data_dir / "credentials.json").read_text())
        reply = requests.post(
            f"{self.api_url}{API_PREFIX}auth.login",
            auth=(creds["access_key"], creds["secret_key"]),
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["data"]["token"])


class Client:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {server.token()}"}

    def call(self, endpoint: str, body: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"json": body}
        if isinstance(body, list):  # events.add_batch: JSON lines
            kwargs = {"data": "\n".join(json.dumps(item) for item in body).encode()}
        reply = requests.post(
            f"{self.server.api_url}{API_PREFIX}{endpoint}", headers=self.headers, timeout=10, **kwargs
        )
        assert reply.status_code == 200, f"{endpoint}: {reply.text}"
        data: dict[str, Any] = reply.json()["data"]
        return data


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path / "data", free_port(), free_port())


@contextmanager
def serving(server: Server, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m clearml_local serve`` in the foreground; killed if the test leaves it running."""
    # README: .venv/bin/python -m clearml_local serve --api-port 8008 --files-port 8081 --data-dir .clearml_local  # noqa: E501
    # (with free ports and a temporary data directory here)
    with log.open("ab") as output:
        process = subprocess.Popen(
            server.cli("serve"),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_environment({}, log.parent),
        )
    try:
        wait_for(
            lambda: process.poll() is not None or answers(server.api_url), "the server to answer", DEADLINE_S
        )
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=DEADLINE_S)


def write_everything(client: Client) -> dict[str, str]:
    """One of each kind of record; every write is acknowledged before the next."""
    project = client.call("projects.create", {"name": "durable"})["id"]
    task = client.call("tasks.create", {"name": "durable task", "project": project, "type": "training"})["id"]
    params = [{"section": "General", "name": "lr", "value": "0.25"}]
    client.call("tasks.edit_hyper_params", {"task": task, "hyperparams": params})
    scalars = [
        {
            "type": "training_stats_scalar",
            "task": task,
            "metric": "loss",
            "variant": "train",
            "iter": i,
            "value": v,
        }
        for i, v in enumerate([0.9, 0.3, 0.6])
    ]
    client.call("events.add_batch", [*scalars, {"type": "log", "task": task, "msg": "durable log line"}])
    queue = client.call("queues.create", {"name": "durable queue"})["id"]
    client.call("tasks.enqueue", {"task": task, "queue": queue})
    model = client.call("models.create", {"name": "durable model", "task": task, "uri": "http://x/m.bin"})[
        "id"
    ]
    upload = requests.post(
        client.server.files_url,
        files={"durable/object.bin": ("f", b"durable bytes")},
        headers=client.headers,
        timeout=10,
    )
    assert upload.status_code == 200
    return {"project": project, "task": task, "queue": queue, "model": model}


def assert_everything_back(client: Client, ids: dict[str, str]) -> None:
    assert client.call("projects.get_by_id", {"project": ids["project"]})["project"]["name"] == "durable"
    task = client.call("tasks.get_by_id", {"task": ids["task"]})["task"]
    assert (task["name"], task["status"], task["last_iteration"]) == ("durable task", "queued", 2)
    assert task["hyperparams"]["General"]["lr"]["value"] == "0.25"
    (loss,) = [v for variants in task["last_metrics"].values() for v in variants.values()]
    assert (loss["value"], loss["min_value"], loss["max_value"]) == (0.6, 0.3, 0.9)
    events = client.call("events.get_task_events", {"task": ids["task"]})
    assert events["total"] == 4
    log = client.call("events.get_task_log", {"task": ids["task"]})["events"]
    assert [e["msg"] for e in log] == ["durable log line"]
    queue = client.call("queues.get_by_id", {"queue": ids["queue"]})["queue"]
    assert [e["task"] for e in queue["entries"]] == [ids["task"]]
    assert client.call("models.get_by_id", {"model": ids["model"]})["model"]["task"] == ids["task"]
    download = requests.get(
        f"{client.server.files_url}/durable/object.bin", headers=client.headers, timeout=10
    )
    assert download.content == b"durable bytes"


def test_acknowledged_writes_survive_kill_9(server: Server, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with serving(server, log) as process:
        ids = write_everything(Client(server))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=DEADLINE_S) == -signal.SIGKILL
    with serving(server, log) as process:
        assert_everything_back(Client(server), ids)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE_S) == 0
    assert "ClearML embedded backend stopped" in log.read_text()


def run_cli(server: Server, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        server.cli(command),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S * 2,
        env=child_environment({}, server.data_dir.parent),
        check=False,
    )


def background_pid(server: Server) -> int:
    """The pid recorded in the server's state file (0 when there is none)."""
    try:
        return int(json.loads((server.data_dir / "backend.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_background_server(server: Server) -> None:
    """Clean-up: the server ``start`` launched, if it is still running (found by its state file)."""
    pid = background_pid(server)
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_start_status_stop_manage_a_background_server(server: Server) -> None:
    # README: .venv/bin/python -m clearml_local start  (each with --data-dir and free ports here)
    # README: .venv/bin/python -m clearml_local status
    # README: .venv/bin/python -m clearml_local stop
    try:
        started = run_cli(server, "start")
        assert started.returncode == 0, started.stdout + started.stderr
        pid = background_pid(server)
        assert f"started (pid {pid})" in started.stdout
        assert json.loads((server.data_dir / "backend.json").read_text())["api_url"] == server.api_url
        assert not (server.data_dir / "backend.pid").exists()  # one state file, not two
        assert answers(server.api_url)

        status = run_cli(server, "status")
        assert (status.returncode, f"running (pid {pid})" in status.stdout) == (0, True)
        again = run_cli(server, "start")
        assert (again.returncode, "already running" in again.stdout) == (0, True)

        stopped = run_cli(server, "stop")
        assert (stopped.returncode, f"stopped (pid {pid})" in stopped.stdout) == (0, True)
        wait_for(lambda: not pid_alive(pid), f"server process {pid} to exit", DEADLINE_S)
        assert not answers(server.api_url)
        assert not (server.data_dir / "backend.json").exists()
        after = run_cli(server, "status")
        assert (after.returncode, after.stdout.strip()) == (1, "not running")
    finally:
        kill_background_server(server)
