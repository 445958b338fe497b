"""Prometheus recording and alerting rules for one served version, generated from its training reference.

The statistics controller's histograms are not cumulative and their `_sum` is the observation count (see
docs/notes/serving.md), so the live fraction of traffic per bucket over the window is
``increase(<m>_bucket[w]) / increase(<m>_sum[w])``. Drift is scored against the training fractions with the
population stability index, PSI = sum over buckets of (p_live - p_train) * ln(p_live / p_train), both
fractions floored at `epsilon` so an empty bucket gives a large finite term instead of infinity.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from asteroid.monitoring.config import MonitoringConfig
from asteroid.monitoring.reference import TrainingReference, promql_regex
from asteroid.quality import rules as quality_rules
from asteroid.quality.rules import QualityThresholds
from asteroid.serving.contract import PROBABILITY
from serving_local.api import (
    APPLICATION_JOB,
    INFERENCE_JOB,
    NODE_JOB,
    PROCESS_CPU,
    PROCESS_RESIDENT,
    STATISTICS_JOB,
)

OBSERVATIONS = "asteroid:observations:increase"
LIVE_FRACTION = "asteroid:bucket_fraction:ratio"
TRAINING_FRACTION = "asteroid:bucket_fraction:training"
PSI = "asteroid:feature_drift:psi"
HAZARDOUS = "asteroid:predicted_hazardous:ratio"
HAZARDOUS_TRAINING = "asteroid:predicted_hazardous:training"
SERIES_LABELS = ("endpoint", "version", "feature")
RUNBOOK = "docs/notes/monitoring.md"


def _labels(reference: TrainingReference, **extra: str) -> dict[str, str]:
    return {"endpoint": reference.endpoint, "version": str(reference.version), **extra}


def promql_number(value: float) -> str:
    """A number as the rules write it (repr: no precision lost)."""
    return repr(float(value))


def live_rules(reference: TrainingReference, config: MonitoringConfig) -> list[dict[str, Any]]:
    """Per statistic (features and probability): observations in the window, live fraction per bucket."""
    rules = []
    window = config.window
    for name in [feature.name for feature in reference.features] + [PROBABILITY]:
        buckets, count = reference.selector(name, "_bucket"), reference.selector(name, "_sum")
        labels = _labels(reference, feature=name)
        # `_sum` repeats the same count under every `le`: take one of them with max().
        rules.append({"record": OBSERVATIONS, "expr": f"max(increase({count}[{window}]))", "labels": labels})
        rules.append({
            "record": LIVE_FRACTION,
            "expr": f"sum by (le) (increase({buckets}[{window}]))\n"
                    f"  / on () group_left ()\n(max(increase({count}[{window}])) > 0)",
            "labels": labels,
        })  # fmt: skip
    return rules


def training_rules(reference: TrainingReference) -> list[dict[str, Any]]:
    """The training fractions as constant series, one per feature and bucket, and the training base rate."""
    rules = [
        {
            "record": TRAINING_FRACTION,
            "expr": f"vector({promql_number(fraction)})",
            "labels": _labels(reference, feature=feature.name, le=le),
        }
        for feature in reference.features
        for le, fraction in zip(feature.labels, feature.fractions, strict=True)
    ]
    rules.append({
        "record": HAZARDOUS_TRAINING, "expr": f"vector({promql_number(reference.base_rate)})",
        "labels": _labels(reference),
    })  # fmt: skip
    return rules


def psi_expression(epsilon: float) -> str:
    """PSI per feature from the live and training fraction series (both floored at epsilon)."""
    on = f"on ({', '.join((*SERIES_LABELS, 'le'))})"
    live = f"clamp_min({LIVE_FRACTION}, {promql_number(epsilon)})"
    train = f"clamp_min({TRAINING_FRACTION}, {promql_number(epsilon)})"
    return (
        f"sum by ({', '.join(SERIES_LABELS)}) (\n"
        f"  ({live} - {on} {train})\n"
        f"  * {on}\n"
        f"  ln({live} / {on} {train})\n"
        ")"
    )


def score_rules(reference: TrainingReference, config: MonitoringConfig) -> list[dict[str, Any]]:
    hazardous = "|".join(promql_regex(label) for label in reference.hazardous_labels)
    return [
        {"record": PSI, "expr": psi_expression(config.epsilon)},
        {
            "record": HAZARDOUS,
            "expr": f"sum by (endpoint, version) "
            f'({LIVE_FRACTION}{{feature="{PROBABILITY}", le=~"{hazardous}"}})',
        },
    ]


def gated_psi(config: MonitoringConfig, threshold: float | None = None) -> str:
    """PSI per feature where the window holds at least the minimum of observations (what the alert sees);
    with a threshold, only the scores at or above it."""
    above = "" if threshold is None else f" >= {promql_number(threshold)}"
    return (f'{PSI}{{feature!="{PROBABILITY}"}}{above}\n'
            f"and on (endpoint, version, feature) {OBSERVATIONS} >= {config.min_observations}")  # fmt: skip


def _drift_alert(config: MonitoringConfig, severity: str, threshold: float) -> dict[str, Any]:
    return {
        "alert": "AsteroidFeatureDrift",
        "expr": gated_psi(config, threshold),
        "for": config.for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": "Feature {{ $labels.feature }} of /serve/{{ $labels.endpoint }}/{{ $labels.version }} "
                       "has drifted from the training data: PSI {{ $value | printf \"%.3f\" }} over the last "
                       f"{config.window} (≥ {threshold:g} is {severity})",
            "description": "The live distribution of {{ $labels.feature }} differs from the one the model "
                           "was trained on. Compare the live and training fractions per bucket on the "
                           "Grafana dashboard (Asteroid serving), check the data source feeding the requests "
                           "(units, survey, filtering), and retrain on recent data if the shift is real.",
            "psi": "{{ $value | printf \"%.3f\" }}",
            "runbook": RUNBOOK,
        },
    }  # fmt: skip


def alert_rules(reference: TrainingReference, config: MonitoringConfig) -> list[dict[str, Any]]:
    # the scrape jobs of serving_local's configuration generator, the one for every deployment
    job_stats, job_inference = STATISTICS_JOB, INFERENCE_JOB
    requests = f'clearml_serving_requests_total{{job="{job_inference}"}}'
    endpoint_re = f"{promql_regex(reference.endpoint)}(/[0-9]+)?"
    served = f'clearml_serving_requests_total{{job="{job_inference}", endpoint=~"{endpoint_re}", code="200"}}'
    durations = (
        f'clearml_serving_request_duration_seconds_bucket{{job="{job_inference}", endpoint=~"{endpoint_re}"}}'
    )
    w = config.window
    return [
        _drift_alert(config, "warning", config.psi_warning),
        _drift_alert(config, "critical", config.psi_critical),
        {
            "alert": "AsteroidPredictionDrift",
            "expr": f"abs({HAZARDOUS} - on (endpoint, version) {HAZARDOUS_TRAINING}) "
                    f">= {promql_number(config.prediction_tolerance)}\n"
                    f'and on (endpoint, version) {OBSERVATIONS}{{feature="{PROBABILITY}"}} '
                    f">= {config.min_observations}",
            "for": config.for_,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "The predicted-hazardous fraction of /serve/{{ $labels.endpoint }}/"
                           "{{ $labels.version }} is {{ $value | printf \"%.3f\" }} away from the training "
                           f"base rate ({reference.base_rate:.3f}) over the last {w}",
                "description": "The model flags a different share of objects as hazardous (probability "
                               f"≥ {reference.threshold:g}) than in training: look at the feature drift "
                               "alerts and the dashboard first; a shift without feature drift points at the "
                               "model version.",
                "runbook": RUNBOOK,
            },
        },
        {
            "alert": "AsteroidServingErrors",
            "expr": f'sum by (endpoint) (rate({requests[:-1]}, code=~"4..|5.."}}[{w}]))\n'
                    f"/ sum by (endpoint) (rate({requests}[{w}])) > {promql_number(config.error_ratio)}",
            "for": config.for_,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $value | humanizePercentage }} of the requests to {{ $labels.endpoint }} "
                           f"failed (4xx/5xx) over the last {w}",
                "description": "Failed requests never reach clearml-serving's statistics: this counts them "
                               "at the inference app. 422 means clients send invalid rows (the reply names "
                               "the field), 404 an unknown endpoint, 5xx a server fault (see the inference "
                               "log).",
                "runbook": RUNBOOK,
            },
        },
        {
            "alert": "AsteroidLatencyHigh",
            "expr": f"histogram_quantile(0.99, sum by (le) (rate({durations}[{w}])))\n"
                    f"> {promql_number(config.latency_p99_seconds)}",
            "for": config.for_,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"p99 latency of /serve/{reference.endpoint} is "
                           "{{ $value | humanizeDuration }} "
                           f"over the last {w} (limit {config.latency_p99_seconds:g} s)",
                "description": "Measured at the inference app. Check its CPU use, the batch sizes clients "
                               "send, and the number of workers.",
                "runbook": RUNBOOK,
            },
        },
        {
            "alert": "AsteroidNoTraffic",
            "expr": f"(sum(increase({served}[{w}])) or on () vector(0)) == 0",
            "for": config.for_,
            "labels": {"severity": "info"},
            "annotations": {
                "summary": f"No successful request to /serve/{reference.endpoint} over the last {w}",
                "description": "Without traffic there are no statistics and drift cannot be measured. Check "
                               "the clients and the route in front of the inference app.",
                "runbook": RUNBOOK,
            },
        },
        {
            "alert": "AsteroidStatisticsDown",
            "expr": f'up{{job=~"{promql_regex(job_stats)}|{promql_regex(job_inference)}"}} == 0',
            "for": config.for_,
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}",
                "description": "Drift and serving alerts are blind while a scrape target is down: check the "
                               "serving stack (python -m serving_local status) and the part's log.",
                "runbook": RUNBOOK,
            },
        },
    ]  # fmt: skip


# Process and host resources: one rules file per stack (not per endpoint), written beside the endpoints'
# files at each rollout (publish.py).
RESOURCES_RULES = "_resources"  # the file's stem: `_` keeps it apart from any endpoint's name
CPU_ALERT = "AsteroidServingCPUHigh"
MEMORY_ALERT = "AsteroidServingMemoryHigh"
# The supervisor's series name the part and the pid; a process's own metrics (Compose, Kubernetes) do not.
WITH_PART = "{{ with $labels.part }} {{ . }}{{ end }}"
WITH_PID = "{{ with $labels.pid }} (pid {{ . }}){{ end }}"


def _per_process(supervisor: str, own: Callable[[str], str], supervisor_metric: str) -> str:
    """The supervisor's series where it reports its parts' processes (the local stack: every inference
    worker with its pid); the application exporters' own client metrics always (they run beside the stack,
    never under its supervisor); every other process's own client metrics only where no supervisor reports
    (Compose, Kubernetes), since its view would only repeat them. ``own(selector)``: the expression over a
    process's own series with that label selector."""
    application = own(f'{{job="{APPLICATION_JOB}"}}')
    return (
        f"max by (job, instance, part, pid) ({supervisor})\n"
        f"or max by (job, instance) ({application})\n"
        f"or (max by (job, instance) ({own('')}) unless on () count({supervisor_metric}))"
    )


def process_cpu(window: str) -> str:
    """CPU cores in use per process over ``window`` (see ``_per_process`` for the sources)."""
    return _per_process(
        f"rate({PROCESS_CPU}_total[{window}])",
        lambda selector: f"rate(process_cpu_seconds_total{selector}[{window}])",
        f"{PROCESS_CPU}_total",
    )


def process_memory() -> str:
    """Resident bytes per process, from the same sources as ``process_cpu``."""
    return _per_process(
        PROCESS_RESIDENT, lambda selector: f"process_resident_memory_bytes{selector}", PROCESS_RESIDENT
    )


def host_cpu(window: str) -> str:
    """The busy fraction of the host's CPU (all cores) over ``window``, from the node exporter."""
    idle = f'node_cpu_seconds_total{{job="{NODE_JOB}", mode="idle"}}'
    return f"1 - avg by (job, instance) (rate({idle}[{window}]))"


def host_memory() -> str:
    """The used fraction of the host's memory (what the kernel could not hand out without swapping)."""
    return (
        f'1 - node_memory_MemAvailable_bytes{{job="{NODE_JOB}"}}\n'
        f'  / on (job, instance) node_memory_MemTotal_bytes{{job="{NODE_JOB}"}}'
    )


def _resource_alert(name: str, scope: str, expr: str, config: MonitoringConfig, summary: str,
                    description: str) -> dict[str, Any]:  # fmt: skip
    return {
        "alert": name,
        "expr": expr,
        "for": config.resource_for,
        "labels": {"severity": "warning", "scope": scope},
        "annotations": {"summary": summary, "description": description, "runbook": RUNBOOK},
    }


def resource_rules(config: MonitoringConfig) -> list[dict[str, Any]]:
    """AsteroidServingCPUHigh and AsteroidServingMemoryHigh, each for a process (label ``scope="process"``)
    and for the host (``scope="host"``)."""
    w = config.resource_window
    who = f"{{{{ $labels.job }}}}{WITH_PART}{WITH_PID}"
    cores, ratio = promql_number(config.process_cpu_cores), promql_number(config.host_cpu_ratio)
    memory, host_memory_ratio = (
        promql_number(config.process_memory_bytes),
        promql_number(config.host_memory_ratio),
    )
    return [
        _resource_alert(
            CPU_ALERT, "process", f"(\n{process_cpu(w)}\n) > {cores}", config,
            f"{who} used {{{{ $value | printf \"%.2f\" }}}} CPU cores over the last {w} "
            f"(limit {config.process_cpu_cores:g})",
            "One process of the serving stack keeps a core busy: requests queue behind it. Check the request "
            "rate and batch sizes on the dashboard; add inference workers (--workers) or replicas.",
        ),
        _resource_alert(
            CPU_ALERT, "host", f"{host_cpu(w)} > {ratio}", config,
            f"The host {{{{ $labels.instance }}}} is {{{{ $value | humanizePercentage }}}} busy over the "
            f"last {w} (limit {config.host_cpu_ratio:g})",
            "Every process on the machine competes for the CPU: see which parts use it on the dashboard "
            "(CPU per process), and whether other workloads share the host.",
        ),
        _resource_alert(
            MEMORY_ALERT, "process", f"(\n{process_memory()}\n) > {memory}", config,
            f"{who} holds {{{{ $value | humanize1024 }}}}B resident "
            f"(limit {config.process_memory_bytes / 1e9:g} GB)",
            "Far more than a healthy part holds: a leak, or too many models loaded in one worker. Its log is "
            "in the stack's data directory; restarting the part frees it.",
        ),
        _resource_alert(
            MEMORY_ALERT, "host", f"{host_memory()} > {host_memory_ratio}", config,
            f"The host {{{{ $labels.instance }}}} uses {{{{ $value | humanizePercentage }}}} of its memory "
            f"(limit {config.host_memory_ratio:g})",
            "The kernel will soon swap or kill processes: see which parts hold memory on the dashboard "
            "(resident memory per process).",
        ),
    ]  # fmt: skip


def resource_group(config: MonitoringConfig) -> dict[str, Any]:
    return {
        "groups": [
            {"name": "asteroid-resources", "interval": config.interval, "rules": resource_rules(config)}
        ]
    }


def render_resources(config: MonitoringConfig) -> str:
    header = (
        "# Generated by asteroid/monitoring/rules.py: process and host resources of the stack; do not edit.\n"
    )
    return header + dump_yaml(resource_group(config))


def rule_groups(
    reference: TrainingReference, config: MonitoringConfig, quality: QualityThresholds | None = None
) -> dict[str, Any]:
    """The rules file's content. The drift group, evaluated in order: live fractions, training fractions,
    scores, then alerts (a group's rules see the series recorded earlier in the same evaluation); then the
    live-quality group (asteroid/quality/rules.py), its alerts only when the winner's test metrics
    (`quality`) are known."""
    return {
        "groups": [
            {
                "name": f"asteroid-{reference.endpoint}-{reference.version}",
                "interval": config.interval,
                "rules": [
                    *live_rules(reference, config),
                    *training_rules(reference),
                    *score_rules(reference, config),
                    *alert_rules(reference, config),
                ],
            },
            quality_rules.rule_group(reference.endpoint, reference.version, quality, config),
        ]
    }


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL expressions) as YAML block literals, and no anchors or aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, width=120, allow_unicode=True)


def write_files(directory: Path, files: dict[str, str]) -> list[Path]:
    """Write generated files (path relative to `directory` -> content); returns the paths written."""
    paths = []
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        paths.append(path)
    return paths


def render(
    reference: TrainingReference, config: MonitoringConfig, quality: QualityThresholds | None = None
) -> str:
    header = (
        "# Generated by asteroid/monitoring/rules.py from the training reference of "
        f"{reference.endpoint}/{reference.version}; do not edit.\n"
    )
    return header + dump_yaml(rule_groups(reference, config, quality))
