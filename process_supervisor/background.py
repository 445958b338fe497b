"""A service run in the background: ``start_detached`` launches it in a session of its own and waits, with a
deadline, until the state file it writes once it answers names it; ``stop_detached`` stops the process that
file names. The state file is the service's: one JSON object with at least its ``pid`` (and ``pgid`` when it
leads a process group of children), written atomically so a reader never sees half of it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from process_supervisor.probes import last_line, log_size, pid_alive
from process_supervisor.supervisor import POLL_INTERVAL_S, Child, SupervisorError, stop_child


class StateFile:
    def __init__(self, path: Path, alive: Callable[[int], bool] = pid_alive) -> None:
        self.path = path
        self._alive = alive

    def write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(temporary, self.path)

    def read(self) -> dict[str, Any] | None:
        """The state as written, whether or not its process still runs (None: no readable state)."""
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def running(self) -> dict[str, Any] | None:
        """The state when the process it names is alive (a file left by a ``kill -9`` reads as None)."""
        state = self.read()
        try:
            return state if state and self._alive(int(state.get("pid", 0))) else None
        except (TypeError, ValueError):
            return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def remove_if_own(self, pid: int | None = None) -> None:
        """Remove the file when it names this process (or ``pid``): a newer instance's file stays."""
        state = self.read()
        if state and state.get("pid") == (os.getpid() if pid is None else pid):
            self.remove()


def detached_popen(command: Sequence[str], log_path: Path) -> subprocess.Popen:
    """The service in a new session (it outlives this process and leads its own process group)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def start_detached(
    what: str,
    command: Sequence[str],
    log_path: Path,
    state_file: StateFile,
    *,
    timeout: float,
    answers: Callable[[dict[str, Any]], bool] = lambda state: True,
    stop_grace: float = 5.0,
    popen: Callable[[Sequence[str], Path], Child] = detached_popen,
    killpg: Callable[[int, int], None] = os.killpg,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Child, dict[str, Any]]:
    """Start ``command`` detached and wait until ``state_file`` names it and ``answers(state)`` holds: the
    process and its state. SupervisorError in one line when it exits first (its log's last line) or is not
    ready within ``timeout`` seconds (then it is stopped, and whatever is left of its process group
    killed)."""
    since = log_size(log_path)
    child = popen(command, log_path)
    deadline = clock() + timeout
    while clock() < deadline:
        if child.poll() is not None:
            raise SupervisorError(
                f"{what} exited with code {child.returncode}: {last_line(log_path, since)} (log: {log_path})"
            )
        state = state_file.running()
        if state and state.get("pid") == child.pid and answers(state):
            return child, state
        sleep(POLL_INTERVAL_S)
    stop_child(child, stop_grace, clock, sleep)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        killpg(child.pid, signal.SIGKILL)
    raise SupervisorError(f"{what} was not ready within {timeout:.0f} s; see {log_path}")


@dataclass(frozen=True)
class Stopped:
    pid: int
    killed: bool  # it outlived the grace and got SIGKILL


def stop_detached(
    state_file: StateFile,
    *,
    grace: float,
    kill: Callable[[int, int], None] = os.kill,
    killpg: Callable[[int, int], None] = os.killpg,
    alive: Callable[[int], bool] = pid_alive,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Stopped | None:
    """SIGTERM to the process the state file names, SIGKILL after ``grace`` seconds; then, when it led its own
    process group, SIGKILL to whatever is left of the group (a child that ignored SIGTERM). None when no
    process ran. The state file is removed either way."""
    state = state_file.running()
    if state is None:
        state_file.remove()
        return None
    pid = int(state["pid"])
    leads_group = int(state.get("pgid", 0)) == pid
    kill(pid, signal.SIGTERM)
    deadline = clock() + grace
    while alive(pid) and clock() < deadline:
        sleep(POLL_INTERVAL_S)
    killed = alive(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if leads_group:
            killpg(pid, signal.SIGKILL)
        elif killed:
            kill(pid, signal.SIGKILL)
    state_file.remove()
    return Stopped(pid, killed)
