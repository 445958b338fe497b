"""The automation service in the foreground: a supervisor (process_supervisor) of its parts, each a process
restarted with backoff when it exits — the retrain receiver with its launch worker, and each configured
ClearML scheduler (one per process: the SDK's schedulers call ``Task.init``, one task per process). It writes
its state file once every part is ready and removes it when it ends (SIGTERM or SIGINT end it and its parts;
a running retrain is a process of its own and goes on)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import global_config
from asteroid.automation import schedules, store
from asteroid.automation.config import AutomationConfig
from asteroid.automation.launcher import CommandLauncher
from asteroid.automation.receiver import make_server, read_or_create_token
from asteroid.automation.retrain import Retrainer
from process_supervisor import Part, RestartWithBackoff, StateFile, Supervisor, http_ok

# Set by an agent running the service task: a part must not take the service's task for its own.
TASK_BINDING_ENV = ("CLEARML_TASK_ID", "TRAINS_TASK_ID", "CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID")
SCHEDULER_READY_TIMEOUT_S = 120.0


def state_file(config: AutomationConfig) -> StateFile:
    return StateFile(config.state_path)


def write_extra_receivers(config: AutomationConfig) -> None:
    """The serving stack's extra-receivers file routing the retraining alerts here."""
    config.extra_receivers_path.parent.mkdir(parents=True, exist_ok=True)
    config.extra_receivers_path.write_text(json.dumps([config.alertmanager_receiver()], indent=2) + "\n")


def part_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in TASK_BINDING_ENV}


def parts(config: AutomationConfig) -> list[Part]:
    command = [sys.executable, "-m", "asteroid.automation"]
    healthz = config.url.rsplit("/", 1)[0] + "/healthz"
    receiver = Part(
        "receiver",
        [*command, "receiver"],
        config.data_dir / "receiver.log",
        env=part_env(),
        ready=lambda: http_ok(healthz),
        policy=RestartWithBackoff(),
    )
    return [receiver] + [
        Part(
            name,
            [*command, "scheduler", name],
            config.data_dir / f"scheduler-{name}.log",
            env=part_env(),
            ready=lambda name=name: schedules.task_file(config, name).exists(),  # type: ignore[misc]
            ready_timeout=SCHEDULER_READY_TIMEOUT_S,
            stop_grace=2.0,
            policy=RestartWithBackoff(),
        )
        for name in config.schedules
    ]


def scheduler_tasks(config: AutomationConfig) -> dict[str, str]:
    tasks = {}
    for name in config.schedules:
        try:
            tasks[name] = json.loads(schedules.task_file(config, name).read_text())["task_id"]
        except (OSError, ValueError, KeyError):
            tasks[name] = ""
    return tasks


def serve(config: AutomationConfig, announce: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run the parts until SIGTERM/SIGINT; ``announce`` gets the state once every part is ready (a service
    task records it on its task)."""
    read_or_create_token(config.token_path)  # once, before the parts read it
    engine = store.engine(config.database_url)  # the table exists before any part writes
    write_extra_receivers(config)
    for name in config.schedules:
        schedules.task_file(config, name).unlink(missing_ok=True)
    supervisor = Supervisor(parts(config), whole="the automation service")
    signal.signal(signal.SIGTERM, lambda signum, frame: supervisor.request_stop())
    signal.signal(signal.SIGINT, lambda signum, frame: supervisor.request_stop())
    states = state_file(config)

    def on_ready(timings: dict[str, float]) -> None:
        state = {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "url": config.url,
            "token_file": str(config.token_path),
            "extra_receivers_file": str(config.extra_receivers_path),
            "database": engine.url.render_as_string(hide_password=True),
            "profile": config.profile,
            "cooldown_seconds": config.cooldown_seconds,
            "schedulers": scheduler_tasks(config),
            "parts": supervisor.pids(),
            "started_at": time.time(),
        }
        states.write(state)
        if announce is not None:
            announce(state)

    try:
        return supervisor.run(on_ready)
    finally:
        states.remove_if_own()


def run_receiver(config: AutomationConfig) -> int:
    """The retrain receiver and its launch worker, until SIGTERM/SIGINT."""
    token = read_or_create_token(config.token_path)
    launcher = CommandLauncher(config.command, config.launches_dir, global_config.ROOT)
    engine = store.engine(config.database_url)
    retrainer = Retrainer(engine, launcher, config.cooldown_seconds, poll_seconds=config.launch_poll_seconds)
    try:
        server = make_server(config.host, config.port, retrainer, token, config.max_body_bytes)
    except OSError as exc:
        raise OSError(
            f"the retrain receiver cannot listen on {config.host}:{config.port}: {exc.strerror}"
        ) from None

    def on_signal(signum: int, frame: object) -> None:
        signal.signal(signum, signal.SIG_IGN)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    retrainer.start_worker()  # launches queued before a restart start now
    print(f"retrain receiver on {config.url}", flush=True)
    try:
        server.serve_forever()
    finally:
        retrainer.stop()
        server.server_close()
    return 0
