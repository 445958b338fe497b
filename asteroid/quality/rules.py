"""Recording and alerting rules of live quality for one served version, from the exporter's gauges
(asteroid/quality/metrics.py) and the winner's own test metrics; written with the drift rules at each rollout
(asteroid/monitoring/rules.py, publish.py).

- `asteroid:model_accuracy:ratio`, `asteroid:model_recall:ratio`, `asteroid:model_precision:ratio` over the
  labels received in the window, and `asteroid:label_coverage:ratio` (labelled / stored predictions);
- `AsteroidModelAccuracyLow` / `AsteroidModelRecallLow`: below the test accuracy / recall minus
  `quality_margin` (asteroid/monitoring/config.py), only with at least `min_labelled` labels (for recall:
  `min_labelled_hazardous` labels of hazardous objects) in the window, for `for:`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asteroid.monitoring.config import MonitoringConfig
from asteroid.quality import metrics
from asteroid.quality.config import TEST_ACCURACY_KEY, TEST_RECALL_KEY

ACCURACY = "asteroid:model_accuracy:ratio"
RECALL = "asteroid:model_recall:ratio"
PRECISION = "asteroid:model_precision:ratio"
COVERAGE = "asteroid:label_coverage:ratio"
RECORDED = (ACCURACY, RECALL, PRECISION, COVERAGE)
RUNBOOK = "docs/notes/monitoring.md"


@dataclass(frozen=True)
class QualityThresholds:
    """The winner's test accuracy and recall; the alerts fire `margin` below them."""

    test_accuracy: float
    test_recall: float
    margin: float

    @property
    def accuracy(self) -> float:
        return max(self.test_accuracy - self.margin, 0.0)

    @property
    def recall(self) -> float:
        return max(self.test_recall - self.margin, 0.0)


def thresholds_of_model(model: Any, config: MonitoringConfig) -> QualityThresholds | None:
    """From the metadata of a clearml `Model`; None for a model trained before it was recorded."""
    values = [model.get_metadata(key) for key in (TEST_ACCURACY_KEY, TEST_RECALL_KEY)]
    if any(value in (None, "") for value in values):
        return None
    return QualityThresholds(float(values[0]), float(values[1]), config.quality_margin)


def _outcomes(selector: str, *outcomes: str) -> str:
    pattern = "|".join(outcomes)
    return (f'sum by (endpoint, version) ({metrics.WINDOW_OUTCOMES}{{{selector}, '
            f'{metrics.OUTCOME_LABEL}=~"{pattern}"}})')  # fmt: skip


def recording_rules(endpoint: str, version: int) -> list[dict[str, Any]]:
    selector = f'endpoint="{endpoint}", version="{version}"'
    true_positives = _outcomes(selector, metrics.TRUE_POSITIVE)
    hazardous = _outcomes(selector, metrics.TRUE_POSITIVE, metrics.FALSE_NEGATIVE)
    flagged = _outcomes(selector, metrics.TRUE_POSITIVE, metrics.FALSE_POSITIVE)
    return [
        {"record": ACCURACY,
         "expr": f"{metrics.WINDOW_CORRECT}{{{selector}}}\n"
                 f"  / on (endpoint, version) ({metrics.WINDOW_LABELLED}{{{selector}}} > 0)"},
        {"record": RECALL, "expr": f"{true_positives}\n  / on (endpoint, version) ({hazardous} > 0)"},
        {"record": PRECISION, "expr": f"{true_positives}\n  / on (endpoint, version) ({flagged} > 0)"},
        {"record": COVERAGE,
         "expr": f"{metrics.LABELLED}{{{selector}}}\n"
                 f"  / on (endpoint, version) ({metrics.PREDICTIONS}{{{selector}}} > 0)"},
    ]  # fmt: skip


def alert_rules(
    endpoint: str, version: int, thresholds: QualityThresholds, config: MonitoringConfig
) -> list[dict[str, Any]]:
    selector = f'endpoint="{endpoint}", version="{version}"'
    hazardous = _outcomes(selector, metrics.TRUE_POSITIVE, metrics.FALSE_NEGATIVE)
    w = config.window
    labelled = f"{metrics.WINDOW_LABELLED}{{{selector}}}"
    test = f"(test accuracy {thresholds.test_accuracy:.3f} − margin {thresholds.margin:g})"
    return [
        {
            "alert": "AsteroidModelAccuracyLow",
            "expr": f"{ACCURACY}{{{selector}}} < {thresholds.accuracy!r}\n"
                    f"and on (endpoint, version) {labelled} >= {config.min_labelled}",
            "for": config.for_,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Live accuracy of /serve/{{ $labels.endpoint }}/{{ $labels.version }} is "
                           "{{ $value | printf \"%.3f\" }} over the labels of the last "
                           f"{w} {test}",
                "description": "Labels sent back for this version disagree with its answers more often than "
                               "on its test split. Check the label source (a catalogue revision?), the drift "
                               "alerts and the dashboard's live quality panels; retrain if it persists.",
                "runbook": RUNBOOK,
            },
        },
        {
            "alert": "AsteroidModelRecallLow",
            "expr": f"{RECALL}{{{selector}}} < {thresholds.recall!r}\n"
                    f"and on (endpoint, version) {hazardous} >= {config.min_labelled_hazardous}",
            "for": config.for_,
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Live recall of /serve/{{ $labels.endpoint }}/{{ $labels.version }} is "
                           "{{ $value | printf \"%.3f\" }} over the labels of the last "
                           f"{w} (test recall {thresholds.test_recall:.3f} − margin {thresholds.margin:g})",
                "description": "Hazardous asteroids are being answered not hazardous: the costly error. "
                               "Look at which labelled objects were missed (python -m asteroid.quality "
                               "count), the drift alerts, and retrain on the revised labels.",
                "runbook": RUNBOOK,
            },
        },
    ]  # fmt: skip


def rule_group(
    endpoint: str, version: int, thresholds: QualityThresholds | None, config: MonitoringConfig
) -> dict[str, Any]:
    """The live-quality group of one version: recording rules, and the alerts when thresholds are known."""
    alerts = alert_rules(endpoint, version, thresholds, config) if thresholds else []
    return {
        "name": f"asteroid-quality-{endpoint}-{version}",
        "interval": config.interval,
        "rules": [*recording_rules(endpoint, version), *alerts],
    }
