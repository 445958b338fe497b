"""AsteroidServingCPUHigh and AsteroidServingMemoryHigh under `promtool test rules`, on series shaped like
the exporters' output: the supervisor's per-process series (serving_local/stack_health.py: labels part and
pid, one series per inference worker), the node exporter's CPU and memory series, and, where no supervisor
runs (Compose, Kubernetes), a process's own client metrics. A busy or bloated worker fires for that worker
only; the host alerts fire on the node exporter's figures; quiet series raise nothing; the processes' own
metrics are only read where the supervisor's are absent."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from asteroid.monitoring import rules
from asteroid.monitoring.config import MonitoringConfig
from serving_local.api import APPLICATION_JOB, NODE_JOB, PROCESS_CPU, PROCESS_RESIDENT, STACK_JOB
from tests.monitoring.conftest import tool

STEP_S = 15
STEPS = 40  # ten minutes of samples
CONFIG = MonitoringConfig(interval="15s", resource_window="1m", resource_for="2m")
STACK = f'job="{STACK_JOB}", instance="127.0.0.1:40001"'
NODE = f'job="{NODE_JOB}", instance="127.0.0.1:9110"'
GB = 1_000_000_000


def cpu_values(cores: float, start_step: int = 0) -> str:
    """A CPU-seconds counter: flat until `start_step`, then growing by `cores` seconds per second."""
    flat = f"0x{start_step} " if start_step else ""
    return f"{flat}0+{cores * STEP_S:g}x{STEPS - start_step}"


def process_series(part: str, pid: int, cores: float, resident: float, start_step: int = 0) -> list[dict]:
    labels = f'{STACK}, part="{part}", pid="{pid}"'
    return [
        {"series": f"{PROCESS_CPU}_total{{{labels}}}", "values": cpu_values(cores, start_step)},
        {"series": f"{PROCESS_RESIDENT}{{{labels}}}", "values": f"{resident:g}x{STEPS}"},
    ]


def node_series(busy: float, available_ratio: float, cpus: int = 2) -> list[dict]:
    series = []
    for cpu in range(cpus):
        for mode, share in (("idle", 1 - busy), ("user", busy)):
            labels = f'{NODE}, cpu="{cpu}", mode="{mode}"'
            series.append({"series": f"node_cpu_seconds_total{{{labels}}}", "values": cpu_values(share)})
    total = 8 * GB
    series += [
        {"series": f"node_memory_MemTotal_bytes{{{NODE}}}", "values": f"{total:g}x{STEPS}"},
        {
            "series": f"node_memory_MemAvailable_bytes{{{NODE}}}",
            "values": f"{total * available_ratio:g}x{STEPS}",
        },
    ]
    return series


def rule(name: str, scope: str) -> dict[str, Any]:
    return next(
        r for r in rules.resource_rules(CONFIG) if r["alert"] == name and r["labels"]["scope"] == scope
    )


def expected(name: str, scope: str, labels: dict[str, str], value_text: str) -> dict[str, Any]:
    """The alert with its annotations rendered as Prometheus renders them (`value_text`: $value's form)."""
    spec = rule(name, scope)
    annotations = {}
    for key, text in spec["annotations"].items():
        for label, value in labels.items():
            text = text.replace(f"{{{{ $labels.{label} }}}}", value)
        for template in ('{{ $value | printf "%.2f" }}', "{{ $value | humanizePercentage }}",
                         "{{ $value | humanize1024 }}"):  # fmt: skip
            text = text.replace(template, value_text)
        text = text.replace(rules.WITH_PART, f" {labels['part']}" if "part" in labels else "")
        annotations[key] = text.replace(rules.WITH_PID, f" (pid {labels['pid']})" if "pid" in labels else "")
    return {"exp_labels": {**labels, **spec["labels"]}, "exp_annotations": annotations}


def run_promtool(tmp_path: Path, series: list[dict], alerts: list[dict]) -> None:
    rules_file = tmp_path / "resources.yml"
    rules_file.write_text(rules.render_resources(CONFIG))
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    (tmp_path / "test.yml").write_text(rules.dump_yaml({
        "rule_files": [rules_file.name], "evaluation_interval": f"{STEP_S}s",
        "tests": [{"interval": f"{STEP_S}s", "input_series": series, "alert_rule_test": alerts}],
    }))  # fmt: skip
    result = subprocess.run(
        [tool("promtool"), "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def at(step: int) -> str:
    return f"{step * STEP_S}s"


def quiet(*steps: int) -> list[dict]:
    return [
        {"eval_time": at(step), "alertname": name, "exp_alerts": []}
        for step in steps for name in (rules.CPU_ALERT, rules.MEMORY_ALERT)
    ]  # fmt: skip


def test_a_busy_worker_fires_for_that_worker_only(tmp_path: Path) -> None:
    series = [
        *process_series("inference", 101, cores=0.05, resident=0.3 * GB),  # the worker leader
        *process_series("inference", 102, cores=0.98, resident=0.4 * GB, start_step=20),  # busy from 5 min
        *process_series("inference", 103, cores=0.2, resident=0.4 * GB),
        *process_series("prometheus", 200, cores=0.1, resident=0.2 * GB),
        # Prometheus' own client metrics, which the supervisor's view already covers: never read here
        {"series": 'process_cpu_seconds_total{job="prometheus", instance="127.0.0.1:9090"}',
         "values": cpu_values(0.99)},
        *node_series(busy=0.5, available_ratio=0.5),
    ]  # fmt: skip
    labels = {"job": STACK_JOB, "instance": "127.0.0.1:40001", "part": "inference", "pid": "102"}
    busy = expected(rules.CPU_ALERT, "process", labels, "0.98")
    run_promtool(tmp_path, series, [
        *quiet(10, 20, 27),  # busy for less than the window plus `for:` at step 27
        {"eval_time": at(34), "alertname": rules.CPU_ALERT, "exp_alerts": [busy]},
        {"eval_time": at(34), "alertname": rules.MEMORY_ALERT, "exp_alerts": []},
    ])  # fmt: skip


def test_a_bloated_worker_and_a_full_host_fire_the_memory_alert(tmp_path: Path) -> None:
    series = [
        *process_series("inference", 101, cores=0.05, resident=2.5 * GB),
        *process_series("inference", 102, cores=0.05, resident=0.4 * GB),
        *node_series(busy=0.95, available_ratio=0.05),
    ]
    labels = {"job": STACK_JOB, "instance": "127.0.0.1:40001", "part": "inference", "pid": "101"}
    host = {"job": NODE_JOB, "instance": "127.0.0.1:9110"}
    run_promtool(tmp_path, series, [
        {"eval_time": at(20), "alertname": rules.MEMORY_ALERT, "exp_alerts": [
            expected(rules.MEMORY_ALERT, "process", labels, "2.328Gi"),
            expected(rules.MEMORY_ALERT, "host", host, "95%"),
        ]},
        {"eval_time": at(20), "alertname": rules.CPU_ALERT, "exp_alerts": [
            expected(rules.CPU_ALERT, "host", host, "95%"),
        ]},
    ])  # fmt: skip


def test_without_a_supervisor_the_processes_own_metrics_are_read(tmp_path: Path) -> None:
    """Compose and Kubernetes: each container's process reports itself (statistics controller, quality
    exporter, Prometheus); no part or pid label."""
    statistics = {"job": "clearml-serving-statistics", "instance": "clearml-serving-statistics:9999"}
    series = [
        {"series": 'process_cpu_seconds_total{job="clearml-serving-statistics", '
                   'instance="clearml-serving-statistics:9999"}', "values": cpu_values(0.95)},
        {"series": 'process_resident_memory_bytes{job="clearml-serving-statistics", '
                   'instance="clearml-serving-statistics:9999"}', "values": f"{0.3 * GB:g}x{STEPS}"},
        *node_series(busy=0.2, available_ratio=0.6),
    ]  # fmt: skip
    run_promtool(tmp_path, series, [
        {"eval_time": at(20), "alertname": rules.CPU_ALERT,
         "exp_alerts": [expected(rules.CPU_ALERT, "process", statistics, "0.95")]},
        {"eval_time": at(20), "alertname": rules.MEMORY_ALERT, "exp_alerts": []},
    ])  # fmt: skip


def test_an_application_exporter_beside_the_stack_is_read_from_its_own_metrics(tmp_path: Path) -> None:
    """The quality consumer runs beside the local stack (job `application`), not under its supervisor: its
    own client metrics count while the supervisor reports the parts (whose own metrics do not)."""
    consumer = {"job": APPLICATION_JOB, "instance": "127.0.0.1:9105"}
    series = [
        *process_series("inference", 101, cores=0.1, resident=0.3 * GB),
        {"series": f'process_resident_memory_bytes{{job="{APPLICATION_JOB}", instance="127.0.0.1:9105"}}',
         "values": f"{2.5 * GB:g}x{STEPS}"},
        {"series": 'process_resident_memory_bytes{job="prometheus", instance="127.0.0.1:9090"}',
         "values": f"{2.5 * GB:g}x{STEPS}"},  # the supervisor reports Prometheus: not read twice
        *node_series(busy=0.2, available_ratio=0.6),
    ]  # fmt: skip
    run_promtool(tmp_path, series, [
        {"eval_time": at(20), "alertname": rules.MEMORY_ALERT,
         "exp_alerts": [expected(rules.MEMORY_ALERT, "process", consumer, "2.328Gi")]},
    ])  # fmt: skip


def test_a_quiet_stack_raises_nothing(tmp_path: Path) -> None:
    series = [
        *process_series("inference", 101, cores=0.3, resident=0.5 * GB),
        *process_series("statistics", 150, cores=0.1, resident=0.2 * GB),
        *node_series(busy=0.4, available_ratio=0.5),
    ]
    run_promtool(tmp_path, series, quiet(5, 20, 39))


def test_the_thresholds_and_for_are_the_configurations() -> None:
    for alert in rules.resource_rules(CONFIG):
        assert alert["for"] == CONFIG.resource_for
    assert rules.promql_number(CONFIG.process_cpu_cores) in rule(rules.CPU_ALERT, "process")["expr"]
    assert rules.promql_number(CONFIG.host_memory_ratio) in rule(rules.MEMORY_ALERT, "host")["expr"]
