"""The picture and the summary of a live-quality drill (asteroid/quality/drill.py): live accuracy and recall
over time as Prometheus recorded them, with the alert thresholds, the phases and the alert's delivery and
resolution drawn; and the `quality` section of runs/latest/demo.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from asteroid.monitoring.prometheus_api import Prometheus
from asteroid.quality import rules as quality_rules
from asteroid.quality.drill import RECALL_ALERT, QualityDrillResult

PHASE_COLOURS = {"correct": "#c8e6c9", "revision": "#ffcdd2", "recover": "#bbdefb"}
PHASE_TEXT = {"correct": "correct labels", "revision": "catalogue revision", "recover": "revision withdrawn"}
FIGURE_COLOURS = {"accuracy": "#1e88e5", "recall": "#d81b60"}
STEP_S = 1.0
Series = dict[str, list[tuple[float, float]]]  # accuracy/recall -> (unix time, value)


def live_series(prometheus: Prometheus, drill: QualityDrillResult) -> Series:
    """accuracy/recall -> (unix time, value) as the recording rules stored them over the drill."""
    end = max(phase.get("end", drill.started_at) for phase in drill.phases.values())
    selector = f'endpoint="{drill.endpoint}", version="{drill.version}"'
    series = {}
    for name, record in (("accuracy", quality_rules.ACCURACY), ("recall", quality_rules.RECALL)):
        rows = prometheus.query_range(f"{record}{{{selector}}}", drill.started_at, end, STEP_S)
        series[name] = [(float(t), float(v)) for t, v in rows[0]["values"]] if rows else []
    return series


def plot_live_quality(prometheus: Prometheus, drill: QualityDrillResult, path: Path) -> Path:
    return draw_live_quality(live_series(prometheus, drill), drill, path)


def draw_live_quality(series: Series, drill: QualityDrillResult, path: Path) -> Path:
    start = drill.started_at
    figure, axes = plt.subplots(figsize=(11, 5))
    for name, (left, right) in _relative_phases(drill).items():
        axes.axvspan(left, right, color=PHASE_COLOURS.get(name, "#eee"), alpha=0.6, linewidth=0)
        axes.text((left + right) / 2, 0.02, PHASE_TEXT.get(name, name), ha="center", va="bottom", fontsize=9,
                  transform=axes.get_xaxis_transform())  # fmt: skip
    for name, points in series.items():
        colour = FIGURE_COLOURS[name]
        axes.plot([t - start for t, _ in points], [v for _, v in points], color=colour, linewidth=2,
                  label=f"live {name} (labels of the last window)")  # fmt: skip
        threshold = drill.thresholds[name]
        axes.axhline(threshold, color=colour, linestyle="--", linewidth=1,
                     label=f"{name} alert below {threshold:.3f}")  # fmt: skip
    marks = (
        (drill.firing_delivered_at, f"{RECALL_ALERT} delivered", "red"),
        (drill.resolved_delivered_at, "resolved delivered", "green"),
    )
    for moment, text, colour in marks:
        if moment is not None:
            axes.axvline(moment - start, color=colour, linestyle=":", linewidth=1.5, label=text)
    values = [v for points in series.values() for _, v in points] + list(drill.thresholds.values())[:2]
    axes.set_ylim(max(0.0, min(values, default=0.0) - 0.05), 1.01)
    axes.set_xlabel("seconds since the quality drill began")
    axes.set_ylabel("live figure over the labels of the window")
    axes.set_title(f"Live accuracy and recall of /serve/{drill.endpoint}/{drill.version}: correct labels, "
                   "a catalogue revision, its withdrawal")  # fmt: skip
    axes.legend(loc="lower left", fontsize=8, bbox_to_anchor=(0.0, 0.08))
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def _relative_phases(drill: QualityDrillResult) -> dict[str, tuple[float, float]]:
    end = max(phase.get("end", drill.started_at) for phase in drill.phases.values())
    return {
        name: (phase["start"] - drill.started_at, phase.get("end", end) - drill.started_at)
        for name, phase in drill.phases.items()
    }


def summary(drill: QualityDrillResult, picture: Path | None) -> dict[str, Any]:
    """The `quality` section of runs/latest/demo.json."""

    def relative(moment: float | None) -> float | None:
        return None if moment is None else round(moment - drill.started_at, 1)

    return {
        "endpoint": drill.endpoint,
        "version": drill.version,
        "thresholds": drill.thresholds,
        "revised_asteroids": drill.revised_asteroids,
        "rows_served": drill.rows_served,
        "labels_sent": drill.labels_sent,
        "revisions_sent": drill.revisions_sent,
        "labels_matched": drill.matched,
        "labels_unmatched": drill.unmatched,
        "live_per_phase": drill.live,
        "phases_seconds": {
            name: [round(left, 1), round(right, 1)] for name, (left, right) in _relative_phases(drill).items()
        },
        "quality_alerts_in_correct_phase": len(drill.quiet_phase_alerts),
        "recall_alert": {
            "fired_seen_at_s": relative(drill.firing_seen_at),
            "delivered_at_s": relative(drill.firing_delivered_at),
            "resolved_delivered_at_s": relative(drill.resolved_delivered_at),
            **drill.seconds(),
        },
        "picture": str(picture) if picture else None,
    }
