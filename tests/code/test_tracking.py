"""Helpers around the clearml SDK that need no server: machine lock, typed parameters, compute clock, exit
(ending a function step's process at exit: tests/code/test_third_party_patches.py)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from asteroid.tracking import ComputeClock, connect_params, machine_lock


def hold_lock(name: str, log: str, hold_s: float) -> None:
    with machine_lock(name):
        with open(log, "a") as handle:
            handle.write(f"enter {time.monotonic()}\n")
        time.sleep(hold_s)  # keeps the lock held so that an overlap would show
        with open(log, "a") as handle:
            handle.write(f"leave {time.monotonic()}\n")


def test_machine_lock_serialises_processes(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=hold_lock, args=("test-lock", str(log), 0.3)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    kinds = [line.split()[0] for line in log.read_text().splitlines()]
    assert kinds == ["enter", "leave"] * 3  # never two holders at once


class FakeTask:
    """Stands in for a clearml Task whose server-side parameters were overridden as strings."""

    def __init__(self, overrides: dict[str, str]) -> None:
        self.overrides = overrides

    def connect(self, params: dict[str, Any], name: str) -> dict[str, Any]:
        params.update(self.overrides)
        return params


def test_connect_params_returns_overrides_with_the_defaults_types() -> None:
    defaults = {"seed": 0, "threshold": 0.5, "name": "x"}
    params = connect_params(FakeTask({"seed": "3", "threshold": "0.25"}), defaults)
    assert params == {"seed": 3, "threshold": 0.25, "name": "x"}


def test_compute_clock_adds_up_measured_sections(monkeypatch: Any) -> None:
    ticks = iter([10.0, 12.5, 20.0, 21.0])
    monkeypatch.setattr("asteroid.tracking.time.perf_counter", lambda: next(ticks))
    clock = ComputeClock()
    for _ in range(2):
        with clock.measure():
            pass
    assert clock.seconds == 3.5


def test_end_process_flushes_output_and_exits_with_the_code() -> None:
    code = "from asteroid.tracking import end_process\nprint('done', end='')\nend_process(3)\nprint('never')"
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 3
    assert finished.stdout == "done"
