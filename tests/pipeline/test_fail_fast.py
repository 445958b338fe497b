"""A run fails fast and ends cleanly (asteroid/run_guard.py): the server watch's rule with a fake clock; and
pipeline.py end to end on its own embedded backend, once with the backend killed with SIGKILL mid-run (exit
1 in bounded time, one line naming the server) and once stopped with SIGTERM (within seconds, children
included, the pipeline task marked stopped)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asteroid import run_guard
from asteroid.run_guard import ServerWatch, descendants
from process_supervisor import pid_alive
from tests.backend.backend_harness import wait_for
from tests.pipeline.test_server_choice import ROOT, Sandbox, sandbox  # noqa: F401

GIVE_UP_S = 8.0
ENDS_WITHIN_S = GIVE_UP_S + run_guard.CHECK_PERIOD_S + run_guard.CHILD_GRACE_S + 15  # + process teardown


def test_the_server_counts_as_gone_only_after_answering_nothing_for_the_whole_bound() -> None:
    now, answers = [0.0], [True]
    watch = ServerWatch("http://x:1", 30.0, reachable=lambda url: answers[0], clock=lambda: now[0])
    assert not watch.gone()
    answers[0] = False
    for now[0] in (10.0, 25.0, 39.9):
        assert not watch.gone()
    answers[0] = True
    now[0] = 41.0
    assert not watch.gone()  # it answered again: the bound starts over
    answers[0] = False
    for now[0] in (50.0, 79.0):
        assert not watch.gone()
    now[0] = 80.0
    assert watch.gone()


def test_the_default_bound_ends_a_run_within_60_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(run_guard.GIVE_UP_ENV, raising=False)
    assert run_guard.give_up_seconds() + run_guard.CHECK_PERIOD_S + run_guard.CHILD_GRACE_S <= 60
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(run_guard.GIVE_UP_ENV, bad)
        with pytest.raises(ValueError, match=run_guard.GIVE_UP_ENV):
            run_guard.give_up_seconds()


def test_descendants_are_found_through_every_generation(tmp_path: Path) -> None:
    for pid, ppid in ((10, 1), (11, 10), (12, 11), (13, 1), (14, 10)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (py (x)) S {ppid} 0 0")
    assert sorted(descendants(10, proc=tmp_path)) == [11, 12, 14]


def start_pipeline(sandbox: Sandbox, log: Path) -> subprocess.Popen:  # noqa: F811
    env = {**sandbox.env({}), run_guard.GIVE_UP_ENV: str(GIVE_UP_S)}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, str(ROOT / "pipeline.py"), "--seeds", "3"], cwd=sandbox.root,
                                env=env, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip


def backend_pid(sandbox: Sandbox) -> int:  # noqa: F811
    return int(json.loads((sandbox.embedded_dir / "backend.json").read_text())["pid"])


def is_python_script(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return len(argv) > 1 and b"python" in argv[0] and argv[1].endswith(b".py")


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def steps(process: subprocess.Popen) -> list[int]:
    """The step processes the controller runs: new interpreters running a step's script, or children of
    the step zygote (a child of the controller, forked from it or running ``asteroid.step_zygote``); not the
    embedded backend, which runs detached, nor git, nor the zygote itself."""
    controller = cmdline(process.pid)
    pids = descendants(process.pid)
    zygotes = {
        pid
        for pid in pids
        if parent_of(pid) == process.pid
        and (cmdline(pid) == controller or b"asteroid.step_zygote" in cmdline(pid))
    }
    return [
        pid
        for pid in pids
        if pid not in zygotes
        and (parent_of(pid) in zygotes or (is_python_script(pid) and cmdline(pid) != controller))
    ]


def wait_for_a_step(process: subprocess.Popen) -> list[int]:
    """Until the controller runs a step process; those processes then."""
    wait_for(lambda: process.poll() is not None or len(steps(process)) > 0, "a step process", 180, 0.2)
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    return steps(process)


def stop_backend(sandbox: Sandbox) -> None:  # noqa: F811
    subprocess.run([sys.executable, "-m", "clearml_local", "stop"], env=sandbox.env({}), capture_output=True,
                   timeout=60, check=False)  # fmt: skip


def test_a_backend_killed_mid_run_ends_the_pipeline_with_exit_1_in_bounded_time(
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    process = start_pipeline(sandbox, tmp_path / "pipeline.log")
    try:
        children = wait_for_a_step(process)
        os.kill(backend_pid(sandbox), signal.SIGKILL)
        killed_at = time.monotonic()
        process.wait(ENDS_WITHIN_S)
        seconds = time.monotonic() - killed_at
        stderr = process.stderr.read().decode()
        print(f"pipeline ended {seconds:.1f} s after the backend's SIGKILL")
        assert process.returncode == 1
        url = f"http://127.0.0.1:{sandbox.embedded_port}"
        line = f"error: pipeline controller: the ClearML server {url} has not answered for 8 s; giving up"
        assert line in stderr.splitlines(), stderr[-2000:]
        assert stderr.count("Retrying") < 50
        wait_for(lambda: not any(pid_alive(pid) for pid in children), "the steps ended", 15, 0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        stop_backend(sandbox)


def test_sigterm_ends_a_run_within_seconds_with_its_children_and_the_task_marked_stopped(
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    process = start_pipeline(sandbox, tmp_path / "pipeline.log")
    try:
        children = wait_for_a_step(process)
        process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        process.wait(30)
        seconds = time.monotonic() - began
        stderr = process.stderr.read().decode()
        print(f"pipeline ended {seconds:.1f} s after SIGTERM")
        assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
        assert "pipeline controller: stopped by SIGTERM" in stderr
        assert seconds < run_guard.CHILD_GRACE_S + run_guard.MARK_TIMEOUT_S + 5
        wait_for(lambda: not any(pid_alive(pid) for pid in children), "the steps ended", 15, 0.2)
        assert status_of_pipeline_task(sandbox) == "stopped"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        stop_backend(sandbox)


def status_of_pipeline_task(sandbox: Sandbox) -> str:  # noqa: F811
    """The status of the newest pipeline controller task, through the SDK on the sandbox's backend."""
    script = (
        "from clearml import Task\n"
        "tasks = Task.get_tasks(task_filter={'type': ['controller'], 'order_by': ['-created']})\n"
        "print(tasks[0].get_status())\n"
    )
    env = {**sandbox.env({}), "CLEARML_CONFIG_FILE": str(sandbox.embedded_dir / "clearml.conf")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]


def test_only_dead_runs_of_this_host_are_marked(tmp_path: Path) -> None:
    host = socket.gethostname()
    records = {"a": (101, host), "b": (102, host), "c": (103, "elsewhere")}
    for task, (pid, on) in records.items():
        (tmp_path / f"{task}.json").write_text(json.dumps({"task": task, "pid": pid, "host": on}))
    (tmp_path / "broken.json").write_text("{")
    marked: list[tuple[str, str]] = []

    def mark(task_id: str, reason: str) -> list[str]:
        marked.append((task_id, reason))
        return [task_id, f"{task_id}-step"]

    assert run_guard.fail_abandoned_runs(tmp_path, alive=lambda pid: pid == 102, mark=mark) == ["a", "a-step"]
    assert marked == [("a", f"its run (pid 101 on {host}) ended without closing it")]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.json", "c.json"]


def test_a_run_killed_with_sigkill_is_marked_failed_by_the_next_start(
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    process = start_pipeline(sandbox, tmp_path / "pipeline.log")
    try:
        wait_for_a_step(process)
        os.killpg(process.pid, signal.SIGKILL)  # the controller and its steps; the backend runs on
        process.wait(30)
        command = [sys.executable, str(ROOT / "pipeline.py"), "--source-csv", "/nonexistent.csv"]
        again = subprocess.run(command, cwd=sandbox.root, env=sandbox.env({}), capture_output=True, text=True,
                               timeout=180, check=False)  # fmt: skip
        marked = re.findall(r"marked task ([0-9a-f]{32}) failed", again.stdout)
        assert marked, again.stdout + again.stderr
        assert status_of_pipeline_task(sandbox) == "failed"
    finally:
        stop_backend(sandbox)
