"""Configuration of the local serving stack: every default defined here once, each overridable from the
environment (``SERVING_LOCAL_*``) or the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


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


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    service_id: str = ""
    host: str = "127.0.0.1"
    port: int = 8080  # inference app: POST /serve/<endpoint>, GET /metrics (request metrics)
    metrics_port: int = 9999  # statistics controller: Prometheus metrics of the served requests
    broker_port: int = 9092  # Kafka-protocol broker carrying the request statistics
    workers: int = 1  # inference app worker processes
    # How often the inference app and the statistics controller re-read the service's configuration
    # (clearml-serving's own default is 5 minutes).
    poll_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> StackConfig:
        return cls(
            data_dir=Path(os.environ.get("SERVING_LOCAL_DATA_DIR") or ".serving_local")
            .expanduser()
            .resolve(),
            service_id=os.environ.get("SERVING_LOCAL_SERVICE_ID", ""),
            host=os.environ.get("SERVING_LOCAL_HOST") or cls.host,
            port=_env_int("SERVING_LOCAL_PORT", cls.port),
            metrics_port=_env_int("SERVING_LOCAL_METRICS_PORT", cls.metrics_port),
            broker_port=_env_int("SERVING_LOCAL_BROKER_PORT", cls.broker_port),
            workers=_env_int("SERVING_LOCAL_WORKERS", cls.workers),
            poll_seconds=_env_float("SERVING_LOCAL_POLL_SECONDS", cls.poll_seconds),
        )

    def with_overrides(self, **values: object) -> StackConfig:
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    def validate(self) -> None:
        if not self.service_id:
            raise ValueError("no serving service id: pass --service-id (see `clearml-serving list`)")
        for name in ("port", "metrics_port", "broker_port"):
            value = getattr(self, name)
            if not 1 <= value <= 65535:
                raise ValueError(f"{name.replace('_', '-')} must be a TCP port (1-65535), got {value}")
        if len({self.port, self.metrics_port, self.broker_port}) < 3:
            raise ValueError("--port, --metrics-port and --broker-port must differ")
        if not 1 <= self.workers <= 32:
            raise ValueError(f"workers must be between 1 and 32, got {self.workers}")
        if not self.poll_seconds > 0:
            raise ValueError(f"poll seconds must be positive, got {self.poll_seconds}")

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
