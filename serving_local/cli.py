"""``python -m serving_local serve|start|stop|status``: the local clearml-serving stack in the foreground,
or in the background with a state file in its data directory (``.serving_local`` by default).

    python -m serving_local start --service-id <id> [--port 8080] [--metrics-port 9999] [--broker-port 9092]
                                  [--workers N] [--poll-seconds S] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from serving_local.config import StackConfig
from serving_local.processes import (
    StackError,
    kill_group,
    last_line,
    pid_alive,
    read_json,
    wait_pid_gone,
)
from serving_local.service_check import check_service
from serving_local.stack import READY_TIMEOUT_S, STOP_GRACE_S, Stack, check_ports

START_TIMEOUT_S = sum(READY_TIMEOUT_S.values()) + 30


def read_state(config: StackConfig) -> dict | None:
    """The running stack's state, or None when it is not running."""
    state = read_json(config.state_path)
    if state and pid_alive(int(state.get("pid", 0))):
        return state
    return None


def preflight(config: StackConfig) -> str:
    config.validate()
    check_ports(config)
    return check_service(config.service_id)


def serve(config: StackConfig) -> int:
    name = preflight(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"serving service {config.service_id} ({name!r})", flush=True)
    return Stack(config).run()


def start(config: StackConfig) -> dict:
    """Start the stack in the background (unless it runs) and wait until every part answers."""
    state = read_state(config)
    if state:
        if state.get("service_id") != config.service_id and config.service_id:
            raise StackError(
                f"a stack for service {state['service_id']} runs from {config.data_dir}; stop it first"
            )
        print(f"serving stack already running (pid {state['pid']}) at {state['serve_url']}")
        return state
    name = preflight(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.state_path.unlink(missing_ok=True)
    print(f"starting the serving stack for service {config.service_id} ({name!r}); logs in {config.data_dir}")
    with config.log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving_local", "serve", *_arguments(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"the serving stack did not start: {last_line(config.log_path)} (log {config.log_path})"
            )
        state = read_state(config)
        if state and state.get("pid") == process.pid:
            print_state(state)
            return state
        time.sleep(0.1)
    stop(config, quiet=True)
    raise StackError(f"the serving stack was not ready within {START_TIMEOUT_S:.0f} s; see {config.log_path}")


def _arguments(config: StackConfig) -> list[str]:
    return [
        "--service-id", config.service_id, "--data-dir", str(config.data_dir), "--host", config.host,
        "--port", str(config.port), "--metrics-port", str(config.metrics_port),
        "--broker-port", str(config.broker_port), "--workers", str(config.workers),
        "--poll-seconds", str(config.poll_seconds),
    ]  # fmt: skip


def stop(config: StackConfig, quiet: bool = False) -> bool:
    """Stop the stack this data directory's state file names: its supervisor and every process it started."""
    state = read_json(config.state_path)
    if not state or not pid_alive(int(state.get("pid", 0))):
        config.state_path.unlink(missing_ok=True)
        if not quiet:
            print("serving stack is not running")
        return False
    pid, pgid = int(state["pid"]), int(state.get("pgid", state["pid"]))
    os.kill(pid, signal.SIGTERM)
    if not wait_pid_gone(pid, timeout=STOP_GRACE_S * 3 + 5):
        print(f"serving stack (pid {pid}) did not stop in time; killing its process group", file=sys.stderr)
    kill_group(pgid)  # whatever is left of the group (the supervisor, a part that ignored SIGTERM)
    config.state_path.unlink(missing_ok=True)
    if not quiet:
        print(f"serving stack stopped (pid {pid})")
    return True


def print_state(state: dict) -> None:
    print(f"serving stack running (pid {state['pid']}) for service {state['service_id']}")
    print(f"  inference:        {state['serve_url']}/<endpoint>")
    print(f"  request metrics:  {state['request_metrics_url']}")
    print(f"  statistics:       {state['statistics_url']}")
    print(f"  broker (Kafka):   {state['broker']}")


def status(config: StackConfig) -> int:
    state = read_state(config)
    if not state:
        print("serving stack is not running")
        return 1
    print_state(state)
    down = [name for name, pid in state.get("pids", {}).items() if not pid_alive(int(pid))]
    if down:
        print(f"  down: {', '.join(down)}")
        return 1
    return 0


def parse_args(argv: list[str] | None) -> tuple[str, StackConfig]:
    defaults = StackConfig.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m serving_local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["serve", "start", "stop", "status"])
    parser.add_argument("--service-id", help="the clearml-serving service to run (clearml-serving list)")
    parser.add_argument("--data-dir", help=f"logs and state (default {defaults.data_dir})")
    parser.add_argument("--host", help=f"interface every part listens on (default {defaults.host})")
    parser.add_argument("--port", type=int, help=f"inference app (default {defaults.port})")
    parser.add_argument(
        "--metrics-port", type=int, help=f"statistics controller (default {defaults.metrics_port})"
    )
    parser.add_argument(
        "--broker-port", type=int, help=f"Kafka-protocol broker (default {defaults.broker_port})"
    )
    parser.add_argument(
        "--workers", type=int, help=f"inference worker processes (default {defaults.workers})"
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        help=f"configuration and model sync period (default {defaults.poll_seconds})",
    )
    args = parser.parse_args(argv)
    config = defaults.with_overrides(
        service_id=args.service_id,
        data_dir=None if args.data_dir is None else Path(args.data_dir).expanduser().resolve(),
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        broker_port=args.broker_port,
        workers=args.workers,
        poll_seconds=args.poll_seconds,
    )
    return args.command, config


def main(argv: list[str] | None = None) -> int:
    command, config = parse_args(argv)
    try:
        if command == "serve":
            return serve(config)
        if command == "start":
            start(config)
            return 0
        if command == "stop":
            stop(config)
            return 0
        return status(config)
    except (StackError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
