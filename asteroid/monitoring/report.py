"""Pictures and the summary of a drift drill, from Prometheus' HTTP API: the drift score per feature over time
through the normal, drifted and recovered phases with the thresholds drawn, and the live against the training
fractions per bucket of the most drifted feature at its peak."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from asteroid.monitoring import rules
from asteroid.monitoring.config import MonitoringConfig
from asteroid.monitoring.drill import DrillResult
from asteroid.monitoring.prometheus_api import Prometheus
from asteroid.serving.contract import PROBABILITY

PHASE_COLOURS = {"normal": "#e8f5e9", "drift": "#ffebee", "recover": "#e3f2fd"}
STEP_S = 2.0


def _sort_key(le: str) -> float:
    return float("inf") if le == "+Inf" else float(le)


def plot_scores(prometheus: Prometheus, drill: DrillResult, config: MonitoringConfig, path: Path) -> Path:
    start, end = drill.started_at, max(phase.get("end", 0.0) for phase in drill.phases.values())
    series = prometheus.query_range(rules.gated_psi(config), start, end, STEP_S)
    figure, axes = plt.subplots(figsize=(11, 5.5))
    for name, phase in drill.phases.items():
        colour = PHASE_COLOURS.get(name, "#eee")
        axes.axvspan(
            phase["start"] - start, phase.get("end", end) - start, color=colour, label=f"{name} traffic"
        )
    fired = drill.fired_features
    for row in sorted(series, key=lambda row: row["metric"]["feature"]):
        feature = row["metric"]["feature"]
        times = [float(t) - start for t, _ in row["values"]]
        values = [float(v) for _, v in row["values"]]
        style = {"linewidth": 2.2} if feature in fired else {"linewidth": 0.8, "color": "grey", "alpha": 0.6}
        axes.plot(times, values, label=feature if feature in fired else None, **style)
    axes.axhline(
        config.psi_warning, color="orange", linestyle="--", label=f"warning (PSI {config.psi_warning})"
    )
    axes.axhline(
        config.psi_critical, color="red", linestyle="--", label=f"critical (PSI {config.psi_critical})"
    )
    for received in drill.firing_delivered_at.values():
        axes.axvline(received - start, color="black", linewidth=0.6, linestyle=":")
    axes.set_yscale("symlog", linthresh=0.1)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("seconds since the drill began (dotted: alert delivered to the webhook)")
    axes.set_ylabel("PSI against the training data (symlog)")
    axes.set_title(
        f"Drift score per feature over a {config.window} window, where it holds "
        f"≥ {config.min_observations} rows (grey: unshifted features)"
    )
    axes.legend(loc="upper left", fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def peak(prometheus: Prometheus, drill: DrillResult) -> tuple[str, float]:
    """The most drifted feature and the moment of its highest score during the drift phase."""
    drift = drill.phases["drift"]
    end = drill.phases.get("recover", drift).get("start", drift.get("end", drift["start"]))
    series = prometheus.query_range(f'{rules.PSI}{{feature!="{PROBABILITY}"}}', drift["start"], end, STEP_S)
    best = max(
        ((row["metric"]["feature"], float(t), float(v)) for row in series for t, v in row["values"]),
        key=lambda item: item[2],
    )
    return best[0], best[1]


def plot_histogram(prometheus: Prometheus, drill: DrillResult, path: Path) -> tuple[Path, str]:
    feature, moment = peak(prometheus, drill)
    live = {
        row["metric"]["le"]: float(row["value"][1])
        for row in prometheus.query(f'{rules.LIVE_FRACTION}{{feature="{feature}"}}', moment)
    }  # fmt: skip
    training = {
        row["metric"]["le"]: float(row["value"][1])
        for row in prometheus.query(f'{rules.TRAINING_FRACTION}{{feature="{feature}"}}', moment)
    }
    labels = sorted(training, key=_sort_key)
    positions = range(len(labels))
    figure, axes = plt.subplots(figsize=(11, 4.5))
    axes.bar([p - 0.2 for p in positions], [training[le] for le in labels], width=0.4, label="training")
    axes.bar(
        [p + 0.2 for p in positions], [live.get(le, 0.0) for le in labels], width=0.4, label="live (drifted)"
    )
    axes.set_xticks(list(positions), [f"≤ {le}" if le != "+Inf" else "> last" for le in labels], rotation=45)
    axes.set_ylabel("fraction of rows per bucket")
    axes.set_title(f"{feature}: live fractions at the drift's peak against the training fractions")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path, feature


def request_latency(prometheus: Prometheus, drill: DrillResult) -> dict[str, float | None]:
    """Server-side latency percentiles over the whole drill, from the inference app's histogram (ms)."""
    end = max(phase.get("end", 0.0) for phase in drill.phases.values())
    seconds = max(1, round(end - drill.started_at))
    figures: dict[str, float | None] = {}
    for q in (0.5, 0.95, 0.99):
        expr = (f"histogram_quantile({q}, sum by (le) "
                f"(increase(clearml_serving_request_duration_seconds_bucket[{seconds}s])))")  # fmt: skip
        rows = prometheus.query(expr, end)
        figures[f"p{round(q * 100)}_ms"] = round(float(rows[0]["value"][1]) * 1000, 2) if rows else None
    return figures


def alert_timeline(drill: DrillResult) -> list[dict[str, Any]]:
    return [
        {
            "received_at": record["received_at"],
            "seconds_since_drill_start": round(record["received_at"] - drill.started_at, 1),
            "alertname": alert["labels"].get("alertname"),
            "feature": alert["labels"].get("feature"),
            "severity": alert["labels"].get("severity"),
            "status": alert["status"],
            "starts_at": alert.get("startsAt"),
            "ends_at": alert.get("endsAt"),
        }
        for record in drill.notifications
        for alert in record["alerts"]
    ]


def write_summary(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
