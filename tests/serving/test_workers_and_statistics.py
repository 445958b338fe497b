"""The local stack with the replaced statistics sender and several inference workers, end to end on the
embedded backend: the stock statistics controller shows the same histograms for the same requests with the
stock sender and with the replacement; the request counters of several workers add up to exactly the
requests sent; a worker killed with SIGKILL is replaced while the endpoint keeps answering."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from serving_local.config import STOCK_STATISTICS_SENDER_ENV
from tests.backend.backend_harness import BackendHarness, wait_for
from tests.backend.conftest import backend  # noqa: F401
from tests.monitoring.controller_series import page_samples
from tests.net import free_port
from tests.serving.test_stack import FLOWS, port_arguments, run_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ENDPOINT = "speed_test"
X0_EDGES = "0,2,4,6,8"
REQUESTS = 150
WORKER_RESTART_S = 120.0  # a new worker imports clearml-serving and creates its ClearML task first


@pytest.fixture(scope="module")
def service_id(backend: BackendHarness) -> str:  # noqa: F811
    """A clearml-serving service with one sklearn endpoint and an x0 histogram, as in test_stack."""
    backend.run(FLOWS / "sklearn_model.py", timeout=300)
    serving = [sys.executable, "-m", "clearml_serving"]
    created = backend.run_command([*serving, "create", "--name", "speed"], timeout=120)
    found = re.search(r"id=([0-9a-f]{32})", created.stdout)
    assert found, created.stdout
    for command in (
        ["model", "add", "--engine", "sklearn", "--endpoint", ENDPOINT,
         "--preprocess", str(FLOWS / "sklearn_preprocess.py"),
         "--name", "train sklearn model - sklearn-model", "--project", "serving examples"],
        ["metrics", "add", "--endpoint", ENDPOINT, "--variable-scalar", f"x0={X0_EDGES}"],
    ):  # fmt: skip
        backend.run_command([*serving, "--id", found.group(1), *command], timeout=120)
    return found.group(1)


@dataclass
class RunningStack:
    data_dir: Path
    port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/serve/{ENDPOINT}"

    def state(self) -> dict:
        return json.loads((self.data_dir / "state.json").read_text())

    def statistics(self) -> list[tuple[str, dict[str, str], float]]:
        """The controller's samples of this endpoint's metrics."""
        page = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        return [sample for sample in page_samples(page) if sample[0].startswith(f"{ENDPOINT}:")]

    def request_count(self) -> float:
        """clearml_serving_requests_total of the endpoint, all codes, as the inference app's /metrics says."""
        page = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        return sum(
            value
            for name, labels, value in page_samples(page)
            if name == "clearml_serving_requests_total" and labels.get("endpoint") == ENDPOINT
        )


def start(
    backend: BackendHarness,  # noqa: F811
    service: str,
    data_dir: Path,
    workers: int,
    extra_env: dict[str, str],
) -> RunningStack:
    ports = [free_port() for _ in range(3)]
    env = {**backend.env, **extra_env}
    options = [*port_arguments(*ports), "--workers", str(workers), "--poll-seconds", "1"]
    started = run_stack(env, "start", "--service-id", service, "--data-dir", str(data_dir), *options)
    if started.returncode != 0:
        run_stack(backend.env, "stop", "--data-dir", str(data_dir))
        pytest.fail(started.stdout + started.stderr)
    return RunningStack(data_dir, ports[0], ports[1])


@pytest.fixture
def stack_factory(backend: BackendHarness, service_id: str, tmp_path: Path) -> Iterator:  # noqa: F811
    started: list[RunningStack] = []

    def factory(name: str, workers: int = 1, **extra_env: str) -> RunningStack:
        stack = start(backend, service_id, tmp_path / name, workers, extra_env)
        started.append(stack)
        return stack

    try:
        yield factory
    finally:
        for stack in started:
            run_stack(backend.env, "stop", "--data-dir", str(stack.data_dir))


def post(url: str, index: int) -> int:
    """One request on a new connection (so that the kernel hands it to any worker); its status code."""
    return requests.post(url, json={"x0": index % 10, "x1": index % 3}, timeout=30).status_code


def send(url: str, first: int, count: int, threads: int = 4) -> list[int]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda index: post(url, index), range(first, first + count)))


def comparable(samples: list[tuple[str, dict[str, str], float]]) -> dict[tuple[str, str], float]:
    """Sample -> value, with the latency buckets' values and the creation times left out (they differ from
    run to run): the buckets' edges and the observation counts stay (`_sum` counts observations on the
    controller's histograms)."""
    return {
        (name, json.dumps(labels, sort_keys=True)): -1.0 if "_latency_bucket" in name else value
        for name, labels, value in samples
        if not name.endswith("_created")
    }


def test_the_controller_shows_the_same_statistics_with_the_stock_and_the_new_sender(stack_factory) -> None:
    pages = {}
    for sender, env in (("stock", {STOCK_STATISTICS_SENDER_ENV: "1"}), ("chunked", {})):
        stack = stack_factory(sender, **env)
        assert send(stack.url, 0, REQUESTS) == [200] * REQUESTS

        def counted(stack: RunningStack = stack) -> bool:
            return any(n == f"{ENDPOINT}:_count_total" and v == REQUESTS for n, _, v in stack.statistics())

        # the stock sender hands its queue over at least every 10 s, the new one every 0.05 s
        wait_for(counted, f"{REQUESTS} requests counted by the controller ({sender} sender)", 90, 0.5)
        pages[sender] = comparable(stack.statistics())
        log = (stack.data_dir / "inference.log").read_text()
        assert ("at most 50 records a message" in log) == (sender == "chunked"), log[-2000:]
        assert "switched off" not in log
    assert pages["chunked"] == pages["stock"]
    x0 = {key: value for key, value in pages["stock"].items() if key[0] == f"{ENDPOINT}:x0_bucket"}
    assert sum(x0.values()) == REQUESTS and len(x0) == len(X0_EDGES.split(",")) + 1  # every value counted


def worker_pids(parent: int) -> set[int]:
    """The uvicorn parent's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    workers = set()
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            workers.add(int(child))
    return workers


def pids_with_request_metrics(stack: RunningStack) -> set[int]:
    """Processes that counted a request (prometheus_client writes one file per process and metric type)."""
    files = (stack.data_dir / "request-metrics").glob("counter_*.db")
    return {int(path.stem.rsplit("_", 1)[1]) for path in files}


def instance_tasks(backend: BackendHarness) -> int:  # noqa: F811
    """The service's "serve instance" tasks (clearml-serving's setup_task creates one per instance)."""
    return len(backend.call("tasks.get_all", {"name": "^speed - serve instance$"})["tasks"])


def test_several_workers_count_every_request_once_and_a_killed_worker_is_replaced(
    stack_factory,
    backend: BackendHarness,  # noqa: F811
) -> None:
    instances = instance_tasks(backend)
    stack = stack_factory("workers", workers=2)
    assert stack.state()["workers"] == 2
    parent = stack.state()["pids"]["inference"]
    workers = worker_pids(parent)
    assert len(workers) == 2, workers

    answered = 0

    def every_worker_answered() -> bool:
        nonlocal answered
        assert send(stack.url, answered, REQUESTS // 5) == [200] * (REQUESTS // 5)
        answered += REQUESTS // 5
        return answered >= REQUESTS and pids_with_request_metrics(stack) == workers

    wait_for(every_worker_answered, "requests answered by both workers", 60, 0.1)
    assert stack.request_count() == answered  # counted by two processes, summed exactly once each

    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    replaced: set[int] = set()

    def replaced_and_answering() -> bool:
        nonlocal answered
        assert send(stack.url, answered, 8) == [200] * 8  # the other worker answers meanwhile
        answered += 8
        replaced.update(worker_pids(parent) - workers)
        return bool(replaced & pids_with_request_metrics(stack))

    wait_for(replaced_and_answering, "a new worker answering for the killed one", WORKER_RESTART_S, 0.5)
    assert len(worker_pids(parent)) == 2 and killed not in worker_pids(parent)
    assert stack.state()["pids"]["inference"] == parent  # uvicorn replaced the worker; the part kept running
    assert stack.request_count() == answered  # the killed worker's counts stay in the sum
    assert instance_tasks(backend) == instances + 1  # as in clearml-serving's image: the workers share one
