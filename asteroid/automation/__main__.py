"""`python -m asteroid.automation start|stop|status|audit`: continuous training.

    start    the automation service in the background: the retrain receiver Alertmanager posts to, and
             ClearML's TaskScheduler (daily ingestion) and TriggerScheduler (a new raw dataset version
             retrains); waits until the receiver answers
    stop     stop it (pauses automation; a retrain already running goes on)
    status   whether it runs, the receiver's address, the schedulers' tasks
    audit    the retrain decisions (launched, suppressed by the cooldown, duplicate), newest last
    serve    the service in the foreground
    ingest   one ingestion now (`get data` with --query-date, default today UTC)

Configuration is the environment (asteroid/automation/config.py): ASTEROID_RETRAIN_HOST/PORT/TOKEN_FILE,
ASTEROID_RETRAIN_COOLDOWN_SECONDS, ASTEROID_RETRAIN_COMMAND, ASTEROID_INGEST_*, ASTEROID_AUTOMATION_SCHEDULES,
ASTEROID_AUTOMATION_PROFILE (production | drill), NEO_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import sqlalchemy as sa

from asteroid.automation import store
from asteroid.automation.config import AutomationConfig
from asteroid.automation.retrain import utc_day
from process_supervisor import SupervisorError, http_ok, start_detached, stop_detached

START_TIMEOUT_S = 120.0  # the schedulers' tasks are created on the server before the service is ready
STOP_GRACE_S = 10.0


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


def audit(config: AutomationConfig, limit: int) -> int:
    with store.engine(config.database_url).connect() as connection:
        rows = store.decisions(connection, limit)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asteroid.automation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status", "serve"):
        commands.add_parser(name)
    audit_parser = commands.add_parser("audit")
    audit_parser.add_argument("--limit", type=int, default=50, help="newest decisions shown (50)")
    ingest_parser = commands.add_parser("ingest")
    ingest_parser.add_argument("--query-date", default=None, help="YYYY-MM-DD (default: today, UTC)")
    args = parser.parse_args(argv)
    try:
        config = AutomationConfig.from_env()
        if args.command == "ingest":
            from asteroid.automation import ingest

            ingest.run(args.query_date or utc_day(time.time()))
            return 0
        if args.command == "serve":
            from asteroid.automation.service import serve

            return serve(config)
        if args.command == "audit":
            return audit(config, args.limit)
        return {"start": start, "stop": stop, "status": status}[args.command](config)
    except (ValueError, OSError, sa.exc.SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
