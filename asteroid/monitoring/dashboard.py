"""Grafana files generated from code: the dashboard (grafana-foundation-sdk, every feature gets its panels),
the Prometheus datasource with a fixed uid, the dashboard provider, and Grafana-managed alert rules that
fire where the Prometheus drift rules fire: the same PromQL, the same `>=` (Grafana >= 9.1 file provisioning).

    python -m asteroid.monitoring.dashboard        # (re)writes dashboards/ (a test keeps it equal)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, VizLegendOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphTresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
)
from grafana_foundation_sdk.models.dashboard import DataSourceRef, ThresholdsMode
from grafana_foundation_sdk.models.dashboard import Threshold as ThresholdStep
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

import global_config
from asteroid.monitoring import rules
from asteroid.monitoring.config import MonitoringConfig
from asteroid.quality import metrics as quality_metrics
from asteroid.quality import rules as quality_rules
from asteroid.serving.contract import FEATURE_STATISTICS, PROBABILITY
from serving_local.api import NODE_JOB

DATASOURCE_UID = "asteroid-prometheus"
DASHBOARD_UID = "asteroid-serving"
DASHBOARDS_DIR = global_config.ROOT / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
RATE = "$__rate_interval"  # Grafana's variable; the tests evaluate the expressions with a fixed range


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([ThresholdStep(value=value, color=color) for value, color in steps])
    )


def legend() -> VizLegendOptions:
    return (
        VizLegendOptions()
        .display_mode(LegendDisplayMode.LIST)
        .placement(LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def series_panel(title: str, unit: str, *targets: prometheus.Dataquery, height: int = 8,
                 width: int = 12) -> timeseries.Panel:  # fmt: skip
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(height).span(width)
    for target in targets:
        panel = panel.with_target(target)
    return panel.legend(legend())


def drift_panel(config: MonitoringConfig) -> timeseries.Panel:
    return (
        series_panel(
            "Drift score (PSI against the training data) per feature", "none",
            query(f'{rules.PSI}{{feature!="{PROBABILITY}"}}', "{{feature}}"), width=24,
        )
        .description(f"PSI of the live fractions per bucket over {config.window} against the training "
                     f"fractions; warning at {config.psi_warning}, critical at {config.psi_critical} "
                     "(dashed lines).")
        .thresholds(thresholds((None, "green"), (config.psi_warning, "orange"), (config.psi_critical, "red")))
        .thresholds_style(GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED))
        .min(0)
    )  # fmt: skip


def heatmap_panel(feature: str) -> heatmap.Panel:
    """Live fraction of traffic per training bucket over time (the buckets are not cumulative)."""
    expr = f'sum by (le) ({rules.LIVE_FRACTION}{{feature="{feature}"}})'
    return (
        heatmap.Panel().title(f"{feature}: live fraction per training bucket").datasource(DATASOURCE)
        .with_target(query(expr, "{{le}}").format(PromQueryFormat.TIME_SERIES))
        .calculate(False).height(7).span(8).unit("percentunit")
    )  # fmt: skip


def serving_panels() -> list[Any]:
    requests = "clearml_serving_requests_total"
    durations = "clearml_serving_request_duration_seconds_bucket"
    quantiles = [
        query(f"histogram_quantile({q}, sum by (le) (rate({durations}[{RATE}])))", f"p{round(q * 100)}", ref)
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]
    return [
        series_panel("Request rate by endpoint and status", "reqps",
                     query(f"sum by (endpoint, code) (rate({requests}[{RATE}]))", "{{endpoint}} {{code}}")),
        series_panel("Latency percentiles (inference app)", "s", *quantiles),
        series_panel("Error rate by status (4xx/5xx)", "reqps",
                     query(f'sum by (code) (rate({requests}{{code=~"4..|5.."}}[{RATE}]))', "{{code}}")),
        series_panel("Predicted hazardous fraction against the training base rate", "percentunit",
                     query(rules.HAZARDOUS, "live {{endpoint}}/{{version}}"),
                     query(rules.HAZARDOUS_TRAINING, "training base rate", "B")),
        series_panel("Firing alerts", "none",
                     query('sum by (alertname, feature, severity) (ALERTS{alertstate="firing"})',
                           "{{alertname}} {{feature}} {{severity}}"), width=24),
    ]  # fmt: skip


def quality_panels(config: MonitoringConfig) -> list[Any]:
    """Live quality from the labels sent back (asteroid/quality/): the recorded ratios and the counts."""
    version = "{{endpoint}}/{{version}}"
    return [
        series_panel(
            f"Live accuracy, recall, precision (labels of the last {config.window})", "percentunit",
            query(quality_rules.ACCURACY, f"accuracy {version}"),
            query(quality_rules.RECALL, f"recall {version}", "B"),
            query(quality_rules.PRECISION, f"precision {version}", "C"), width=24,
        )
        .description("Over the labels received in the window, per served version. The alerts fire below the "
                     f"winner's test accuracy / recall minus {config.quality_margin:g}, with at least "
                     f"{config.min_labelled} labels ({config.min_labelled_hazardous} hazardous for recall).")
        .min(0).max(1),
        series_panel("Labelled predictions in the window, by outcome", "none",
                     query(f"sum by (endpoint, version, outcome) ({quality_metrics.WINDOW_OUTCOMES})",
                           "{{outcome}} " + version)),
        series_panel("Label coverage (labelled / stored predictions)", "percentunit",
                     query(quality_rules.COVERAGE, f"coverage {version}")),
        series_panel("Mean label delay (answer to label)", "s",
                     query(quality_metrics.WINDOW_LABEL_DELAY, f"delay {version}")),
        series_panel("Unmatched labels and revisions", "none",
                     query(f"sum by (kind) ({quality_metrics.UNMATCHED})", "unmatched {{kind}}"),
                     query(quality_metrics.REVISIONS, "revisions", "B")),
    ]  # fmt: skip


def resource_panels(config: MonitoringConfig) -> list[Any]:
    """CPU and resident memory of every process of the stack (each inference worker on its own line) and of
    the host, with the thresholds of AsteroidServingCPUHigh / AsteroidServingMemoryHigh (rules.py)."""
    process = "{{job}} {{part}} {{pid}}"
    return [
        series_panel("CPU per process (cores)", "none", query(rules.process_cpu(RATE), process))
        .description("Local stack: every process of every part, from the supervisor (inference workers by "
                     "pid); elsewhere each process's own metrics. AsteroidServingCPUHigh above "
                     f"{config.process_cpu_cores:g} core for {config.resource_for}.")
        .thresholds(thresholds((None, "green"), (config.process_cpu_cores, "red")))
        .thresholds_style(GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED)).min(0),
        series_panel("Resident memory per process", "bytes", query(rules.process_memory(), process))
        .description(f"AsteroidServingMemoryHigh above {config.process_memory_bytes / 1e9:g} GB for "
                     f"{config.resource_for}.")
        .thresholds(thresholds((None, "green"), (config.process_memory_bytes, "red")))
        .thresholds_style(GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED)).min(0),
        series_panel("Host CPU busy and memory used", "percentunit",
                     query(rules.host_cpu(RATE), "CPU busy {{instance}}"),
                     query(rules.host_memory(), "memory used {{instance}}", "B"))
        .description(f"From the node exporter. Alerts above {config.host_cpu_ratio:g} (CPU) and "
                     f"{config.host_memory_ratio:g} (memory) for {config.resource_for}.")
        .thresholds(thresholds((None, "green"), (config.host_cpu_ratio, "red")))
        .thresholds_style(GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED)).min(0).max(1),
        series_panel("Host load average", "none",
                     query(f'node_load1{{job="{NODE_JOB}"}}', "1 min {{instance}}"),
                     query(f'node_load5{{job="{NODE_JOB}"}}', "5 min {{instance}}", "B"))
        .description("Runnable processes, averaged; above the number of cores, work waits for a CPU.").min(0),
    ]  # fmt: skip


def build_dashboard(config: MonitoringConfig) -> dict[str, Any]:
    builder = (
        db.Dashboard("Asteroid serving: drift and health").uid(DASHBOARD_UID)
        .tags(["asteroid", "clearml-serving", "drift"]).refresh("10s").time("now-30m", "now").editable()
        .with_row(db.Row("Drift against the training data"))
        .with_panel(drift_panel(config))
        .with_row(db.Row("Serving"))
    )  # fmt: skip
    for panel in serving_panels():
        builder = builder.with_panel(panel)
    builder = builder.with_row(db.Row("Processes and host (CPU, memory)"))
    for panel in resource_panels(config):
        builder = builder.with_panel(panel)
    builder = builder.with_row(db.Row("Live quality (labels sent back)"))
    for panel in quality_panels(config):
        builder = builder.with_panel(panel)
    builder = builder.with_row(db.Row("Feature distributions (live fraction per training bucket)"))
    for feature in FEATURE_STATISTICS:
        builder = builder.with_panel(heatmap_panel(feature))
    return json.loads(JSONEncoder(sort_keys=True, indent=2).encode(builder.build()))


def datasource_provisioning() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus", "type": "prometheus", "uid": DATASOURCE_UID, "access": "proxy",
            "url": "http://127.0.0.1:9090", "isDefault": True, "jsonData": {"timeInterval": "15s"},
        }],
    }  # fmt: skip


def dashboard_provisioning() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [{
            "name": "asteroid", "folder": "Asteroid", "type": "file", "disableDeletion": False,
            "updateIntervalSeconds": 30, "options": {"path": "/var/lib/grafana/dashboards/asteroid"},
        }],
    }  # fmt: skip


def threshold_condition(threshold: float) -> str:
    """Grafana's condition on the last PSI (`$B`): at or above the threshold, as the Prometheus rule compares.
    A math expression, because the threshold expression of Grafana 10.4 (the pinned image) only knows the
    strict `gt`; a non-zero result fires."""
    return f"$B >= {rules.promql_number(threshold)}"


def _grafana_rule(config: MonitoringConfig, severity: str, threshold: float) -> dict[str, Any]:
    expr = rules.gated_psi(config).replace("\n", " ")
    return {
        "uid": f"asteroid-feature-drift-{severity}",
        "title": f"AsteroidFeatureDrift ({severity})",
        "condition": "C",
        "data": [
            {"refId": "A", "relativeTimeRange": {"from": 600, "to": 0}, "datasourceUid": DATASOURCE_UID,
             "model": {"refId": "A", "expr": expr, "instant": True, "datasource": {"type": "prometheus",
                                                                                   "uid": DATASOURCE_UID}}},
            {"refId": "B", "datasourceUid": "__expr__",
             "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"}},
            {"refId": "C", "datasourceUid": "__expr__",
             "model": {"refId": "C", "type": "math", "expression": threshold_condition(threshold)}},
        ],
        "for": config.for_,
        "noDataState": "OK",
        "execErrState": "Error",
        "labels": {"severity": severity},
        "annotations": {
            "summary": "Feature {{ $labels.feature }} drifted from the training data: PSI {{ $values.B }} "
                       f"(≥ {threshold:g} is {severity})",
            "runbook_url": rules.RUNBOOK,
        },
    }  # fmt: skip


def alert_provisioning(config: MonitoringConfig) -> dict[str, Any]:
    """Grafana-managed equivalents of the Prometheus AsteroidFeatureDrift rules (they read the recorded PSI
    and observation series, so the Prometheus recording rules must be loaded)."""
    return {
        "apiVersion": 1,
        "groups": [{
            "orgId": 1, "name": "asteroid-drift", "folder": "Asteroid", "interval": config.interval,
            "rules": [_grafana_rule(config, "warning", config.psi_warning),
                      _grafana_rule(config, "critical", config.psi_critical)],
        }],
    }  # fmt: skip


def generated_files(config: MonitoringConfig | None = None) -> dict[str, str]:
    """Relative path under dashboards/ -> content."""
    config = config or MonitoringConfig()
    header = "# Generated by asteroid/monitoring/dashboard.py; do not edit.\n"
    return {
        "asteroid.json": json.dumps(build_dashboard(config), indent=2, sort_keys=True) + "\n",
        "provisioning/datasources/prometheus.yaml": header + rules.dump_yaml(datasource_provisioning()),
        "provisioning/dashboards/asteroid.yaml": header + rules.dump_yaml(dashboard_provisioning()),
        "provisioning/alerting/asteroid-drift.yaml": header + rules.dump_yaml(alert_provisioning(config)),
    }


def write(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    return rules.write_files(directory, generated_files())


def expressions(files: dict[str, str]) -> list[str]:
    """Every PromQL expression of the dashboard and of the Grafana alert rules."""
    import yaml

    dashboard = json.loads(files["asteroid.json"])
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    alerting = yaml.safe_load(files["provisioning/alerting/asteroid-drift.yaml"])
    exprs += [
        query["model"]["expr"]
        for group in alerting["groups"] for rule in group["rules"] for query in rule["data"]
        if query["datasourceUid"] != "__expr__"
    ]  # fmt: skip
    return exprs


if __name__ == "__main__":
    for written in write():
        print(f"wrote {written.relative_to(global_config.ROOT)}")
    sys.exit(0)
