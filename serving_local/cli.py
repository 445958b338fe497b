"""``python -m serving_local serve|start|stop|status|reload|alerts``: the local clearml-serving stack in the
foreground, or in the background with a state file in its data directory (``.serving_local`` by default).

    python -m serving_local start --service-id <id> [--port 8080] [--metrics-port 9999] [--broker-port 9092]
                                  [--workers N] [--poll-seconds S] [--data-dir DIR]
                                  [--monitoring auto|on|off] [--prometheus-port 9090]
                                  [--alertmanager-port 9093] [--webhook-port 9097] [--scrape-seconds 15]
                                  [--node-exporter-port 9110]
                                  [--rules-dir DIR] [--alertmanager-config FILE] [--extra-part JSON ...]
    python -m serving_local reload            # Prometheus re-reads the rule files of the rules directory
    python -m serving_local alerts [--follow] # the notifications the webhook receiver got
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from process_supervisor import (
    NoSpaceLeft,
    StateFile,
    SupervisorError,
    pid_alive,
    probes,
    start_detached,
    stop_detached,
)
from process_supervisor.supervisor import kill_group
from serving_local import monitoring, service_tasks
from serving_local.alert_webhook import read_notifications
from serving_local.config import StackConfig
from serving_local.errors import StackError
from serving_local.extra_parts import ExtraPart
from serving_local.service_check import ServerCheckError, check_service, configured_server
from serving_local.stack import READY_TIMEOUT_S, STOP_GRACE_S, Stack, check_ports

START_TIMEOUT_S = sum(READY_TIMEOUT_S.values()) + 30


def start_timeout(config: StackConfig) -> float:
    return START_TIMEOUT_S + sum(part.ready_timeout for part in config.extra_parts)


def read_state(config: StackConfig) -> dict | None:
    """The running stack's state, or None when it is not running."""
    return StateFile(config.state_path).running()


def preflight(config: StackConfig) -> str:
    """The service's name, once the configuration, the ports, the ClearML server (named in one line) and
    the service are checked; StackError (in one line) when one of them is wrong."""
    config.validate()
    check_ports(config)
    try:
        server = configured_server()
        print(server.describe(), flush=True)
        return check_service(config.service_id, server)
    except ServerCheckError as exc:
        raise StackError(str(exc)) from None


def serve(config: StackConfig) -> int:
    name = preflight(config)  # its ports free: no part of an earlier stack of this data directory runs
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if line := service_tasks.fail_abandoned_line(config):
        print(line, flush=True)
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
    stop_orphans(config)
    check_writable(config.data_dir)
    name = preflight(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.state_path.unlink(missing_ok=True)
    print(f"starting the serving stack for service {config.service_id} ({name!r}); logs in {config.data_dir}")
    command = [sys.executable, "-m", "serving_local", "serve", *_arguments(config)]
    try:
        _, state = start_detached(
            "the serving stack", command, config.log_path, StateFile(config.state_path),
            timeout=start_timeout(config), stop_grace=STOP_GRACE_S * 3 + 5,
        )  # fmt: skip
    except SupervisorError as exc:
        raise StackError(str(exc)) from None
    print_state(state)
    return state


def _arguments(config: StackConfig) -> list[str]:
    return [
        "--service-id", config.service_id, "--data-dir", str(config.data_dir), "--host", config.host,
        "--port", str(config.port), "--metrics-port", str(config.metrics_port),
        "--broker-port", str(config.broker_port), "--workers", str(config.workers),
        "--poll-seconds", str(config.poll_seconds), "--monitoring", config.monitoring,
        "--prometheus-port", str(config.prometheus_port),
        "--alertmanager-port", str(config.alertmanager_port),
        "--webhook-port", str(config.webhook_port), "--scrape-seconds", str(config.scrape_seconds),
        "--node-exporter-port", str(config.node_exporter_port),
        "--rules-dir", str(config.rules_path), "--alert-group-wait", config.alert_group_wait,
        "--alert-group-interval", config.alert_group_interval,
        "--alert-repeat-interval", config.alert_repeat_interval,
        *(["--alertmanager-config", str(config.alertmanager_config)] if config.alertmanager_config else []),
        *(word for part in config.extra_parts for word in ("--extra-part", part.to_json())),
    ]  # fmt: skip


def check_writable(data_dir: Path) -> None:
    """StackError in one line when the data directory cannot take the stack's logs and state."""
    try:
        probes.check_writable(data_dir)
    except NoSpaceLeft as exc:
        raise StackError(str(exc)) from None
    except OSError as exc:
        raise StackError(f"cannot write in {data_dir}: {exc.strerror}") from None


def stop_orphans(config: StackConfig) -> list[str]:
    """The parts a supervisor that died without stopping them left running (each leads its own process
    group, named by its pid in the state file): killed, their names."""
    state = StateFile(config.state_path).read() or {}
    if state and pid_alive(int(state.get("pid", 0))):
        return []
    left = [name for name, pid in dict(state.get("pids", {})).items() if pid_alive(int(pid))]
    for name in left:
        kill_group(int(state["pids"][name]))
    if left:
        print(f"stopped what a dead supervisor left running: {', '.join(left)}", flush=True)
    return left


def stop(config: StackConfig, quiet: bool = False) -> bool:
    """Stop the stack this data directory's state file names: its supervisor and every process it started
    (what a dead supervisor left behind too)."""
    state = StateFile(config.state_path).read() or {}
    if stop_orphans(config):
        StateFile(config.state_path).remove()
        return True
    stopped = stop_detached(StateFile(config.state_path), grace=STOP_GRACE_S * 3 + 5)
    for pid in dict(state.get("pids", {})).values():
        kill_group(int(pid))
    if stopped is None:
        if not quiet:
            print("serving stack is not running")
        return False
    if stopped.killed:
        print(
            f"serving stack (pid {stopped.pid}) did not stop in time; killed its process group",
            file=sys.stderr,
        )
    if not quiet:
        print(f"serving stack stopped (pid {stopped.pid})")
    return True


def print_state(state: dict) -> None:
    print(f"serving stack running (pid {state['pid']}) for service {state['service_id']}")
    print(f"  inference:        {state['serve_url']}/<endpoint>")
    print(f"  request metrics:  {state['request_metrics_url']}")
    print(f"  statistics:       {state['statistics_url']}")
    print(f"  broker (Kafka):   {state['broker']}")
    if state.get("prometheus_url"):
        print(f"  prometheus:       {state['prometheus_url']}  (rules: {state['rules_dir']})")
        print(f"  alertmanager:     {state['alertmanager_url']}")
        print(f"  alert webhook:    {state['webhook_url']}  (-> {state['alerts_file']})")
    for name, url in dict(state.get("part_urls", {})).items():
        print(f"  {name + ':':<17} {url}")


def reload(config: StackConfig) -> int:
    """Make the running stack's Prometheus re-read its rule files."""
    state = read_state(config)
    if not state or not state.get("prometheus_url"):
        print("no serving stack with monitoring is running")
        return 1
    logs = state.get("logs", {})
    log = Path(logs["prometheus"]) if "prometheus" in logs else None
    monitoring.reload_prometheus(state["prometheus_url"], int(state["pids"]["prometheus"]), log)
    print(f"Prometheus reloaded its rules from {state['rules_dir']}")
    return 0


def describe_notification(record: dict) -> str:
    """One line per notification; whatever a record lacks or holds of the wrong type is shown as ``?``."""

    def one(alert: object) -> str:
        labels = alert.get("labels") if isinstance(alert, dict) else None
        labels = labels if isinstance(labels, dict) else {}
        text = ",".join(
            f"{key}={value}" for key, value in sorted(labels.items(), key=str) if key != "alertname"
        )
        status = alert.get("status", "?") if isinstance(alert, dict) else "?"
        return f"{labels.get('alertname', '?')}{{{text}}} {status}"

    alerts = record.get("alerts")
    described = ", ".join(one(alert) for alert in alerts) if isinstance(alerts, list) else "?"
    return f"{clock_time(record.get('received_at'))} {record.get('status', '?')}: {described}"


def clock_time(seconds: object) -> str:
    """HH:MM:SS of a Unix time, or ??:??:?? for anything that is not one."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return "??:??:??"
    try:
        return time.strftime("%H:%M:%S", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "??:??:??"


def alerts(config: StackConfig, follow: bool) -> int:
    """Print the webhook receiver's notifications; with follow, keep printing new ones (Ctrl-C stops)."""
    shown = 0
    while True:
        records = read_notifications(config.alerts_file)
        for record in records[shown:]:
            print(describe_notification(record), flush=True)
        shown = len(records)
        if not follow:
            return 0
        time.sleep(1.0)


def status(config: StackConfig) -> int:
    state = read_state(config)
    if not state:
        left = StateFile(config.state_path).read() or {}
        alive = [name for name, pid in dict(left.get("pids", {})).items() if pid_alive(int(pid))]
        print("serving stack is not running" + (f"; its supervisor died, leaving {', '.join(alive)}"
                                               " running (`stop` stops them)" if alive else ""))  # fmt: skip
        return 1
    print_state(state)
    parts = state.get("parts", {})
    restarting = [f"{name} (restarted {p['restarts']} times)" for name, p in parts.items()
                  if p.get("state") == "restarting"]  # fmt: skip
    if restarting:
        print(f"  restarting: {', '.join(restarting)}")
    degraded = state.get("degraded", {})
    for name, reason in degraded.items():
        print(f"  degraded: {name} is down: {reason}")
    return 1 if degraded else 0


def parse_args(argv: list[str] | None) -> tuple[str, StackConfig, bool]:
    defaults = StackConfig.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m serving_local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["serve", "start", "stop", "status", "reload", "alerts"])
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
    parser.add_argument(
        "--extra-part",
        action="append",
        type=_extra_part,
        metavar="JSON",
        help='a process run as a part of the stack: {"name", "command": [...], "env", "port" (0: free), '
        '"ready_path", "scrape", "ready_timeout"} (serving_local/extra_parts.py); repeatable',
    )
    add_monitoring_arguments(parser, defaults)
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
        monitoring=args.monitoring,
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        webhook_port=args.webhook_port,
        node_exporter_port=args.node_exporter_port,
        scrape_seconds=args.scrape_seconds,
        rules_dir=None if args.rules_dir is None else Path(args.rules_dir).expanduser().resolve(),
        alertmanager_config=None
        if args.alertmanager_config is None
        else Path(args.alertmanager_config).expanduser().resolve(),
        alert_group_wait=args.alert_group_wait,
        alert_group_interval=args.alert_group_interval,
        alert_repeat_interval=args.alert_repeat_interval,
        extra_parts=None if args.extra_part is None else tuple(args.extra_part),
    )
    return args.command, config, args.follow


def _extra_part(text: str) -> ExtraPart:
    try:
        return ExtraPart.from_json(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_monitoring_arguments(parser: argparse.ArgumentParser, defaults: StackConfig) -> None:
    group = parser.add_argument_group("monitoring (Prometheus, Alertmanager, alert webhook receiver)")
    group.add_argument(
        "--monitoring",
        choices=["auto", "on", "off"],
        help=f"run them: auto = when installed (default {defaults.monitoring})",
    )
    group.add_argument("--prometheus-port", type=int, help=f"default {defaults.prometheus_port}")
    group.add_argument("--alertmanager-port", type=int, help=f"default {defaults.alertmanager_port}")
    group.add_argument("--webhook-port", type=int, help=f"default {defaults.webhook_port}")
    group.add_argument(
        "--node-exporter-port",
        type=int,
        help=f"host metrics when the node exporter is installed (default {defaults.node_exporter_port})",
    )
    group.add_argument(
        "--scrape-seconds", type=float, help=f"scrape/evaluation period (default {defaults.scrape_seconds})"
    )
    group.add_argument("--rules-dir", help="Prometheus rule files, *.yml (default <data dir>/rules)")
    group.add_argument("--alertmanager-config", help="your alertmanager.yml (default: generated)")
    group.add_argument("--alert-group-wait", help=f"default {defaults.alert_group_wait}")
    group.add_argument("--alert-group-interval", help=f"default {defaults.alert_group_interval}")
    group.add_argument("--alert-repeat-interval", help=f"default {defaults.alert_repeat_interval}")
    group.add_argument("--follow", action="store_true", help="alerts: keep printing new notifications")


def main(argv: list[str] | None = None) -> int:
    command, config, follow = parse_args(argv)
    try:
        if command == "serve":
            return serve(config)
        if command == "start":
            start(config)
            return 0
        if command == "stop":
            stop(config)
            return 0
        if command == "reload":
            return reload(config)
        if command == "alerts":
            return alerts(config, follow)
        return status(config)
    except KeyboardInterrupt:
        return 0
    except (StackError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
