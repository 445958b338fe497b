"""Single analyses: what the champion suffers too is not held against the challenger."""

from __future__ import annotations

from dataclasses import replace

from asteroid.rollout.analysis import analyse
from asteroid.rollout.config import DRILL
from tests.rollout import series


def test_a_slow_window_for_both_versions_is_not_the_challengers_fault() -> None:
    slow_champion = replace(series.CHAMPION, latency_p99_s=2.0)
    assert analyse(slow_champion, replace(series.HEALTHY, latency_p99_s=2.1), DRILL).passed  # within 1.25×
    result = analyse(slow_champion, replace(series.HEALTHY, latency_p99_s=2.6), DRILL)
    assert result.failed_checks == ["latency_p99"]
    assert "p99 2600 ms (champion 2000 ms; allowed 2500 ms)" in result.describe()


def test_errors_the_champion_has_too_are_not_the_challengers_fault() -> None:
    failing_champion = replace(series.CHAMPION, errors=54)  # 10 %
    assert analyse(failing_champion, replace(series.HEALTHY, errors=6, answered_rows=54), DRILL).passed
    assert analyse(
        series.CHAMPION, replace(series.HEALTHY, errors=6, answered_rows=54), DRILL
    ).failed_checks == ["error_rate"]


def test_a_challenger_failing_every_request_fails_though_it_answered_no_row() -> None:
    dead = replace(series.HEALTHY, errors=60, answered_rows=0, hazardous_rows=0)
    result = analyse(series.CHAMPION, dead, DRILL)
    assert result.conclusive and result.failed_checks == ["error_rate"]
