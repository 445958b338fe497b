"""Running the backend as a background process: ``start``, ``stop`` and ``status``, on the project's one
process supervisor (``process_supervisor``).

One state file, ``<data dir>/backend.json``, written by the serving process itself once both servers listen
(its pid and the URLs it actually bound) and removed when it stops. A state file whose pid is gone (after a
``kill -9``) reads as "not running".
"""

from __future__ import annotations

import os
import sys
from typing import Any

from clearml_local.config import BackendConfig
from process_supervisor import StateFile, http_ok, start_detached, stop_detached

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
WHAT = "the embedded ClearML backend"


def state_file(config: BackendConfig) -> StateFile:
    return StateFile(config.state_path)


def read_state(config: BackendConfig) -> dict[str, Any] | None:
    """The running server's pid and URLs, or None when it is not running."""
    return state_file(config).running()


def write_state(config: BackendConfig, api_url: str, files_url: str) -> None:
    """Called by the serving process; atomic, so a reader never sees half a file."""
    state_file(config).write({"pid": os.getpid(), "api_url": api_url, "files_url": files_url})


def clear_state(config: BackendConfig) -> None:
    """Called by the serving process when it stops: removes the state file if it is its own."""
    state_file(config).remove_if_own()


def is_answering(api_url: str, timeout: float = 2.0) -> bool:
    return http_ok(f"{api_url}/debug.ping", timeout=timeout)


def serve_command(config: BackendConfig) -> list[str]:
    return [
        sys.executable, "-m", "clearml_local", "serve", "--data-dir", str(config.data_dir),
        "--host", config.host, "--api-port", str(config.api_port), "--files-port", str(config.files_port),
        "--max-upload-mb", str(config.max_upload_bytes // (1024 * 1024)),
    ]  # fmt: skip


def start(config: BackendConfig, quiet: bool = False) -> dict[str, Any]:
    """Start the server in the background (if not running) and wait until it answers; its state.
    RuntimeError (``process_supervisor.SupervisorError``) in one line when it exits or does not answer."""
    state = read_state(config)
    if state and is_answering(state["api_url"]):
        _say(quiet, f"ClearML embedded backend already running (pid {state['pid']}) at {state['api_url']}")
        return state
    config.data_dir.mkdir(parents=True, exist_ok=True)
    child, state = start_detached(
        WHAT,
        serve_command(config),
        config.log_path,
        state_file(config),
        timeout=STARTUP_TIMEOUT_S,
        answers=lambda found: is_answering(found["api_url"], timeout=0.5),
        stop_grace=STOP_TIMEOUT_S,
    )
    _say(quiet, f"ClearML embedded backend started (pid {child.pid}) at {state['api_url']}")
    return state


def stop(config: BackendConfig, quiet: bool = False) -> bool:
    """Stop the background server (SIGTERM, then SIGKILL after a grace period); False if none ran."""
    stopped = stop_detached(state_file(config), grace=STOP_TIMEOUT_S)
    if stopped is None:
        _say(quiet, "ClearML embedded backend is not running")
        return False
    _say(quiet, f"ClearML embedded backend stopped (pid {stopped.pid})")
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
