"""The automation service in the foreground: the retrain receiver, the launch worker and the ClearML
schedulers (those configured) in one process, which writes its state file once the receiver answers and
removes it when it ends (SIGTERM or SIGINT end it cleanly; a running retrain is a process of its own and
goes on)."""

from __future__ import annotations

import json
import os
import signal
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
from process_supervisor import StateFile


def state_file(config: AutomationConfig) -> StateFile:
    return StateFile(config.state_path)


def write_extra_receivers(config: AutomationConfig) -> None:
    """The serving stack's extra-receivers file routing the retraining alerts here."""
    config.extra_receivers_path.parent.mkdir(parents=True, exist_ok=True)
    config.extra_receivers_path.write_text(json.dumps([config.alertmanager_receiver()], indent=2) + "\n")


def start_schedulers(config: AutomationConfig, retrainer: Retrainer) -> dict[str, str]:
    """Start the configured ClearML schedulers; name -> the id of its task on the server."""
    if not config.schedules:
        return {}
    from asteroid.clearml_server import ensure_server

    ensure_server(verbose=True)
    built: dict[str, Any] = {}
    if "ingest" in config.schedules:
        built["ingest"] = schedules.ingest_scheduler(config)
    if "dataset" in config.schedules:
        built["dataset"] = schedules.dataset_trigger(config, retrainer)
    for name, scheduler in built.items():
        schedules.start_in_thread(scheduler, f"scheduler-{name}")
    return {name: _task_id(scheduler) for name, scheduler in built.items()}


def _task_id(scheduler: Any, deadline_s: float = 60.0) -> str:
    """The id of the scheduler's own task, which the SDK creates once its loop starts."""
    deadline = time.monotonic() + deadline_s
    while getattr(scheduler, "_task", None) is None and time.monotonic() < deadline:
        time.sleep(0.2)  # polling interval, bounded by the deadline
    task = getattr(scheduler, "_task", None)
    return str(task.id) if task is not None else ""


def serve(config: AutomationConfig, announce: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run until SIGTERM/SIGINT; ``announce`` gets the state once the receiver answers (a service task
    records it on its task)."""
    token = read_or_create_token(config.token_path)
    engine = store.engine(config.database_url)
    launcher = CommandLauncher(config.command, config.launches_dir, global_config.ROOT)
    retrainer = Retrainer(engine, launcher, config.cooldown_seconds, poll_seconds=config.launch_poll_seconds)
    server = make_server(config.host, config.port, retrainer, token, config.max_body_bytes)
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    states = state_file(config)
    try:
        retrainer.start_worker()  # launches queued before a restart start now
        write_extra_receivers(config)
        scheduler_tasks = start_schedulers(config, retrainer)
        states.write(
            {
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "url": config.url,
                "token_file": str(config.token_path),
                "extra_receivers_file": str(config.extra_receivers_path),
                "database": engine.url.render_as_string(hide_password=True),
                "profile": config.profile,
                "cooldown_seconds": config.cooldown_seconds,
                "schedulers": scheduler_tasks,
                "started_at": time.time(),
            }
        )
        if announce is not None:
            announce(states.read() or {})
        print(f"retrain receiver on {config.url}; schedulers: {scheduler_tasks or 'none'}", flush=True)
        server.serve_forever()
    finally:
        retrainer.stop()
        server.server_close()
        states.remove_if_own()
    return 0
