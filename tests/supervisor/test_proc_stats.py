"""CPU time and resident memory read from /proc: the stat line's fields (a command name with spaces and
parentheses included), and a real process group (a leader and the worker it starts) found by its leader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from process_supervisor import proc_stats

STAT = (
    "4242 (uvicorn: (worker) 1) S 4200 4240 4240 0 -1 4194560 2650 0 0 0 "
    "350 150 0 0 20 0 3 0 1027560 245760000 5000 18446744073709551615 1 1 0 0 0 0 0 4096 16386 0 0 0 17 1"
)

pytestmark = pytest.mark.skipif(not proc_stats.PROC.is_dir(), reason="no /proc on this system (Linux only)")


def test_a_stat_line_gives_group_cpu_seconds_and_resident_bytes() -> None:
    sample = proc_stats.parse_stat(STAT, clock_ticks=100, page_size=4096)
    assert sample == proc_stats.ProcessSample(
        pid=4242, pgid=4240, cpu_seconds=5.0, resident_bytes=5000 * 4096
    )


@pytest.mark.parametrize("line", ["", "4242 cat S 1 2", "4242 (cat) S 1 2 3"])
def test_a_line_of_another_shape_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        proc_stats.parse_stat(line)


def test_a_fake_proc_tree_is_grouped_by_leader(tmp_path: Path) -> None:
    for pid, pgid in ((10, 10), (11, 10), (12, 12), (13, 99)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(
            STAT.replace("4242", str(pid), 1).replace(" 4240 ", f" {pgid} ", 1)
        )
    (tmp_path / "self").mkdir()
    (tmp_path / "14").mkdir()  # a process gone between the listing and the read: no stat file
    groups = proc_stats.group_processes([10, 12, 50], tmp_path)
    assert {leader: [s.pid for s in members] for leader, members in groups.items()} == {
        10: [10, 11],
        12: [12],
        50: [],
    }


def test_a_real_group_lists_its_leader_and_worker_with_cpu_and_memory() -> None:
    busy = (
        "import subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        "print('ready', worker.pid, flush=True); time.sleep(60)"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", busy], stdout=subprocess.PIPE, text=True, process_group=0
    )
    try:
        ready, worker = leader.stdout.readline().split()
        assert ready == "ready"
        members = proc_stats.group_processes([leader.pid])[leader.pid]
        assert [m.pid for m in members] == [leader.pid, int(worker)]
        assert members[0].cpu_seconds >= 0.3
        assert all(m.resident_bytes > 1_000_000 for m in members)  # a Python interpreter holds megabytes
        before = proc_stats.read_process(leader.pid)
        assert before is not None and before.cpu_seconds == pytest.approx(members[0].cpu_seconds, abs=0.05)
    finally:
        os.killpg(leader.pid, signal.SIGKILL)  # the group this test started: leader and worker
        leader.wait(timeout=10)
    assert proc_stats.read_process(leader.pid) is None
