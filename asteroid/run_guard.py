"""A run that fails fast and ends cleanly: the pipeline controller and each step watch the ClearML server and
give up, in one line naming themselves and the server, once it has not answered for a bounded time; SIGTERM
and SIGINT end them within seconds, their child processes included, with their task marked stopped.

The SDK, even with its retries bounded (the embedded backend's clearml.conf), keeps calling a dead server:
its calls fail after a few retries, but the pipeline controller and the reporting threads catch the
failure and try again, for as long as the run lasts. A watchdog thread is the one place that sees the
server gone for good.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from process_supervisor.probes import pid_alive

GIVE_UP_ENV = "ASTEROID_SERVER_GIVE_UP_SECONDS"
DEFAULT_GIVE_UP_S = 45.0  # with the check period and the children's grace, a run ends within 60 s
CHECK_PERIOD_S = 2.0
CHILD_GRACE_S = 3.0  # between SIGTERM and SIGKILL of the run's child processes
MARK_TIMEOUT_S = 5.0  # how long marking the task may take before the process exits anyway


def give_up_seconds() -> float:
    value = os.environ.get(GIVE_UP_ENV, "")
    try:
        seconds = float(value) if value else DEFAULT_GIVE_UP_S
    except ValueError:
        raise ValueError(f"{GIVE_UP_ENV} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise ValueError(f"{GIVE_UP_ENV} must be positive, got {value!r}")
    return seconds


def server_accepts(api_url: str, timeout: float = 2.0) -> bool:
    parts = urlsplit(api_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class ServerWatch:
    """Decides, at each check, whether the server has been unreachable for longer than ``give_up_after``."""

    api_url: str
    give_up_after: float
    reachable: Callable[[str], bool] = server_accepts
    clock: Callable[[], float] = time.monotonic
    _down_since: float | None = None

    def gone(self) -> bool:
        if self.reachable(self.api_url):
            self._down_since = None
            return False
        now = self.clock()
        self._down_since = now if self._down_since is None else self._down_since
        return now - self._down_since >= self.give_up_after


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every process below ``pid`` (children first), from /proc; empty where there is no /proc."""
    parents: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def same_session(pid: int) -> bool:
    try:
        return os.getsid(pid) == os.getsid(0)
    except OSError:
        return False


def stop_children(grace: float = CHILD_GRACE_S) -> None:
    """SIGTERM to every descendant of this process in its session (a service started detached, like the
    embedded backend, is meant to outlive the run), SIGKILL to those still there after ``grace``."""
    children = [pid for pid in descendants(os.getpid()) if same_session(pid)]
    for pid in children:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in children):
        time.sleep(0.1)
    for pid in children:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def mark_current_task(how: str, reason: str) -> None:
    """Mark this process's task ``stopped`` or ``failed`` (at most MARK_TIMEOUT_S: the server may be gone)."""

    def mark() -> None:
        from clearml import Task

        task = Task.current_task()
        if task is None:
            return
        if how == "stopped":
            task.mark_stopped(force=True, status_message=reason[:255])
        else:
            task.mark_failed(status_reason=reason[:255], force=True)

    worker = threading.Thread(target=mark, daemon=True)
    worker.start()
    worker.join(MARK_TIMEOUT_S)


def end_now(code: int, line: str, how: str) -> None:
    print(line, file=sys.stderr, flush=True)
    stop_children()
    if how:
        mark_current_task(how, line)
    sys.stdout.flush()
    os._exit(code)


def guard(who: str, api_url: str) -> None:
    """Watch the server from a daemon thread and end this process when it is gone; end it on SIGTERM/SIGINT
    (call from the main thread). ``who``: how the line names this process ("pipeline controller", "step
    'preprocessing'")."""
    watch = ServerWatch(api_url, give_up_seconds())

    def watchdog() -> None:
        while not watch.gone():
            time.sleep(CHECK_PERIOD_S)
        line = f"error: {who}: the ClearML server {api_url} has not answered for {watch.give_up_after:.0f} s"
        end_now(1, line + "; giving up", how="")

    threading.Thread(target=watchdog, name="server-watchdog", daemon=True).start()

    def on_signal(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        end_now(128 + signum, f"{who}: stopped by {name}", how="stopped")

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)


# --- runs whose process died without ending their task ----------------------------------------------------


def record_run(task_id: str, directory: Path) -> Path:
    """Note that this process runs ``task_id`` (removed by ``forget_run`` when the run ends, whatever way)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{task_id}.json"
    record = {"task": task_id, "pid": os.getpid(), "host": socket.gethostname()}
    path.write_text(json.dumps(record) + "\n")
    return path


def forget_run(path: Path) -> None:
    path.unlink(missing_ok=True)


def mark_abandoned(task_id: str, reason: str) -> list[str]:
    """Mark the task and its steps still ``in_progress`` failed with ``reason``; the ids marked."""
    from clearml import Task

    marked = []
    controller = Task.get_task(task_id=task_id)
    steps = Task.get_tasks(task_filter={"parent": task_id, "status": ["in_progress"]})
    for task in [controller, *steps]:
        if task.get_status() == "in_progress":
            task.mark_failed(status_reason=reason[:255], force=True)
            marked.append(task.id)
    return marked


def fail_abandoned_runs(
    directory: Path,
    alive: Callable[[int], bool] = pid_alive,
    mark: Callable[[str, str], list[str]] = mark_abandoned,
) -> list[str]:
    """Tasks of earlier runs on this host whose process is gone (a SIGKILL, a crash, a reboot): marked failed
    with the reason, their records removed; the ids marked."""
    marked = []
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            task_id, pid, host = str(record["task"]), int(record["pid"]), str(record["host"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if host != socket.gethostname() or alive(pid):
            continue
        marked += mark(task_id, f"its run (pid {pid} on {host}) ended without closing it")
        path.unlink(missing_ok=True)
    return marked
