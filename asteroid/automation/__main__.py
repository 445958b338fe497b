"""`python -m asteroid.automation start|stop|status|audit`: continuous training.

    start    the automation service in the background: the retrain receiver Alertmanager posts to, and
             ClearML's TaskScheduler (daily ingestion) and TriggerScheduler (a new raw dataset version
             retrains); waits until the receiver answers
    stop     stop it (pauses automation; a retrain already running goes on)
    status   whether it runs, the receiver's address, the schedulers' tasks
    audit    the retrain decisions (launched, suppressed by the cooldown, duplicate), newest last
    serve    the service in the foreground (a supervisor of its parts: `receiver`, `scheduler ingest`,
             `scheduler dataset`, each also a command here)
    ingest   one ingestion now (`get data` with --query-date, default today UTC)
    alert-route  write the local serving stack's extra-receivers file routing the retraining alerts to the
             receiver (and its token), print its path: start the stack with SERVING_LOCAL_EXTRA_RECEIVERS=it

With --remote, start enqueues the service as a ClearML service task (queue `services`, --queue) for an agent
to run, with the agent's environment as its configuration; status and stop act on that task.

Configuration is the environment (asteroid/automation/config.py): ASTEROID_RETRAIN_HOST/PORT/TOKEN_FILE,
ASTEROID_RETRAIN_COOLDOWN_SECONDS, ASTEROID_RETRAIN_COMMAND, ASTEROID_INGEST_*, ASTEROID_AUTOMATION_SCHEDULES,
ASTEROID_AUTOMATION_PROFILE (production | drill), NEO_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time

import sqlalchemy as sa

from asteroid.automation import store
from asteroid.automation.config import SCHEDULES, AutomationConfig
from asteroid.automation.retrain import utc_day
from process_supervisor import SupervisorError, http_ok, start_detached, stop_detached

START_TIMEOUT_S = 120.0  # the schedulers' tasks are created on the server before the service is ready
STOP_GRACE_S = 20.0  # the supervisor stops its parts one after another, each with its own grace


def start(config: AutomationConfig) -> int:
    from asteroid.automation.service import state_file

    states = state_file(config)
    running = states.running()
    if running:
        print(f"automation already runs (pid {running['pid']}): retrain receiver {running['url']}")
        return 0
    command = [sys.executable, "-m", "asteroid.automation", "serve"]
    try:
        _child, state = start_detached(
            "automation service",
            command,
            config.log_path,
            states,
            timeout=START_TIMEOUT_S,
            answers=lambda s: http_ok(s["url"].rsplit("/", 1)[0] + "/healthz"),
        )
    except SupervisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_status(state)
    return 0


def print_status(state: dict) -> None:
    print(f"automation runs (pid {state['pid']}, profile {state.get('profile')})")
    print(f"  retrain receiver: {state['url']}  (bearer token in {state['token_file']})")
    print(f"  cooldown:         {state.get('cooldown_seconds', 0):g} s")
    for name, task_id in (state.get("schedulers") or {}).items():
        print(f"  scheduler {name}: ClearML task {task_id}")
    print(f"  alert route (local stack): SERVING_LOCAL_EXTRA_RECEIVERS={state['extra_receivers_file']}")
    print(f"  decisions:        {state['database']} (python -m asteroid.automation audit)")


def status(config: AutomationConfig) -> int:
    from asteroid.automation.service import state_file

    state = state_file(config).running()
    if state is None:
        print(f"automation is not running (its retrain receiver would listen on {config.url})")
        return 3
    print_status(state)
    return 0


def stop(config: AutomationConfig) -> int:
    from asteroid.automation.service import state_file

    stopped = stop_detached(state_file(config), grace=STOP_GRACE_S)
    if stopped is None:
        print("automation was not running")
    else:
        how = "killed after the grace" if stopped.killed else "stopped"
        print(f"automation {how} (pid {stopped.pid}); retrains already launched go on")
    return 0


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def audit(config: AutomationConfig, limit: int, as_json: bool = False) -> int:
    with store.engine(config.database_url).connect() as connection:
        rows = store.decisions(connection, limit)
    if as_json:  # for programs (e.g. a demo's timeline): every field, times as Unix seconds
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        return 0
    if not rows:
        print("no retrain decisions yet")
    for row in rows:
        launch = (
            f" | launch {row.launch_state} at {_when(row.launched_at)}: {row.launch_ref}"
            if row.launch_state
            else ""
        )
        print(
            f"#{row.id} {_when(row.decided_at)} UTC {row.source} {row.subject} ({row.event_key}): "
            f"{row.decision} — {row.reason}{launch}"
        )
    return 0


def start_remote(queue: str) -> int:
    from asteroid.automation import remote

    _connect()
    running = remote.running_tasks()
    if running:
        print(f"automation already runs as ClearML task {running[0].id} ({running[0].get_status()})")
        return 0
    task = remote.create_and_enqueue(queue)
    print(f"enqueued ClearML task {task.id} on queue {queue!r}; waiting for an agent to run it")
    try:
        state = remote.wait_for_state(task, START_TIMEOUT_S)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ClearML task {task.id}:")
    print_status(state)
    return 0


def status_remote() -> int:
    from asteroid.automation import remote

    _connect()
    running = remote.running_tasks()
    if not running:
        print("automation is not running as a ClearML task")
        return 3
    for task in running:
        state = remote.recorded_state(task)
        print(f"ClearML task {task.id} ({task.get_status()}):")
        if state:
            print_status(state)
    return 0


def stop_remote() -> int:
    from asteroid.automation import remote

    _connect()
    stopped = remote.stop_all()
    print(
        f"stopped ClearML task(s) {', '.join(stopped)}" if stopped else "automation was not running as a task"
    )
    return 0


def _connect() -> None:
    import third_party_patches
    from asteroid.clearml_server import ensure_server

    third_party_patches.install_clearml_sdk_patches()
    ensure_server(verbose=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asteroid.automation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status"):
        command = commands.add_parser(name)
        command.add_argument(
            "--remote", action="store_true", help="as a ClearML service task run by an agent"
        )
        if name == "start":
            command.add_argument("--queue", default="services", help="with --remote: the agent's queue")
    commands.add_parser("serve")
    commands.add_parser("alert-route")
    commands.add_parser("receiver")
    commands.add_parser("scheduler").add_argument("name", choices=SCHEDULES)
    audit_parser = commands.add_parser("audit")
    audit_parser.add_argument("--limit", type=int, default=50, help="newest decisions shown (50)")
    audit_parser.add_argument("--json", action="store_true", help="as a JSON array")
    ingest_parser = commands.add_parser("ingest")
    ingest_parser.add_argument("--query-date", default=None, help="YYYY-MM-DD (default: today, UTC)")
    args = parser.parse_args(argv)
    try:
        config = AutomationConfig.from_env()
        if args.command == "ingest":
            from asteroid.automation import ingest

            ingest.run(args.query_date or utc_day(time.time()))
            return 0
        if args.command in ("serve", "receiver"):
            from asteroid.automation.service import run_receiver, serve

            return serve(config) if args.command == "serve" else run_receiver(config)
        if args.command == "scheduler":
            from asteroid.automation.schedules import run_scheduler

            return run_scheduler(config, args.name)
        if args.command == "alert-route":
            from asteroid.automation.receiver import read_or_create_token
            from asteroid.automation.service import write_extra_receivers

            read_or_create_token(config.token_path)  # Alertmanager reads it as the route's credentials
            write_extra_receivers(config)
            print(config.extra_receivers_path)
            return 0
        if args.command == "audit":
            return audit(config, args.limit, args.json)
        if args.remote:
            remote_commands = {
                "start": lambda: start_remote(args.queue),
                "status": status_remote,
                "stop": stop_remote,
            }
            return remote_commands[args.command]()
        return {"start": start, "stop": stop, "status": status}[args.command](config)
    except (ValueError, OSError, RuntimeError, sa.exc.SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
