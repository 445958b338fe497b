"""The supervisor's metrics page lists the CPU time and resident memory of every process of every part: a
part that starts workers (as uvicorn does) shows each of them with its pid, and the supervisor itself."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import requests

from process_supervisor import Part, Supervisor, proc_stats
from serving_local import stack_health

pytestmark = pytest.mark.skipif(not proc_stats.PROC.is_dir(), reason="no /proc on this system (Linux only)")

WORKERS = 2
# A leader starting two workers, as `uvicorn --workers 2` does; ready once it wrote their pids.
SERVER = (
    "import subprocess, sys, time\n"
    "sleeper = [sys.executable, '-c', 'import time; time.sleep(120)']\n"
    f"workers = [subprocess.Popen(sleeper) for _ in range({WORKERS})]\n"
    "open(sys.argv[1], 'w').write(' '.join(str(w.pid) for w in workers))\n"
    "time.sleep(120)\n"
)


def samples(page: str, metric: str) -> dict[tuple[str, int], float]:
    pattern = re.compile(rf'^{metric}\{{part="([^"]+)",pid="(\d+)"\}} (\S+)$', re.MULTILINE)
    return {(part, int(pid)): float(value) for part, pid, value in pattern.findall(page)}


def test_every_process_of_every_part_has_its_cpu_and_memory(tmp_path: Path) -> None:
    pids_file = tmp_path / "workers"
    parts = [
        Part("server", [sys.executable, "-c", SERVER, str(pids_file)], tmp_path / "server.log",
             ready=lambda: pids_file.is_file() and bool(pids_file.read_text())),
        Part("single", [sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "single.log"),
    ]  # fmt: skip
    supervisor = Supervisor(parts, say=lambda line: None)
    try:
        supervisor.start_all()
        port = stack_health.serve_metrics("127.0.0.1", lambda: supervisor.status)
        page = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        supervisor.stop_all()
    leaders = supervisor.pids()
    workers = [int(pid) for pid in pids_file.read_text().split()]
    expected = {
        ("server", leaders["server"]), *(("server", pid) for pid in workers), ("single", leaders["single"]),
        (stack_health.SUPERVISOR_PART, os.getpid()),
    }  # fmt: skip
    cpu = samples(page, f"{stack_health.PROCESS_CPU}_total")
    resident = samples(page, stack_health.PROCESS_RESIDENT)
    assert set(cpu) == expected and set(resident) == expected
    assert all(value > 1_000_000 for value in resident.values())
    assert cpu[(stack_health.SUPERVISOR_PART, os.getpid())] > 0  # this test's interpreter has run a while


def test_a_part_given_up_has_no_processes() -> None:
    from process_supervisor import PartStatus

    status = {"inference": PartStatus("down", 6, "exited", pid=os.getpid())}
    assert set(stack_health.processes_of_parts(status)) == {stack_health.SUPERVISOR_PART}
