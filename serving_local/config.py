"""Configuration of the local serving stack: every default defined here once, each overridable from the
environment (``SERVING_LOCAL_*``) or the command line.

The data directory (state file, logs, rules, alerts) has one rule, used by the command line and by every
program that asks ``serving_local.api``: ``SERVING_LOCAL_DATA_DIR``, else ``.serving_local`` in the working
directory (``--data-dir`` overrides both for one command)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from serving_local.extra_parts import ExtraPart


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from exc


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number, got {value!r}") from exc


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "")
    return Path(value).expanduser().resolve() if value else None


MAX_WORKERS = 32
# "1" in the inference app's environment keeps clearml-serving's stock statistics sender (serving_local/
# inference_app.py), to measure what its replacement changes.
STOCK_STATISTICS_SENDER_ENV = "SERVING_LOCAL_STOCK_STATISTICS_SENDER"


def default_workers() -> int:
    """One inference worker per CPU core this process may run on (its affinity, else the machine's count),
    at most MAX_WORKERS: as many as can answer requests at once."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


MONITORING_MODES = ("on", "off", "auto")
DATA_DIR_NAME = ".serving_local"


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    service_id: str = ""
    host: str = "127.0.0.1"
    port: int = 8080  # inference app: POST /serve/<endpoint>, GET /metrics (request metrics)
    metrics_port: int = 9999  # statistics controller: Prometheus metrics of the served requests
    broker_port: int = 9092  # Kafka-protocol broker carrying the request statistics
    workers: int = field(default_factory=default_workers)  # inference app worker processes
    # How often the inference app and the statistics controller re-read the service's configuration
    # (clearml-serving's own default is 5 minutes).
    poll_seconds: float = 5.0
    # Prometheus, Alertmanager and the alert webhook receiver: "on", "off", or "auto" (on when Prometheus and
    # Alertmanager are installed): the one default of `python -m serving_local` and serve.py alike.
    monitoring: str = "auto"
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    webhook_port: int = 9097  # receives Alertmanager's notifications, appends them to alerts.jsonl
    # host metrics (Prometheus node exporter, when installed); not its usual 9100, where the Debian package
    # starts a system service of its own
    node_exporter_port: int = 9110
    scrape_seconds: float = 15.0  # Prometheus scrape and default rule evaluation period
    rules_dir: Path | None = None  # Prometheus rule files (*.yml); default <data dir>/rules
    alertmanager_config: Path | None = None  # default: generated, routing every alert to the webhook
    # JSON list of further webhook receivers and the alerts routed to them (monitoring_config.ExtraReceiver)
    extra_receivers_file: Path | None = None
    alert_group_wait: str = "10s"  # Alertmanager timings of the generated configuration
    alert_group_interval: str = "1m"
    alert_repeat_interval: str = "4h"
    # Processes an application runs as parts of the stack (serving_local/extra_parts.py).
    extra_parts: tuple[ExtraPart, ...] = ()

    @classmethod
    def from_env(cls) -> StackConfig:
        return cls(
            data_dir=Path(os.environ.get("SERVING_LOCAL_DATA_DIR") or DATA_DIR_NAME).expanduser().resolve(),
            service_id=os.environ.get("SERVING_LOCAL_SERVICE_ID", ""),
            host=os.environ.get("SERVING_LOCAL_HOST") or cls.host,
            port=_env_int("SERVING_LOCAL_PORT", cls.port),
            metrics_port=_env_int("SERVING_LOCAL_METRICS_PORT", cls.metrics_port),
            broker_port=_env_int("SERVING_LOCAL_BROKER_PORT", cls.broker_port),
            workers=_env_int("SERVING_LOCAL_WORKERS", default_workers()),
            poll_seconds=_env_float("SERVING_LOCAL_POLL_SECONDS", cls.poll_seconds),
            monitoring=os.environ.get("SERVING_LOCAL_MONITORING") or cls.monitoring,
            prometheus_port=_env_int("SERVING_LOCAL_PROMETHEUS_PORT", cls.prometheus_port),
            alertmanager_port=_env_int("SERVING_LOCAL_ALERTMANAGER_PORT", cls.alertmanager_port),
            webhook_port=_env_int("SERVING_LOCAL_WEBHOOK_PORT", cls.webhook_port),
            node_exporter_port=_env_int("SERVING_LOCAL_NODE_EXPORTER_PORT", cls.node_exporter_port),
            scrape_seconds=_env_float("SERVING_LOCAL_SCRAPE_SECONDS", cls.scrape_seconds),
            rules_dir=_env_path("SERVING_LOCAL_RULES_DIR"),
            alertmanager_config=_env_path("SERVING_LOCAL_ALERTMANAGER_CONFIG"),
            extra_receivers_file=_env_path("SERVING_LOCAL_EXTRA_RECEIVERS"),
            alert_group_wait=os.environ.get("SERVING_LOCAL_ALERT_GROUP_WAIT") or cls.alert_group_wait,
            alert_group_interval=os.environ.get("SERVING_LOCAL_ALERT_GROUP_INTERVAL")
            or cls.alert_group_interval,
            alert_repeat_interval=os.environ.get("SERVING_LOCAL_ALERT_REPEAT_INTERVAL")
            or cls.alert_repeat_interval,
        )

    def with_overrides(self, **values: object) -> StackConfig:
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    def validate(self) -> None:
        if not self.service_id:
            raise ValueError("no serving service id: pass --service-id (see `clearml-serving list`)")
        if self.monitoring not in MONITORING_MODES:
            raise ValueError(f"monitoring must be one of {MONITORING_MODES}, got {self.monitoring!r}")
        ports = self.ports()
        for flag, value in ports.items():
            if not 1 <= value <= 65535:
                raise ValueError(f"{flag} must be a TCP port (1-65535), got {value}")
        names = [part.name for part in self.extra_parts]
        if len(set(names)) < len(names):
            raise ValueError(f"extra part names must differ: {names}")
        if len(set(ports.values())) < len(ports):
            raise ValueError(f"{', '.join(ports)} must differ")
        if not self.scrape_seconds > 0:
            raise ValueError(f"scrape seconds must be positive, got {self.scrape_seconds}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, got {self.workers}")
        if not self.poll_seconds > 0:
            raise ValueError(f"poll seconds must be positive, got {self.poll_seconds}")

    def ports(self, monitoring: bool | None = None) -> dict[str, int]:
        """Flag -> port of every part that listens (the monitoring parts unless monitoring is off)."""
        ports = {"--port": self.port, "--metrics-port": self.metrics_port, "--broker-port": self.broker_port}
        if self.monitoring != "off" if monitoring is None else monitoring:
            ports |= {
                "--prometheus-port": self.prometheus_port,
                "--alertmanager-port": self.alertmanager_port,
                "--webhook-port": self.webhook_port,
                "--node-exporter-port": self.node_exporter_port,
            }
        return ports | {f"--extra-part {part.name}": part.port for part in self.extra_parts if part.port}

    @property
    def rules_path(self) -> Path:
        return self.rules_dir or self.data_dir / "rules"

    @property
    def alerts_file(self) -> Path:
        return self.data_dir / "alerts.jsonl"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.host}:{self.alertmanager_port}"

    @property
    def webhook_url(self) -> str:
        return f"http://{self.host}:{self.webhook_port}"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "stack.log"

    def component_log(self, name: str) -> Path:
        return self.data_dir / f"{name}.log"

    @property
    def prometheus_multiproc_dir(self) -> Path:
        return self.data_dir / "request-metrics"

    @property
    def inference_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def statistics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}"

    @property
    def broker_address(self) -> str:
        return f"{self.host}:{self.broker_port}"
