"""The process and host panels and alert rules on a real Prometheus scraping the real exporters: the node
exporter and the supervisor's per-process metrics of the parts it runs (here the node exporter and Prometheus
itself). Every panel query of the "Processes and host" row returns data, and Prometheus evaluates the
resource rules file without error. (The drift end-to-end test runs every dashboard query again on the whole
stack.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asteroid.monitoring import config as monitoring_config
from asteroid.monitoring import dashboard, rules
from asteroid.monitoring.prometheus_api import Prometheus
from process_supervisor import Supervisor
from serving_local import monitoring, stack_health
from serving_local.config import StackConfig
from serving_local.stack import monitoring_parts
from tests.monitoring.conftest import tool
from tests.net import free_port

CONFIG = monitoring_config.PROFILES["short"]


def resource_queries() -> list[str]:
    """The queries of the generated dashboard's process and host panels."""
    titles = {panel.build().title for panel in dashboard.resource_panels(CONFIG)}
    board = json.loads(dashboard.generated_files()["asteroid.json"])
    exprs = [
        target["expr"] for panel in board["panels"] if panel["title"] in titles for target in panel["targets"]
    ]
    assert len(titles) == 4 and len(exprs) == 6
    return exprs


def poll(condition: Callable[[], bool], what: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {deadline_s} s"
        time.sleep(0.5)


def test_every_resource_panel_and_rule_runs_on_the_real_exporters(tmp_path: Path) -> None:
    tool("prometheus")
    tool("prometheus-alertmanager")
    if monitoring.node_exporter_binary() is None:
        pytest.skip(f"the node exporter is not installed ({monitoring.NODE_EXPORTER_HINT})")
    config = StackConfig(
        data_dir=tmp_path, service_id="x", port=free_port(), metrics_port=free_port(),
        broker_port=free_port(), monitoring="on", prometheus_port=free_port(),
        alertmanager_port=free_port(), webhook_port=free_port(), node_exporter_port=free_port(),
        scrape_seconds=1.0,
    )  # fmt: skip
    config.rules_path.mkdir(parents=True)
    (config.rules_path / f"{rules.RESOURCES_RULES}.yml").write_text(rules.render_resources(CONFIG))
    supervisor = Supervisor(
        [p for p in monitoring_parts(config) if p.name in ("node-exporter", "prometheus")]
    )
    try:
        supervisor.start_all()
        port = stack_health.serve_metrics(config.host, lambda: supervisor.status)
        stack_health.write_targets(monitoring.stack_targets_path(config), config.host, port)
        prometheus = Prometheus(config.prometheus_url)
        queries = [expr.replace(dashboard.RATE, "10s") for expr in resource_queries()]
        # rate() answers once two samples of each series are in its range
        poll(lambda: all(prometheus.query(expr) for expr in queries), "answer to every panel query", 60)
        processes = prometheus.query(rules.process_cpu("10s"))
        parts = {row["metric"].get("part") for row in processes}
        groups = prometheus._get("/api/v1/rules")["groups"]
    finally:
        supervisor.stop_all()
    assert {"node-exporter", "prometheus", stack_health.SUPERVISOR_PART} <= parts
    # the supervisor reports Prometheus: its own process_* series are not read a second time
    assert all(row["metric"].get("job") == stack_health.STACK_JOB for row in processes)
    (group,) = [g for g in groups if g["name"] == "asteroid-resources"]
    assert {r["name"] for r in group["rules"]} == {rules.CPU_ALERT, rules.MEMORY_ALERT}
    assert all(r["health"] == "ok" and not r.get("lastError") for r in group["rules"]), group["rules"]
