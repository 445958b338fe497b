"""The rollout's thresholds, stages and timing, in one place: a production profile with Flagger's defaults
(request success rate ≥ 99 %, p99 latency ≤ 500 ms, a one-minute interval) and a short drill profile.
`ASTEROID_ROLLOUT_PROFILE` picks one; `python -m asteroid.rollout start --profile drill` too."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RolloutConfig:
    stages: tuple[int, ...] = (10, 50, 100)  # challenger weight (%) per stage; the last must be 100
    interval_s: float = 60.0  # one analysis per interval, over the interval's window
    # after each route change, before the next window opens: the inference app applies a new configuration at
    # its next sync (CLEARML_SERVING_POLL_FREQ, 5 min by default), stalling requests while it swaps it
    settle_s: float = 330.0
    analyses_per_stage: int = 5  # passing analyses before the next stage
    failure_limit: int = 2  # failed analyses (in total) that roll back
    max_inconclusive: int = 10  # analyses in a row without enough requests that roll back
    min_requests: int = 100  # per version and interval, for the analysis to count
    min_answered_rows: int = 50  # per version and interval, rows the statistics saw (hazardous rate)
    success_rate_min: float = 0.99  # the challenger passes when its success rate reaches this…
    error_rate_margin: float = 0.01  # …or its error rate is at most the champion's plus this
    latency_p99_max_s: float = 0.5  # …or at most the champion's p99 times this, on the same window
    latency_champion_ratio: float = 1.25
    hazardous_rate_tolerance: float = 0.05  # |challenger − champion| share of rows answered hazardous…
    hazardous_rate_z: float = 3.0  # …plus this many standard errors of the difference (chance)
    min_labels: int = 100  # labelled predictions per version before accuracy and recall are judged
    accuracy_tolerance: float = 0.02  # challenger ≥ champion − tolerance
    recall_tolerance: float = 0.02
    grace_period_s: float = 600.0  # after promotion, before the champion's endpoint is removed
    ready_timeout_s: float = 900.0  # for the new version to answer (clearml-serving syncs every 5 min)

    def __post_init__(self) -> None:
        stages = self.stages
        if (
            not stages
            or stages[-1] != 100
            or any(not 0 < w <= 100 for w in stages)
            or list(stages) != sorted(set(stages))
        ):
            raise ValueError(f"stages must increase strictly within (0, 100] and end at 100, got {stages}")
        if self.interval_s <= 0 or self.settle_s < 0 or self.analyses_per_stage < 1 or self.failure_limit < 1:
            raise ValueError("interval_s must be > 0, settle_s ≥ 0, analyses_per_stage and failure_limit ≥ 1")
        if min(self.max_inconclusive, self.min_requests, self.min_answered_rows, self.min_labels) < 1:
            raise ValueError("max_inconclusive and the minimum counts must be ≥ 1")
        if not 0 < self.success_rate_min <= 1:
            raise ValueError(f"success_rate_min must be in (0, 1], got {self.success_rate_min}")

    def window(self) -> str:
        """The Prometheus range of one analysis."""
        return f"{round(self.interval_s)}s"


PRODUCTION = RolloutConfig()
DRILL = replace(
    PRODUCTION,
    interval_s=10.0,
    settle_s=8.0,  # the local stack syncs every 5 s (SERVING_LOCAL_POLL_SECONDS)
    analyses_per_stage=1,
    failure_limit=1,
    max_inconclusive=6,
    min_requests=20,
    min_answered_rows=10,
    min_labels=20,
    grace_period_s=10.0,
    ready_timeout_s=120.0,
)
PROFILES = {"production": PRODUCTION, "drill": DRILL}
PROFILE_ENV = "ASTEROID_ROLLOUT_PROFILE"


def profile(name: str | None = None) -> RolloutConfig:
    chosen = name or os.environ.get(PROFILE_ENV) or "production"
    if chosen not in PROFILES:
        raise ValueError(f"unknown rollout profile {chosen!r}: choose one of {sorted(PROFILES)}")
    return PROFILES[chosen]
