"""Process plumbing for the stack: free-port checks, child processes with logs, readiness polled with a
deadline, stopping with a grace period, and the state file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

POLL_INTERVAL_S = 0.1


class StackError(RuntimeError):
    """A part of the stack could not be started or does not answer; the message is one line to act on."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def accepts_connections(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return 200 <= reply.status < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False


def spawn(command: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    """Start a child in this process group (so stopping the group stops it), output appended to its log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env)
        )


def wait_ready(
    name: str, ready: Callable[[], bool], process: subprocess.Popen, timeout: float, log_path: Path
) -> float:
    """Poll `ready` until it holds; returns the seconds taken. Fails when the process exits or time is up."""
    began = time.monotonic()
    deadline = began + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"{name} exited with code {process.returncode}: {last_line(log_path)} (log: {log_path})"
            )
        if ready():
            return time.monotonic() - began
        time.sleep(POLL_INTERVAL_S)
    raise StackError(f"{name} did not become ready within {timeout:.0f} s (log: {log_path})")


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (clearml-serving's app ignores SIGTERM for a while)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(POLL_INTERVAL_S)
    return not pid_alive(pid)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip()[:300] if lines else "no output"


def write_json_atomically(path: Path, data: dict) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
