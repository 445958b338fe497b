"""One interval's analysis of a canary: the challenger's series against the champion's, over the same window.

Checks (each named, as the rollback tag and the alert name it):

- `error_rate`: server errors (5xx) per request. Passes when the challenger's success rate is at least
  `success_rate_min`, or its error rate is at most the champion's plus `error_rate_margin` (errors both
  versions share, e.g. a failing dependency, are not the challenger's fault). 4xx are the clients' and do not
  count.
- `latency_p99`: the challenger's p99 request duration at most `latency_p99_max_s`, or at most the champion's
  times `latency_champion_ratio` on the same window (a slow machine or a configuration sync that stalls every
  request is not the challenger's fault).
- `hazardous_rate`: the share of rows the challenger answers hazardous within `hazardous_rate_tolerance` of
  the champion's on the same interval, plus `hazardous_rate_z` standard errors of the difference: the two
  versions answer different random rows of the same traffic, and at 10 % of a drill's traffic chance alone
  moves the shares apart by several points (measured in tests/rollout/test_faults.py).
- `accuracy`, `recall`: judged only once both versions have `min_labels` labelled predictions (labels arrive
  late); the challenger at least the champion's minus the tolerance.

An analysis without `min_requests` requests and `min_answered_rows` rows in the statistics (which sample
requests at the endpoint's log frequency) for each version is inconclusive: it neither passes nor fails —
unless a request check (errors, latency) already failed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from asteroid.rollout.config import RolloutConfig

ERROR_RATE, LATENCY, HAZARDOUS_RATE, ACCURACY, RECALL = (
    "error_rate", "latency_p99", "hazardous_rate", "accuracy", "recall",
)  # fmt: skip


@dataclass(frozen=True)
class VersionWindow:
    """One version's series over an analysis window (counts are increases over the window)."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx
    latency_p99_s: float | None = None
    answered_rows: float = 0.0  # rows whose probability the statistics saw
    hazardous_rows: float = 0.0
    labelled: float = 0.0
    correct: float = 0.0
    true_positives: float = 0.0
    false_negatives: float = 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    @property
    def hazardous_rate(self) -> float:
        return self.hazardous_rows / self.answered_rows if self.answered_rows else math.nan

    @property
    def accuracy(self) -> float:
        return self.correct / self.labelled if self.labelled else math.nan

    @property
    def recall(self) -> float:
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else math.nan


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Analysis:
    conclusive: bool
    checks: list[Check]
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.conclusive and all(check.passed for check in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [check.name for check in self.checks if not check.passed] if self.conclusive else []

    def describe(self) -> str:
        if not self.conclusive:
            return f"inconclusive: {self.note}"
        return "; ".join(f"{'ok' if c.passed else 'FAILED'} {c.name}: {c.detail}" for c in self.checks)

    def record(self) -> dict[str, Any]:
        return {"conclusive": self.conclusive, "note": self.note, "checks": [asdict(c) for c in self.checks]}


def analyse(champion: VersionWindow, challenger: VersionWindow, config: RolloutConfig) -> Analysis:
    low = [
        f"{name} {window.requests:.0f}"
        for name, window in (("champion", champion), ("challenger", challenger))
        if window.requests < config.min_requests
    ]
    if low:
        return Analysis(False, [], f"requests {', '.join(low)} < {config.min_requests} in the window")
    checks = [_error_rate(champion, challenger, config), _latency(champion, challenger, config)]
    rows = [f"{name} {window.answered_rows:.0f}" for name, window in (("champion", champion),
            ("challenger", challenger)) if window.answered_rows < config.min_answered_rows]  # fmt: skip
    if rows:  # a failed request check still fails: a challenger failing every request answers no row
        note = f"answered rows in the statistics {', '.join(rows)} < {config.min_answered_rows}"
        return Analysis(not all(check.passed for check in checks), checks, note)
    checks.append(_hazardous_rate(champion, challenger, config))
    if min(champion.labelled, challenger.labelled) >= config.min_labels:
        checks += [
            _not_lower(ACCURACY, champion.accuracy, challenger.accuracy, config.accuracy_tolerance),
            _not_lower(RECALL, champion.recall, challenger.recall, config.recall_tolerance),
        ]
    return Analysis(True, checks)


def _error_rate(champion: VersionWindow, challenger: VersionWindow, config: RolloutConfig) -> Check:
    rate, base = challenger.error_rate, champion.error_rate
    allowed = max(1.0 - config.success_rate_min, base + config.error_rate_margin)
    return Check(
        ERROR_RATE,
        rate <= allowed,
        f"{rate:.2%} of {challenger.requests:.0f} requests failed "
        f"(champion {base:.2%}; allowed {allowed:.2%})",
    )


def _latency(champion: VersionWindow, challenger: VersionWindow, config: RolloutConfig) -> Check:
    p99, base = challenger.latency_p99_s, champion.latency_p99_s
    if p99 is None or math.isnan(p99):
        return Check(LATENCY, False, "no latency series for the challenger")
    allowed = config.latency_p99_max_s
    if base is not None and not math.isnan(base):
        allowed = max(allowed, base * config.latency_champion_ratio)
    champion_ms = "-" if base is None or math.isnan(base) else f"{base * 1000:.0f}"
    detail = f"p99 {p99 * 1000:.0f} ms (champion {champion_ms} ms; allowed {allowed * 1000:.0f} ms)"
    return Check(LATENCY, p99 <= allowed, detail)


def _hazardous_rate(champion: VersionWindow, challenger: VersionWindow, config: RolloutConfig) -> Check:
    rate, base = challenger.hazardous_rate, champion.hazardous_rate
    allowed = config.hazardous_rate_tolerance + config.hazardous_rate_z * _difference_error(
        champion, challenger
    )
    return Check(
        HAZARDOUS_RATE,
        abs(rate - base) <= allowed,
        f"{rate:.1%} answered hazardous (champion {base:.1%}; allowed difference ±{allowed:.1%})",
    )


def _difference_error(champion: VersionWindow, challenger: VersionWindow) -> float:
    """Standard error of the difference of two shares of rows (pooled): both versions answer different random
    rows of the same traffic, so their shares differ by chance too."""
    rows = champion.answered_rows + challenger.answered_rows
    pooled = (champion.hazardous_rows + challenger.hazardous_rows) / rows
    return math.sqrt(pooled * (1 - pooled) * (1 / champion.answered_rows + 1 / challenger.answered_rows))


def _not_lower(name: str, base: float, value: float, tolerance: float) -> Check:
    if math.isnan(value) or math.isnan(base):
        return Check(name, True, "no labelled hazardous rows yet")
    return Check(
        name, value >= base - tolerance, f"{value:.3f} (champion {base:.3f}; tolerance {tolerance:g})"
    )
