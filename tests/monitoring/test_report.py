"""The drift-score picture: the share of drifted rows each score's window holds, and the picture drawn from
synthetic series (the end-to-end drill draws it from the real ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asteroid.monitoring import report
from asteroid.monitoring.config import PROFILES, seconds
from asteroid.monitoring.drill import DrillResult

CONFIG = PROFILES["short"]  # a 40 s window, rules every 2 s


def test_the_window_holds_drifted_rows_a_delay_after_the_drift_and_for_a_window_after_it_ends() -> None:
    times = np.array([50.0, 60.0, 65.0, 85.0, 95.0, 105.0, 115.0, 140.0, 145.0])
    share = report.drifted_share(times, (55.0, 95.0), window_s=40.0, delay_s=10.0)
    # nothing until the first drifted statistics arrive (55 + 10), all drifted at 95 + 10, nothing after
    # 95 + 10 + 40: the score peaks after the drifted traffic stopped
    assert share.tolist() == pytest.approx([0, 0, 0, 0.5, 0.75, 1.0, 0.75, 0.125, 0])


def test_durations_are_read_as_prometheus_writes_them() -> None:
    assert [seconds(text) for text in ("40s", "2s", "15m", "1h30m", "500ms")] == [40, 2, 900, 5400, 0.5]
    with pytest.raises(ValueError, match="not a duration"):
        seconds("40 s")


def test_the_picture_is_drawn_from_score_series(tmp_path: Path) -> None:
    start = 1_000.0
    phases = {"normal": (4.5, 55.0), "drift": (55.0, 95.0), "recover": (95.0, 125.0)}
    drill = DrillResult(
        start, {name: {"start": start + a, "end": start + b} for name, (a, b) in phases.items()}
    )
    drill.firing_delivered_at = {"absolute_magnitude": start + 94.0}
    times = np.arange(24.0, 125.0, 2.0)
    share = report.drifted_share(times, phases["drift"], seconds(CONFIG.window), 6.0)
    series = [
        {
            "metric": {"feature": feature},
            "values": [[start + t, str(0.005 + k * s)] for t, s in zip(times, share, strict=True)],
        }
        for feature, k in (("absolute_magnitude", 0.3), ("eccentricity", 0.0))
    ]
    path = report.draw_scores(series, drill, CONFIG, tmp_path / "drift_scores.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
