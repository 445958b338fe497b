"""The canary analysis' series, read from Prometheus per model version over one interval.

- requests, server errors and the p99 duration: the inference app's `clearml_serving_version_*` metrics,
  labelled with the version that answered each request, a canary route's draw included
  (serving_local/request_metrics.py);
- rows answered and answered hazardous: clearml-serving's statistics histogram of the probability
  (`asteroid_2:probability`), whose buckets are not cumulative and whose `_sum` is the count (see
  docs/notes/serving.md): the hazardous rows are the increase of the buckets above the version's threshold;
- labelled predictions, correct answers, true positives and false negatives: the live-quality exporter's
  window gauges (asteroid/quality/metrics.py), per `endpoint` and `version`.
"""

from __future__ import annotations

from asteroid.monitoring.prometheus_api import Prometheus
from asteroid.monitoring.reference import le_label, metric_prefix, promql_regex
from asteroid.quality import metrics as quality
from asteroid.rollout.analysis import VersionWindow
from asteroid.rollout.state import Version
from asteroid.serving.contract import PROBABILITY, probability_buckets

VERSION_REQUESTS = "clearml_serving_version_requests_total"
VERSION_DURATION = "clearml_serving_version_request_duration_seconds_bucket"


def statistic_selector(endpoint: str, version: int, variable: str, suffix: str, **labels: str) -> str:
    """The statistics controller's metric under either name Prometheus stores (`:` kept or written `_`)."""
    endpoint_part, variable_part = f"{metric_prefix(endpoint, version, variable)}{suffix}".split(":", 1)
    matchers = [f'__name__=~"{promql_regex(endpoint_part)}[:_]{promql_regex(variable_part)}"']
    matchers += [f'{name}=~"{value}"' for name, value in labels.items()]
    return "{" + ", ".join(matchers) + "}"


def hazardous_le_labels(threshold: float) -> list[str]:
    """`le` of the probability buckets whose rows are answered hazardous (above the threshold's own edge)."""
    return [le_label(edge) for edge in probability_buckets(threshold) if edge > threshold] + ["+Inf"]


def queries(version: Version, threshold: float, window: str) -> dict[str, str]:
    endpoint, number = version.url.rsplit("/", 1)
    url = f'endpoint="{version.url}"'
    hazardous = "|".join(promql_regex(label) for label in hazardous_le_labels(threshold))
    quality_labels = f'endpoint="{endpoint}", version="{number}"'
    outcomes = f"{quality.WINDOW_OUTCOMES}{{{quality_labels}, {quality.OUTCOME_LABEL}="
    return {
        "requests": f"sum(increase({VERSION_REQUESTS}{{{url}}}[{window}]))",
        "errors": f'sum(increase({VERSION_REQUESTS}{{{url}, code=~"5.."}}[{window}]))',
        "latency_p99_s": "histogram_quantile(0.99, sum by (le) "
        f"(rate({VERSION_DURATION}{{{url}}}[{window}])))",
        "answered_rows": f"max(increase({statistic_selector(endpoint, int(number), PROBABILITY, '_sum')}"
        f"[{window}]))",
        "hazardous_rows": "sum(increase("
        f"{statistic_selector(endpoint, int(number), PROBABILITY, '_bucket', le=hazardous)}[{window}]))",
        "labelled": f"sum({quality.WINDOW_LABELLED}{{{quality_labels}}})",
        "correct": f"sum({quality.WINDOW_CORRECT}{{{quality_labels}}})",
        "true_positives": f'sum({outcomes}"{quality.TRUE_POSITIVE}"}})',
        "false_negatives": f'sum({outcomes}"{quality.FALSE_NEGATIVE}"}})',
    }


class PrometheusMetrics:
    """`MetricsSource` of the controller; `thresholds`: each version URL's served hazard threshold."""

    def __init__(self, prometheus: Prometheus, thresholds: dict[str, float]) -> None:
        self.prometheus, self.thresholds = prometheus, thresholds

    def window(self, version: Version, seconds: float, at: float) -> VersionWindow:
        values: dict[str, float | None] = {}
        for name, expr in queries(version, self.thresholds[version.url], f"{round(seconds)}s").items():
            result = self.prometheus.query(expr, time=at)
            value = float(result[0]["value"][1]) if result else None
            values[name] = None if value is None or value != value else value  # NaN: no data
        p99 = values.pop("latency_p99_s")
        return VersionWindow(latency_p99_s=p99, **{name: value or 0.0 for name, value in values.items()})
