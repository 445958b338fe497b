"""The stack's own health, as Prometheus sees it: the supervisor serves, on a port of its own choosing, each
part's state and restarts, and the CPU time and resident memory of every process of every part (the
processes of the group the part leads, read from /proc: the inference app's workers each appear with their
pid) and of the supervisor itself; Prometheus finds that port in a file it watches (``file_sd_configs``),
and the stack's rule file raises ``ServingStackDegraded`` when a part is given up and
``ServingStackRestarting`` when one keeps restarting."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from process_supervisor import PartStatus
from process_supervisor.proc_stats import ProcessSample, group_processes, read_process
from serving_local.metrics_server import start_metrics_server

STACK_JOB = "serving-local-stack"  # the scrape job of the supervisor's own metrics
PART_UP = "serving_local_part_up"  # 1 while a part runs and answers
PART_DOWN = "serving_local_part_down"  # 1 once a part is given up (its restart budget spent)
PART_RESTARTS = "serving_local_part_restarts"  # counter (exposed as ..._total)
# Per process of a part (labels part, pid): CPU seconds (user + system; a counter exposed as ..._total)
# and resident memory. The supervisor's own process is the part SUPERVISOR_PART.
PROCESS_CPU = "serving_local_process_cpu_seconds"
PROCESS_RESIDENT = "serving_local_process_resident_memory_bytes"
SUPERVISOR_PART = "supervisor"
DEGRADED_ALERT = "ServingStackDegraded"
RESTARTING_ALERT = "ServingStackRestarting"
RESTARTS_WARNING = 3  # restarts of one part within RESTARTS_WINDOW that raise the warning
RESTARTS_WINDOW = "15m"


class PartsCollector(Collector):
    """The supervisor's view of its parts, read at each scrape."""

    def __init__(
        self,
        status: Callable[[], Mapping[str, PartStatus]],
        processes: Callable[[Mapping[str, PartStatus]], dict[str, list[ProcessSample]]] | None = None,
    ) -> None:
        self._status = status
        self._processes = processes or processes_of_parts

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(PART_UP, "1 while the part runs and answers", labels=["part"])
        down = GaugeMetricFamily(PART_DOWN, "1 once the part is given up (stack degraded)", labels=["part"])
        restarts = CounterMetricFamily(
            PART_RESTARTS, "Restarts of the part by the supervisor", labels=["part"]
        )
        status = dict(self._status())
        for name, part in status.items():
            up.add_metric([name], 1.0 if part.state == "running" else 0.0)
            down.add_metric([name], 1.0 if part.state == "down" else 0.0)
            restarts.add_metric([name], float(part.restarts))
        yield from (up, down, restarts)
        yield from process_metrics(self._processes(status))


def processes_of_parts(status: Mapping[str, PartStatus]) -> dict[str, list[ProcessSample]]:
    """Part name -> its processes now (a part not started, or given up, has none); the supervisor's own
    process as the part ``SUPERVISOR_PART``."""
    leaders = {part.pid: name for name, part in status.items() if part.pid and part.state != "down"}
    groups = group_processes(leaders)
    processes = {leaders[leader]: members for leader, members in groups.items()}
    own = read_process(os.getpid())
    return {SUPERVISOR_PART: [own] if own else [], **processes}


def process_metrics(processes: Mapping[str, list[ProcessSample]]) -> Iterator[Any]:
    cpu = CounterMetricFamily(
        PROCESS_CPU, "CPU time (user + system) of a process of the part, from /proc", labels=["part", "pid"]
    )
    resident = GaugeMetricFamily(
        PROCESS_RESIDENT, "Resident memory of a process of the part, from /proc", labels=["part", "pid"]
    )
    for name, samples in processes.items():
        for sample in samples:
            cpu.add_metric([name, str(sample.pid)], sample.cpu_seconds)
            resident.add_metric([name, str(sample.pid)], float(sample.resident_bytes))
    yield from (cpu, resident)


def serve_metrics(host: str, status: Callable[[], Mapping[str, PartStatus]]) -> int:
    """Serve the parts' metrics on a free port of ``host`` (a daemon thread); the port."""
    registry = CollectorRegistry()
    registry.register(PartsCollector(status))
    server, _ = start_metrics_server(0, addr=host, registry=registry)
    return int(server.server_address[1])


def write_targets(path: Path, host: str, port: int) -> None:
    """The file Prometheus reads the supervisor's address from (written atomically: it watches the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([{"targets": [f"{host}:{port}"]}]) + "\n")
    temporary.replace(path)


def rules_document(evaluation: str) -> dict[str, Any]:
    """The stack's alert rules (JSON is YAML)."""
    return {
        "groups": [
            {
                "name": "serving-local-stack",
                "interval": evaluation,
                "rules": [
                    {
                        "alert": DEGRADED_ALERT,
                        "expr": f"max by (part) ({PART_DOWN}) > 0",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "{{ $labels.part }} keeps failing and was left down",
                            "description": "The supervisor spent the part's restart budget; "
                            "`python -m serving_local status` says why; its log is in the data directory.",
                        },
                    },
                    {
                        "alert": RESTARTING_ALERT,
                        "expr": f"increase({PART_RESTARTS}_total[{RESTARTS_WINDOW}]) >= {RESTARTS_WARNING}",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": f"{{{{ $labels.part }}}} restarted {RESTARTS_WARNING} times or "
                            f"more within {RESTARTS_WINDOW}",
                        },
                    },
                ],
            }
        ]
    }


def write_rules(path: Path, evaluation: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by serving_local/stack_health.py: the local stack's own alerts.\n"
    path.write_text(header + json.dumps(rules_document(evaluation), indent=2) + "\n")
