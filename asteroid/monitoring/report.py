"""Pictures and the summary of a drift drill, from Prometheus' HTTP API: the drift score per feature over time
with the thresholds drawn, over a background of the share of drifted rows each score's window holds (it lags
the traffic by the window and the statistics delay) and a strip of the traffic sent phase by phase; and the
live against the training fractions per bucket of the most drifted feature at its peak."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from asteroid.monitoring import rules
from asteroid.monitoring.config import MonitoringConfig, seconds
from asteroid.monitoring.drill import DrillResult
from asteroid.monitoring.prometheus_api import Prometheus
from asteroid.serving.contract import PROBABILITY

PHASE_COLOURS = {"normal": "#c8e6c9", "drift": "#ffcdd2", "recover": "#bbdefb"}
DRIFT_COLOUR = "#e53935"
STEP_S = 2.0
# Statistics reach the broker in bursts up to ~10 s after the requests: the stock sender wakes at most every
# 10 s (docs/notes/serving.md); the scrape and the rule evaluation add their interval.
STATISTICS_DELAY_S = 10.0


def _sort_key(le: str) -> float:
    return float("inf") if le == "+Inf" else float(le)


def plot_scores(prometheus: Prometheus, drill: DrillResult, config: MonitoringConfig, path: Path) -> Path:
    start, end = drill.started_at, max(phase.get("end", 0.0) for phase in drill.phases.values())
    series = prometheus.query_range(rules.gated_psi(config), start, end, STEP_S)
    return draw_scores(series, drill, config, path)


def drifted_share(
    times: np.ndarray, drift: tuple[float, float], window_s: float, delay_s: float
) -> np.ndarray:
    """Per moment: the share of the rows in the score's window that were sent as drifted traffic (between
    `drift`'s two moments), when the statistics reach Prometheus `delay_s` after the requests: the window then
    holds the traffic sent from t - delay - window to t - delay (traffic assumed steady)."""
    newest = times - delay_s
    overlap = np.minimum(newest, drift[1]) - np.maximum(newest - window_s, drift[0])
    return np.clip(overlap, 0.0, None) / window_s


def draw_scores(series: list[dict[str, Any]], drill: DrillResult, config: MonitoringConfig, path: Path,
                statistics_delay_s: float = STATISTICS_DELAY_S) -> Path:  # fmt: skip
    """The drift score per feature (Prometheus range-query rows) over the drill. The background shows what a
    score is computed from: the share of drifted rows in its window, which lags the traffic by the window and
    the statistics delay (a band from no delay to the longest); the strip below shows the traffic sent."""
    start = drill.started_at
    end = max(phase.get("end", start) for phase in drill.phases.values()) - start
    figure, (axes, strip) = plt.subplots(
        2, 1, figsize=(11, 6.2), sharex=True, gridspec_kw={"height_ratios": [7, 1], "hspace": 0.08}
    )
    _draw_window_share(axes, drill, config, end, statistics_delay_s)
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
    axes.set_ylabel("PSI against the training data (symlog)")
    axes.set_title(
        f"Drift score per feature over a {config.window} window, where it holds "
        f"≥ {config.min_observations} rows (grey: unshifted features)"
    )
    axes.legend(loc="upper left", fontsize=8, ncol=2)
    _draw_traffic(strip, drill, end)
    strip.set_xlabel("seconds since the drill began (dotted: alert delivered to the webhook)")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def _draw_window_share(axes: Any, drill: DrillResult, config: MonitoringConfig, end: float,
                       statistics_delay_s: float) -> None:  # fmt: skip
    if "drift" not in drill.phases:
        return
    drift = _relative_phases(drill, end)["drift"]
    times = np.arange(0.0, end + STEP_S, STEP_S / 4)
    window = seconds(config.window)
    longest = statistics_delay_s + seconds(config.interval)
    shares = np.array([drifted_share(times, drift, window, delay) for delay in np.linspace(0, longest, 21)])
    share_axes = axes.twinx()
    share_axes.fill_between(times, 0, shares.min(axis=0), color=DRIFT_COLOUR, alpha=0.22, linewidth=0,
                            label="drifted rows in the window (share, right axis)")  # fmt: skip
    share_axes.fill_between(times, shares.min(axis=0), shares.max(axis=0), color=DRIFT_COLOUR, alpha=0.08,
                            linewidth=0, label=f"… with 0 to {longest:g} s of statistics delay")  # fmt: skip
    share_axes.set_ylim(0, 1.02)
    share_axes.set_ylabel("share of drifted rows in the window")
    share_axes.legend(loc="center left", fontsize=8)
    axes.set_zorder(share_axes.get_zorder() + 1)  # the scores above the shading
    axes.patch.set_visible(False)


def _relative_phases(drill: DrillResult, end: float) -> dict[str, tuple[float, float]]:
    """Phase -> (start, end) in seconds since the drill began (a phase still open ends at `end`)."""
    return {
        name: (phase["start"] - drill.started_at, phase.get("end", drill.started_at + end) - drill.started_at)
        for name, phase in drill.phases.items()
    }


def _draw_traffic(strip: Any, drill: DrillResult, end: float) -> None:
    """The traffic `inference.py` sent, phase by phase, in wall time."""
    for name, (left, right) in _relative_phases(drill, end).items():
        strip.axvspan(left, right, color=PHASE_COLOURS.get(name, "#eee"))
        strip.text((left + right) / 2, 0.5, f"{name} traffic sent", ha="center", va="center", fontsize=8)
    strip.set_yticks([])
    strip.set_ylim(0, 1)


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
