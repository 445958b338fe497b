"""``python -m clearml_local serve|start|stop|status``: run the embedded backend in the foreground, or
manage it in the background with a pid file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

import global_config
from clearml_local.config import BackendConfig
from clearml_local.http_api import Observer

STARTUP_TIMEOUT_S = 30.0


def _config(args: argparse.Namespace) -> BackendConfig:
    return BackendConfig(
        data_dir=Path(args.data_dir).expanduser().resolve(),
        host=args.host,
        api_port=args.api_port,
        files_port=args.files_port,
        max_upload_bytes=global_config.BACKEND_MAX_UPLOAD_BYTES,
    )


def read_state(config: BackendConfig) -> dict | None:
    """The running server's pid and URLs, or None when it is not running."""
    try:
        state = json.loads(config.state_path.read_text())
    except (OSError, ValueError):
        return None
    if not _pid_alive(int(state.get("pid", 0))):
        return None
    return state


def _pid_alive(pid: int) -> bool:
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


def _observer(check_contract: bool, trace_path: str | None) -> Observer | None:
    """Optional request observers: schema-contract warnings and a JSON-lines trace of every call."""
    observers: list[Observer] = []
    if check_contract:
        from clearml_local.contract import ContractChecker

        checker = ContractChecker()

        def check(endpoint: str, body: dict, data: dict | None, status: int) -> None:
            before = len(checker.violations)
            checker(endpoint, body, data, status)
            for violation in checker.violations[before:]:
                logging.getLogger("clearml_local.contract").warning("%s", violation)

        observers.append(check)
    if trace_path:
        trace = open(trace_path, "a", buffering=1)  # noqa: SIM115 (open for the server's lifetime)
        lock = threading.Lock()

        def record(endpoint: str, body: dict, data: dict | None, status: int) -> None:
            line = json.dumps(
                {"t": time.time(), "endpoint": endpoint, "status": status, "body": body, "data": data},
                default=str,
            )
            with lock:
                trace.write(line + "\n")

        observers.append(record)
    if not observers:
        return None
    return lambda *args: [observer(*args) for observer in observers] and None


def serve(config: BackendConfig, check_contract: bool = False, trace_path: str | None = None) -> int:
    from clearml_local.server import EmbeddedBackend

    backend = EmbeddedBackend(config, observer=_observer(check_contract, trace_path)).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"ClearML embedded backend: API {backend.api_url}  files {backend.files_url}", flush=True)
    print(f"Data directory: {config.data_dir}", flush=True)
    print(f"Point the clearml SDK at it:  export CLEARML_CONFIG_FILE={backend.clearml_conf}", flush=True)
    stop.wait()
    backend.stop()
    print("ClearML embedded backend stopped", flush=True)
    return 0


def start(config: BackendConfig, quiet: bool = False) -> dict:
    """Start the server in the background (if not running) and wait until it answers."""
    state = read_state(config)
    if state and is_answering(state["api_url"]):
        if not quiet:
            print(f"ClearML embedded backend already running (pid {state['pid']}) at {state['api_url']}")
        return state
    config.data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "clearml_local",
        "serve",
        "--data-dir",
        str(config.data_dir),
        "--host",
        config.host,
        "--api-port",
        str(config.api_port),
        "--files-port",
        str(config.files_port),
    ]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(global_config.ROOT), os.environ.get("PYTHONPATH", "")])
    )
    with config.log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    config.pid_path.write_text(str(process.pid))
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the embedded ClearML backend exited with code {process.returncode}: "
                f"{_last_line(config.log_path)} (log: {config.log_path})"
            )
        state = read_state(config)
        if state and state.get("pid") == process.pid and is_answering(state["api_url"], timeout=0.5):
            if not quiet:
                print(f"ClearML embedded backend started (pid {process.pid}) at {state['api_url']}")
            return state
        time.sleep(0.05)
    process.terminate()
    raise RuntimeError(
        f"the embedded ClearML backend did not answer within {STARTUP_TIMEOUT_S:.0f}s; see {config.log_path}"
    )


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def stop(config: BackendConfig) -> bool:
    state = read_state(config)
    if state is None:
        print("ClearML embedded backend is not running")
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    config.pid_path.unlink(missing_ok=True)
    print(f"ClearML embedded backend stopped (pid {pid})")
    return True


def status(config: BackendConfig) -> int:
    state = read_state(config)
    if state and is_answering(state["api_url"]):
        print(f"running (pid {state['pid']}): API {state['api_url']}  files {state['files_url']}")
        print(f"export CLEARML_CONFIG_FILE={config.clearml_conf_path}")
        return 0
    print("not running")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clearml_local", description=__doc__)
    parser.add_argument("command", choices=["serve", "start", "stop", "status"])
    parser.add_argument("--data-dir", default=str(global_config.BACKEND_DATA_DIR))
    parser.add_argument("--host", default=global_config.BACKEND_HOST)
    parser.add_argument("--api-port", type=int, default=global_config.BACKEND_API_PORT)
    parser.add_argument("--files-port", type=int, default=global_config.BACKEND_FILES_PORT)
    parser.add_argument("--check-contract", action="store_true", help="log replies that break the SDK schema")
    parser.add_argument(
        "--trace", metavar="FILE", help="append every API call and reply to FILE (JSON lines)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    config = _config(args)
    try:
        if args.command == "serve":
            return serve(config, args.check_contract, args.trace)
        if args.command == "start":
            start(config)
            return 0
        if args.command == "stop":
            stop(config)
            return 0
        return status(config)
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
