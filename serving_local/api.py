"""The public API of the local serving stack: what code outside ``serving_local`` uses (the application
imports these names, never the modules behind them, and rebuilds none of the stack's paths).

- ``STATISTICS_JOB``, ``INFERENCE_JOB``: the Prometheus job names of the two clearml-serving scrape targets,
  in the local stack and in generated deployment configurations alike; alert rules select on them.
- ``NODE_JOB``: the job of the host's node exporter; ``STACK_JOB``, ``PROCESS_CPU``, ``PROCESS_RESIDENT``:
  the job of the supervisor's metrics and its per-process series (labels ``part``, ``pid``; the CPU one a
  counter, exposed with ``_total``).
- ``running_stack()``: the running stack's state (``StackState``), or None.
- ``rules_dir()``, ``alerts_file()``, ``read_alerts()``, ``serve_url()``: where the stack reads rule files,
  where its webhook receiver appends notifications (and those notifications), where it serves.
- ``reload_prometheus()``: the running stack's Prometheus re-reads its rule files.
- ``start_stack()``, ``stop_stack()``, ``StackConfig``, ``StackError``: run it in the background.
- ``prometheus_document()``, ``alertmanager_text()``, ``Target``, ``Discovery``: the configuration
  generator, for deployments elsewhere; ``ExtraReceiver``: a further webhook receiver and the alerts routed
  to it (the stack reads a JSON list of them from ``SERVING_LOCAL_EXTRA_RECEIVERS``).
- ``FEEDBACK_HANDLER_ENV``: the environment variable naming the application's handler of
  ``POST /feedback/<endpoint>`` (``package.module:function``; serving_local/feedback_route.py); set when the
  stack starts, the inference app answers that route with it.
- ``register_scrape_target()``, ``remove_scrape_target()``, ``APPLICATION_JOB``: an exporter running
  beside the stack (e.g. the application's own metrics) scraped by the stack's Prometheus.
- ``ExtraPart``: a process the stack runs as one of its parts (``StackConfig(extra_parts=...)``): started
  after the others, restarted with their backoff, stopped with them, scraped when it asks; its URL in
  ``StackState.part_urls`` (serving_local/extra_parts.py).
- ``configured_server()``, ``check_server()``, ``server_is_configured()``, ``ServerCheckError``: the ClearML
  server the SDK would use, checked (reachable, credentials known) in one line, as the stack checks it.

Every function takes the stack's data directory; by default the one rule of ``StackConfig.from_env``:
``SERVING_LOCAL_DATA_DIR``, else ``.serving_local`` in the working directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from process_supervisor import StateFile
from serving_local import cli, monitoring
from serving_local.alert_webhook import read_notifications
from serving_local.config import STOCK_STATISTICS_SENDER_ENV, StackConfig, default_workers
from serving_local.errors import StackError
from serving_local.extra_parts import ExtraPart
from serving_local.feedback_route import HANDLER_ENV as FEEDBACK_HANDLER_ENV
from serving_local.metrics_server import start_metrics_server
from serving_local.monitoring import APPLICATION_JOB
from serving_local.monitoring_config import (
    INFERENCE_JOB,
    NODE_JOB,
    STATISTICS_JOB,
    Discovery,
    ExtraReceiver,
    Target,
    alertmanager_text,
    prometheus_document,
)
from serving_local.service_check import (
    ServerCheckError,
    ServerSettings,
    check_server,
    configured_server,
    server_is_configured,
)
from serving_local.stack_health import PROCESS_CPU, PROCESS_RESIDENT, STACK_JOB

__all__ = [
    "APPLICATION_JOB",
    "FEEDBACK_HANDLER_ENV",
    "INFERENCE_JOB",
    "NODE_JOB",
    "PROCESS_CPU",
    "PROCESS_RESIDENT",
    "STACK_JOB",
    "STATISTICS_JOB",
    "STOCK_STATISTICS_SENDER_ENV",
    "Discovery",
    "ExtraPart",
    "ExtraReceiver",
    "ServerCheckError",
    "ServerSettings",
    "StackConfig",
    "StackError",
    "StackState",
    "Target",
    "alertmanager_text",
    "alerts_file",
    "check_server",
    "configured_server",
    "default_workers",
    "prometheus_document",
    "read_alerts",
    "register_scrape_target",
    "reload_prometheus",
    "remove_scrape_target",
    "rules_dir",
    "running_stack",
    "serve_url",
    "server_is_configured",
    "start_metrics_server",
    "start_stack",
    "stop_stack",
]


@dataclass(frozen=True)
class StackState:
    """What a running stack recorded in its state file once every part answered."""

    pid: int
    service_id: str
    serve_url: str  # POST <serve_url>/<endpoint>
    request_metrics_url: str
    statistics_url: str
    broker: str
    pids: dict[str, int] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    # None when the stack runs without monitoring (Prometheus, Alertmanager, webhook receiver):
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    webhook_url: str | None = None
    alerts_file: Path | None = None
    rules_dir: Path | None = None
    part_urls: dict[str, str] = field(default_factory=dict)  # extra part name -> http://host:port

    @property
    def monitoring(self) -> bool:
        return self.prometheus_url is not None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StackState:
        def path(key: str) -> Path | None:
            return Path(record[key]) if record.get(key) else None

        return cls(
            pid=int(record["pid"]),
            service_id=str(record["service_id"]),
            serve_url=str(record["serve_url"]),
            request_metrics_url=str(record["request_metrics_url"]),
            statistics_url=str(record["statistics_url"]),
            broker=str(record["broker"]),
            pids={name: int(pid) for name, pid in record.get("pids", {}).items()},
            logs={name: Path(log) for name, log in record.get("logs", {}).items()},
            prometheus_url=record.get("prometheus_url") or None,
            alertmanager_url=record.get("alertmanager_url") or None,
            webhook_url=record.get("webhook_url") or None,
            alerts_file=path("alerts_file"),
            rules_dir=path("rules_dir"),
            part_urls={str(name): str(url) for name, url in record.get("part_urls", {}).items()},
        )


def _config(data_dir: Path | None) -> StackConfig:
    config = StackConfig.from_env()
    return config if data_dir is None else config.with_overrides(data_dir=data_dir.expanduser().resolve())


def running_stack(data_dir: Path | None = None) -> StackState | None:
    """The state of the stack running from ``data_dir``; None when none runs."""
    record = StateFile(_config(data_dir).state_path).running()
    try:
        return StackState.from_record(record) if record else None
    except (KeyError, TypeError, ValueError):
        return None  # a state file of another version of the stack


def rules_dir(data_dir: Path | None = None) -> Path:
    """Where rule files (``*.yml``) go: ``SERVING_LOCAL_RULES_DIR`` when set (e.g. a deployment's rules
    folder), else the running stack's, else ``<data dir>/rules`` (where a stack started here reads them)."""
    config = _config(data_dir)
    if config.rules_dir:
        return config.rules_dir
    state = running_stack(data_dir)
    return state.rules_dir if state and state.rules_dir else config.rules_path


def alerts_file(data_dir: Path | None = None) -> Path:
    """The JSON-lines file the stack's webhook receiver appends every Alertmanager notification to."""
    state = running_stack(data_dir)
    if state and state.alerts_file:
        return state.alerts_file
    return _config(data_dir).alerts_file


def read_alerts(data_dir: Path | None = None) -> list[dict[str, Any]]:
    """The notifications the webhook receiver got, oldest first (Alertmanager's webhook payloads, each with
    ``received_at``)."""
    return read_notifications(alerts_file(data_dir))


def serve_url(data_dir: Path | None = None) -> str:
    """``.../serve`` of the running stack, else of a stack started with this environment."""
    state = running_stack(data_dir)
    return state.serve_url if state else f"{_config(data_dir).inference_url}/serve"


def reload_prometheus(data_dir: Path | None = None) -> str | None:
    """Make the running stack's Prometheus re-read its rule files; its URL, or None when no stack with
    monitoring runs. StackError in one line when Prometheus refuses the rules or does not answer."""
    state = running_stack(data_dir)
    if state is None or state.prometheus_url is None:
        return None
    if "prometheus" not in state.pids:
        raise StackError("the running stack's state names no Prometheus process")
    monitoring.reload_prometheus(state.prometheus_url, state.pids["prometheus"], state.logs.get("prometheus"))
    return state.prometheus_url


def register_scrape_target(name: str, address: str, data_dir: Path | None = None) -> Path | None:
    """Have the running stack's Prometheus scrape ``address`` (host:port) as job ``APPLICATION_JOB`` with
    label ``exporter=<name>``; the targets file, or None when no stack with monitoring runs."""
    state = running_stack(data_dir)
    if state is None or not state.monitoring:
        return None
    return monitoring.write_application_target(_config(data_dir), name, address)


def remove_scrape_target(name: str, data_dir: Path | None = None) -> None:
    monitoring.remove_application_target(_config(data_dir), name)


def start_stack(config: StackConfig) -> StackState:
    """Start the stack in the background (unless it runs) and wait until every part answers; prints what it
    does. StackError in one line when it cannot."""
    return StackState.from_record(cli.start(config))


def stop_stack(data_dir: Path | None = None, quiet: bool = False) -> bool:
    """Stop the stack running from ``data_dir``; False when none ran."""
    return cli.stop(_config(data_dir), quiet=quiet)
