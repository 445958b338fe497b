"""The running stack under attack and accident: bounded requests (the 50 MB body and the gzip bomb answered
413 with the worker's memory bounded, deep nesting 400 on every content type, request-metrics labels a
fixed set); each part killed with SIGKILL under traffic is started again by the supervisor while the
endpoint keeps answering (the inference app itself answers again within the restart bound); a supervisor
killed with SIGKILL takes its parts with it, and ``status`` says so."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from process_supervisor import pid_alive, port_is_free
from tests.backend.backend_harness import BackendHarness, wait_for
from tests.backend.conftest import backend  # noqa: F401
from tests.net import free_port
from tests.serving.test_stack import FLOWS, port_arguments, run_stack
from tests.serving.test_workers_and_statistics import worker_pids

# A part other than the inference app is running again within this many seconds of its SIGKILL (first
# restart 1 s after the exit, then its readiness); the inference app answers again within INFERENCE_BOUND_S.
RESTART_BOUND_S = 30.0
INFERENCE_BOUND_S = 90.0


@dataclass
class Stack:
    env: dict[str, str]
    data_dir: Path
    url: str
    ports: list[int]
    start_arguments: list[str]

    def state(self) -> dict:
        return json.loads((self.data_dir / "state.json").read_text())


@pytest.fixture(scope="module")
def stack(backend: BackendHarness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: F811
    backend.run(FLOWS / "sklearn_model.py", timeout=300)
    serving = [sys.executable, "-m", "clearml_serving"]
    created = backend.run_command([*serving, "create", "--name", "healing"], timeout=120)
    service_id = re.search(r"id=([0-9a-f]{32})", created.stdout).group(1)
    backend.run_command([*serving, "--id", service_id, "model", "add", "--engine", "sklearn",
                         "--endpoint", "healing", "--preprocess", str(FLOWS / "sklearn_preprocess.py"),
                         "--name", "train sklearn model - sklearn-model", "--project", "serving examples"],
                        timeout=120)  # fmt: skip
    data_dir = tmp_path_factory.mktemp("healing")
    ports = [free_port() for _ in range(6)]
    monitoring = ["--prometheus-port", str(ports[3]), "--alertmanager-port", str(ports[4]),
                  "--webhook-port", str(ports[5]), "--monitoring", "auto"]  # fmt: skip
    arguments = ["--service-id", service_id, "--data-dir", str(data_dir), *port_arguments(*ports[:3]),
                 *monitoring, "--poll-seconds", "1"]  # fmt: skip
    started = run_stack(backend.env, "start", *arguments)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield Stack(backend.env, data_dir, f"http://127.0.0.1:{ports[0]}/serve/healing", ports, arguments)
    finally:
        run_stack(backend.env, "stop", "--data-dir", str(data_dir))


@dataclass
class Traffic:
    """Requests sent every 0.1 s from a thread: when each was sent and whether it got a 200."""

    url: str
    results: list[tuple[float, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _send(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                ok = requests.post(self.url, json={"x0": 1, "x1": 2}, timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            self.results.append((began, ok))
            self._stop.wait(0.1)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def inference_processes(stack: Stack) -> list[int]:
    """The inference part's process and its uvicorn workers (one per core by default), which read bodies."""
    parent = stack.state()["pids"]["inference"]
    return [parent, *worker_pids(parent)]


def test_a_50_mb_body_and_a_gzip_bomb_get_413_with_the_workers_memory_bounded(stack: Stack) -> None:
    pids = inference_processes(stack)
    assert requests.post(stack.url, json={"x0": 1, "x1": 2}, timeout=30).status_code == 200
    before = {pid: peak_rss_mb(pid) for pid in pids}
    big = b'{"x0": [' + b"1," * (25 << 20) + b'1], "x1": 2}'
    reply = requests.post(stack.url, data=big, headers={"Content-Type": "application/json"}, timeout=60)
    assert reply.status_code == 413, reply.text
    bomb = gzip.compress(b" " * (300 << 20))
    gzipped = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    reply = requests.post(stack.url, data=bomb, headers=gzipped, timeout=60)
    assert reply.status_code == 413 and "inflates beyond" in reply.json()["detail"]
    grown = max(peak_rss_mb(pid) - before[pid] for pid in pids)
    print(f"inference worker peak memory grew {grown:.0f} MB over a 50 MB body and a {len(bomb)} B gzip bomb")
    assert grown < 100
    assert requests.post(stack.url, json={"x0": 1, "x1": 2}, timeout=30).status_code == 200


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream"])
def test_deep_nesting_is_a_4xx_on_every_content_type(stack: Stack, content_type: str) -> None:
    reply = requests.post(stack.url, data=b"[" * 10_000 + b"]" * 10_000, timeout=30,
                          headers={"Content-Type": content_type})  # fmt: skip
    assert reply.status_code == 400 and "nested deeper" in reply.json()["detail"]


def test_random_paths_add_no_request_metrics_series(stack: Stack) -> None:
    metrics = f"http://127.0.0.1:{stack.ports[0]}/metrics"
    for index in range(50):
        requests.get(f"{stack.url}x{index}", timeout=10)
        requests.post(f"{stack.url}/{index}abc/", json={}, timeout=10, allow_redirects=False)
    before = requests.get(metrics, timeout=10).text.count("\n")
    for index in range(50, 1050):
        requests.get(f"{stack.url}x{index}", timeout=10)
        requests.post(f"{stack.url}/{index}abc/", json={}, timeout=10, allow_redirects=False)
    page = requests.get(metrics, timeout=10).text
    assert page.count("\n") == before
    labels = set(re.findall(r'clearml_serving_requests_total\{[^}]*endpoint="([^"]*)"', page))
    assert labels == {"healing", "_unknown"}, labels


def test_prometheus_has_no_lifecycle_api_nor_cors_checks_host_and_reloads_by_signal(stack: Stack) -> None:
    url = stack.state().get("prometheus_url")
    if not url:
        pytest.skip("Prometheus is not installed")
    assert requests.post(f"{url}/-/quit", timeout=10).status_code >= 400
    assert requests.post(f"{url}/-/reload", timeout=10).status_code >= 400
    reply = requests.get(
        f"{url}/api/v1/status/buildinfo", headers={"Origin": "http://evil.example"}, timeout=10
    )
    assert reply.status_code == 200 and "Access-Control-Allow-Origin" not in reply.headers
    rebound = {"Host": f"evil.example:{url.rsplit(':', 1)[1]}"}
    assert requests.get(f"{url}/-/ready", headers=rebound, timeout=10).status_code == 421
    page = {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
    assert requests.post(f"{url}/api/v1/query", data="query=up", headers=page, timeout=10).status_code == 403
    reloaded = run_stack(stack.env, "reload", "--data-dir", str(stack.data_dir))
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
    assert requests.get(f"{url}/-/ready", timeout=10).status_code == 200


def running_again(stack: Stack, part: str, old_pid: int) -> bool:
    record = stack.state()
    return record["pids"][part] != old_pid and record["parts"][part]["state"] == "running"


def kill_part(stack: Stack, part: str, bound: float) -> float:
    """SIGKILL the part; seconds until the supervisor reports it running again (its replacement ready)."""
    old_pid = stack.state()["pids"][part]
    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: running_again(stack, part, old_pid), f"{part} restarted", bound, 0.2)
    return time.monotonic() - killed_at


@pytest.mark.parametrize("part", ["statistics", "broker", "webhook", "alertmanager", "prometheus"])
def test_a_killed_part_restarts_while_the_endpoint_keeps_answering(stack: Stack, part: str) -> None:
    if part not in stack.state()["pids"]:
        pytest.skip(f"{part} does not run: Prometheus/Alertmanager are not installed")
    with Traffic(stack.url) as traffic:
        wait_for(lambda: len(traffic.results) >= 5, "traffic", 30, 0.1)
        seconds = kill_part(stack, part, RESTART_BOUND_S)
        count = len(traffic.results)
        wait_for(lambda: len(traffic.results) >= count + 5, "traffic after the restart", 30, 0.1)
    failed = [at for at, ok in traffic.results if not ok]
    assert not failed, f"{len(failed)} of {len(traffic.results)} requests failed while {part} restarted"
    print(f"{part} running again {seconds:.1f} s after SIGKILL; {len(traffic.results)} requests, all 200")
    assert stack.state()["parts"][part]["restarts"] >= 1 and stack.state()["degraded"] == {}


def test_a_killed_inference_app_answers_again_within_the_bound(stack: Stack) -> None:
    with Traffic(stack.url) as traffic:
        wait_for(lambda: len(traffic.results) >= 5, "traffic", 30, 0.1)
        killed_at = time.monotonic()
        kill_part(stack, "inference", INFERENCE_BOUND_S)
        wait_for(
            lambda: any(ok and at > killed_at for at, ok in traffic.results[-3:]), "a 200 again", 30, 0.1
        )
    answered = min(at for at, ok in traffic.results if ok and at > killed_at)
    print(f"inference answered again {answered - killed_at:.1f} s after SIGKILL")
    assert answered - killed_at < INFERENCE_BOUND_S


def test_status_names_a_restarting_part(stack: Stack) -> None:
    status = run_stack(stack.env, "status", "--data-dir", str(stack.data_dir))
    assert status.returncode == 0, status.stdout + status.stderr


INSTANCE_SUFFIXES = (" - serve instance", " - statistics controller")  # clearml-serving's instance tasks


def instance_tasks(harness: BackendHarness, status: str) -> list[dict]:
    """The clearml-serving instance tasks (inference, statistics) of the given status."""
    query = {"status": [status], "system_tags": ["service"], "only_fields": ["id", "name", "status_reason"]}
    return [
        task
        for task in harness.call("tasks.get_all", query)["tasks"]
        if task["name"].endswith(INSTANCE_SUFFIXES)
    ]


def test_a_supervisor_killed_with_sigkill_takes_its_parts_and_a_new_start_finds_the_ports_free(
    stack: Stack,
    backend: BackendHarness,  # noqa: F811
) -> None:
    record = stack.state()
    os.kill(record["pid"], signal.SIGKILL)
    parts = list(record["pids"].values())
    wait_for(lambda: not any(pid_alive(pid) for pid in parts), "every part gone with the supervisor", 20, 0.2)
    status = run_stack(stack.env, "status", "--data-dir", str(stack.data_dir))
    assert status.returncode == 1 and "not running" in status.stdout
    stopped = run_stack(stack.env, "stop", "--data-dir", str(stack.data_dir))
    assert stopped.returncode == 0
    wait_for(lambda: all(port_is_free("127.0.0.1", port) for port in stack.ports), "ports free", 20, 0.2)
    left = {task["id"] for task in instance_tasks(backend, "in_progress")}
    assert left, "the killed stack's instance tasks stay in_progress until the next start"
    started = run_stack(stack.env, "start", *stack.start_arguments)
    assert started.returncode == 0, started.stdout + started.stderr
    failed = {task["id"]: task["status_reason"] for task in instance_tasks(backend, "failed")}
    assert left <= set(failed), "the next start marks them failed"
    assert all("serving stack that ran it" in failed[task_id] for task_id in left)
    running = {task["id"] for task in instance_tasks(backend, "in_progress")}
    assert running and not running & left  # the new stack's own instances run
