"""Running the backend as a background process: ``start``, ``stop`` and ``status``.

One state file, ``<data dir>/backend.json``, written by the serving process itself once both servers listen
(its pid and the URLs it actually bound) and removed when it stops. A state file whose pid is gone (after a
``kill -9``) reads as "not running".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from clearml_local.config import BackendConfig

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05


def read_state(config: BackendConfig) -> dict[str, Any] | None:
    """The running server's pid and URLs, or None when it is not running."""
    try:
        state = json.loads(config.state_path.read_text())
        pid = int(state.get("pid", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return state if pid_alive(pid) else None


def write_state(config: BackendConfig, api_url: str, files_url: str) -> None:
    """Called by the serving process; atomic, so a reader never sees half a file."""
    state = {"pid": os.getpid(), "api_url": api_url, "files_url": files_url}
    temp = config.state_path.with_suffix(".tmp")
    temp.write_text(json.dumps(state))
    os.replace(temp, config.state_path)


def clear_state(config: BackendConfig) -> None:
    """Called by the serving process when it stops: removes the state file if it is its own."""
    try:
        state = json.loads(config.state_path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(state, dict) and state.get("pid") == os.getpid():
        config.state_path.unlink(missing_ok=True)


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


def is_answering(api_url: str, timeout: float = 2.0) -> bool:
    try:
        reply = requests.get(f"{api_url}/debug.ping", timeout=timeout)
    except requests.RequestException:
        return False
    return reply.status_code == 200


def serve_command(config: BackendConfig) -> list[str]:
    return [
        sys.executable, "-m", "clearml_local", "serve", "--data-dir", str(config.data_dir),
        "--host", config.host, "--api-port", str(config.api_port), "--files-port", str(config.files_port),
        "--max-upload-mb", str(config.max_upload_bytes // (1024 * 1024)),
    ]  # fmt: skip


def start(config: BackendConfig, quiet: bool = False) -> dict[str, Any]:
    """Start the server in the background (if not running) and wait until it answers; its state."""
    state = read_state(config)
    if state and is_answering(state["api_url"]):
        _say(quiet, f"ClearML embedded backend already running (pid {state['pid']}) at {state['api_url']}")
        return state
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with config.log_path.open("ab") as log:
        process = subprocess.Popen(
            serve_command(config),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the embedded ClearML backend exited with code {process.returncode}: "
                f"{_last_line(config.log_path)} (log: {config.log_path})"
            )
        state = read_state(config)
        if state and state.get("pid") == process.pid and is_answering(state["api_url"], timeout=0.5):
            _say(quiet, f"ClearML embedded backend started (pid {process.pid}) at {state['api_url']}")
            return state
        time.sleep(POLL_INTERVAL_S)  # polling interval, bounded by the deadline
    process.terminate()
    raise RuntimeError(
        f"the embedded ClearML backend did not answer within {STARTUP_TIMEOUT_S:.0f}s; see {config.log_path}"
    )


def stop(config: BackendConfig, quiet: bool = False) -> bool:
    """Stop the background server (SIGTERM, then SIGKILL after a grace period); False if none ran."""
    state = read_state(config)
    if state is None:
        _say(quiet, "ClearML embedded backend is not running")
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(POLL_INTERVAL_S)  # polling interval, bounded by the deadline
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    config.state_path.unlink(missing_ok=True)
    _say(quiet, f"ClearML embedded backend stopped (pid {pid})")
    return True


def status(config: BackendConfig) -> int:
    """Print whether the server runs; 0 when it answers, 1 otherwise (a shell-friendly exit code)."""
    state = read_state(config)
    if state and is_answering(state["api_url"]):
        print(f"running (pid {state['pid']}): API {state['api_url']}  files {state['files_url']}")
        print(f"web view {state['api_url']}/projects")
        print(f"export CLEARML_CONFIG_FILE={config.clearml_conf_path}")
        return 0
    print("not running")
    return 1


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message)


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
