"""The node exporter as a monitoring part of the stack: it listens on the stack's host and port with only the
collectors the rules and the dashboard read, and the stack's Prometheus scrapes it (job `node`) beside the
supervisor's per-process metrics of every part."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from serving_local import monitoring, stack_health
from serving_local.config import StackConfig
from serving_local.monitoring_config import NODE_JOB
from tests.net import free_port
from tests.serving.test_monitoring_parts import start_parts


def installed(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({hint})")
    return path


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    installed("prometheus-node-exporter", monitoring.NODE_EXPORTER_HINT)
    return StackConfig(
        data_dir=tmp_path, service_id="x", port=free_port(), metrics_port=free_port(),
        broker_port=free_port(), monitoring="on", prometheus_port=free_port(),
        alertmanager_port=free_port(), webhook_port=free_port(), node_exporter_port=free_port(),
        scrape_seconds=1.0,
    )  # fmt: skip


@pytest.fixture
def node_exporter(config: StackConfig) -> Iterator[StackConfig]:
    supervisor = start_parts(config, ("node-exporter",))
    yield config
    supervisor.stop_all()


def test_it_serves_the_needed_collectors_only_on_the_stacks_host(node_exporter: StackConfig) -> None:
    page = requests.get(f"http://127.0.0.1:{node_exporter.node_exporter_port}/metrics", timeout=10).text
    names = {line.split("{")[0].split(" ")[0] for line in page.splitlines() if line and line[0] != "#"}
    for wanted in ("node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
                   "node_load1"):  # fmt: skip
        assert wanted in names
    collectors = {
        line.split('"')[1] for line in page.splitlines() if line.startswith("node_scrape_collector_success{")
    }
    assert collectors == set(monitoring.NODE_EXPORTER_COLLECTORS)
    assert not any(
        name.startswith(("go_", "process_", "node_filesystem_", "node_network_")) for name in names
    )
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{node_exporter.node_exporter_port}" in listening
    assert f"*:{node_exporter.node_exporter_port}" not in listening


def test_the_configuration_scrapes_it_only_when_installed(config: StackConfig, monkeypatch) -> None:
    assert f"127.0.0.1:{config.node_exporter_port}" in monitoring.prometheus_config(config)
    assert "node-exporter" in monitoring.commands(config)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(monitoring, "NODE_EXPORTER_BINARIES", ("no-such-node-exporter",))
    assert f'"{NODE_JOB}"' not in monitoring.prometheus_config(config)


def test_prometheus_scrapes_the_host_and_every_parts_processes(config: StackConfig) -> None:
    installed("prometheus", monitoring.INSTALL_HINT)
    installed("prometheus-alertmanager", monitoring.INSTALL_HINT)
    supervisor = start_parts(config, ("node-exporter", "prometheus"))
    try:
        port = stack_health.serve_metrics(config.host, lambda: supervisor.status)
        stack_health.write_targets(monitoring.stack_targets_path(config), config.host, port)
        resident = f'{stack_health.PROCESS_RESIDENT}{{job="{stack_health.STACK_JOB}"}}'
        queries = {
            "node": f'node_memory_MemAvailable_bytes{{job="{NODE_JOB}"}}',
            "processes": f"count by (part) ({resident})",
        }
        answers = poll(config, queries, deadline_s=30)
    finally:
        supervisor.stop_all()
    assert float(answers["node"][0]["value"][1]) > 0
    assert {row["metric"]["part"] for row in answers["processes"]} == {
        "node-exporter",
        "prometheus",
        stack_health.SUPERVISOR_PART,
    }


def poll(config: StackConfig, queries: dict[str, str], deadline_s: float) -> dict[str, list]:
    """Each query's result once every query has one (Prometheus scrapes each second)."""
    deadline = time.monotonic() + deadline_s
    while True:
        answers = {
            name: requests.get(
                f"{config.prometheus_url}/api/v1/query", params={"query": expr}, timeout=5
            ).json()["data"]["result"]
            for name, expr in queries.items()
        }
        if all(answers.values()) and len(answers["processes"]) >= 3:
            return answers
        assert time.monotonic() < deadline, f"no answer within {deadline_s} s: {answers}"
        time.sleep(0.5)
