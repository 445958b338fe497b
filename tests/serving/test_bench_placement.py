"""`serving_bench.py --consumer apart`: the broker and the log's consumer on a core of their own, every thread
of the rest of the stack and the load generator on the others, for the measurements only."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import global_config
from asteroid.quality.consumer import SCRAPE_TARGET

# a process with a second thread and a child process, which prints the child's pid
TREE = (
    "import subprocess, sys, threading, time\n"
    "threading.Thread(target=time.sleep, args=(120,), daemon=True).start()\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    name, path = "serving_bench_under_test", global_config.ROOT / "benchmarks" / "serving_bench.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture
def trees() -> Iterator[list[tuple[int, int]]]:
    """Three processes, each with a thread and a child: (pid, child's pid)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs at least 2 CPUs")
    started = [
        subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    try:
        yield [(process.pid, int(process.stdout.readline())) for process in started]
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=10)
            process.stdout.close()


def affinities(pid: int) -> set[frozenset[int]]:
    """The affinity of each thread of the process."""
    return {
        frozenset(os.sched_getaffinity(int(thread.name))) for thread in Path(f"/proc/{pid}/task").iterdir()
    }


def test_apart_pins_the_broker_and_the_consumer_away_from_the_rest_for_the_measurements_only(
    bench: ModuleType, trees: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    everywhere = os.sched_getaffinity(0)
    far, near = frozenset({min(everywhere)}), frozenset(everywhere - {min(everywhere)})
    (broker, broker_child), (consumer, _), (inference, worker) = trees
    monkeypatch.setattr(
        bench, "STACK_PIDS", {"broker": broker, SCRAPE_TARGET: consumer, "inference": inference}
    )
    with bench.consumer_placed("apart"):
        assert os.sched_getaffinity(0) == near  # the load generator
        assert affinities(broker) == affinities(broker_child) == affinities(consumer) == {far}
        assert affinities(inference) == affinities(worker) == {near}  # every thread, children too
    assert os.sched_getaffinity(0) == everywhere


def test_beside_leaves_every_process_where_it_was(
    bench: ModuleType, trees: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    everywhere = frozenset(os.sched_getaffinity(0))
    (broker, _), (consumer, _), (inference, _) = trees
    monkeypatch.setattr(
        bench, "STACK_PIDS", {"broker": broker, SCRAPE_TARGET: consumer, "inference": inference}
    )
    with bench.consumer_placed("beside"):
        assert (
            {frozenset(os.sched_getaffinity(0))}
            == affinities(broker)
            == affinities(inference)
            == {everywhere}
        )
