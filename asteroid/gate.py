"""The champion/challenger gate: may a new winner take any traffic from the model now serving?

Both models answer the same recent labelled rows (asteroid/rollout/challenger.py gathers them: observations
newer than the challenger's training data and the feedback labels of the live-quality store). The challenger
passes when

- its recall on those rows is not lower than the champion's (a missed hazardous asteroid is the costly
  error), and
- an exact McNemar test on the paired answers does not find it worse: of the rows exactly one of the two
  answers correctly, `champion_only` the champion alone and `challenger_only` the challenger alone; under
  "equally good" each such discordant row is a fair coin, so the two-sided exact p-value is
  min(1, 2 · P(X ≤ min(b, c))) with X ~ Binomial(b + c, 1/2). The challenger is found worse when
  `champion_only > challenger_only` and p < `alpha` (0.05 by default: a 5 % chance of refusing a challenger
  that is as good as the champion);
- there is evidence to judge on: at least `min_rows` rows of which `min_positives` hazardous. Without it the
  challenger is refused ("insufficient evidence"): nothing unjudged takes traffic. Without a champion (nothing
  served yet) the challenger passes.

Pure: numbers in, a verdict out; recording it on ClearML is asteroid/rollout/challenger.py's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PASSED_TAG = "gate_passed"
REFUSED_TAG = "gate_refused"
TABLE_TITLE = "champion/challenger gate"
TABLE_SERIES = "verdict"


@dataclass(frozen=True)
class GateConfig:
    alpha: float = 0.05  # level of the exact McNemar test
    min_rows: int = 50
    min_positives: int = 5

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be strictly between 0 and 1, got {self.alpha}")
        if self.min_rows < 1 or self.min_positives < 0:
            raise ValueError(
                f"min_rows must be ≥ 1 and min_positives ≥ 0, got {self.min_rows}, {self.min_positives}"
            )


DEFAULT_CONFIG = GateConfig()


def binomial_cdf_half(k: int, n: int) -> float:
    """P(X ≤ k) for X ~ Binomial(n, 1/2), exactly (integers until the one division)."""
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2**n


def mcnemar_exact_p(champion_only: int, challenger_only: int) -> float:
    """Two-sided exact McNemar p-value of the discordant pair counts (1.0 when there are none)."""
    if champion_only < 0 or challenger_only < 0:
        raise ValueError("discordant counts cannot be negative")
    n = champion_only + challenger_only
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binomial_cdf_half(min(champion_only, challenger_only), n))


@dataclass(frozen=True)
class Scores:
    """One model's answers on the gate's rows."""

    recall: float
    accuracy: float
    hazardous_rate: float
    true_positives: int
    false_negatives: int


def _scores(truth: np.ndarray, predicted: np.ndarray) -> Scores:
    tp = int((predicted & truth).sum())
    fn = int((~predicted & truth).sum())
    positives = tp + fn
    return Scores(
        recall=tp / positives if positives else math.nan,
        accuracy=float((predicted == truth).mean()) if truth.size else math.nan,
        hazardous_rate=float(predicted.mean()) if truth.size else math.nan,
        true_positives=tp,
        false_negatives=fn,
    )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str]
    rows: int
    positives: int
    champion: Scores | None
    challenger: Scores
    champion_only: int = 0  # discordant rows the champion alone answered correctly
    challenger_only: int = 0
    p_value: float = 1.0
    config: GateConfig = field(default_factory=GateConfig)

    @property
    def tag(self) -> str:
        return PASSED_TAG if self.passed else REFUSED_TAG

    def summary(self) -> str:
        word = "passed" if self.passed else "refused"
        return f"gate {word}: " + "; ".join(self.reasons)

    def table(self) -> list[dict[str, Any]]:
        """Rows of the table recorded on the challenger's task: metric, champion, challenger."""
        champion = self.champion
        rows = [
            {"metric": name, "champion": getattr(champion, name) if champion else None,
             "challenger": getattr(self.challenger, name)}
            for name in ("recall", "accuracy", "hazardous_rate", "true_positives", "false_negatives")
        ]  # fmt: skip
        rows += [
            {"metric": "rows (positives)", "champion": self.rows, "challenger": self.positives},
            {"metric": "right only (McNemar discordant)", "champion": self.champion_only,
             "challenger": self.challenger_only},
            {"metric": f"McNemar exact p (refuse below {self.config.alpha:g})", "champion": self.p_value,
             "challenger": self.p_value},
            {"metric": "verdict", "champion": "", "challenger": self.summary()},
        ]  # fmt: skip
        return rows


def judge(
    truth: Any, challenger_predicted: Any, champion_predicted: Any | None, config: GateConfig = DEFAULT_CONFIG
) -> Verdict:
    """The gate's verdict from 0/1 labels and each model's 0/1 answers on the same rows (champion None: no
    model is served yet)."""
    truth_ = np.asarray(truth, dtype=bool).ravel()
    challenger = np.asarray(challenger_predicted, dtype=bool).ravel()
    if challenger.shape != truth_.shape:
        raise ValueError(f"{truth_.size} labels but {challenger.size} challenger answers")
    challenger_scores = _scores(truth_, challenger)
    rows, positives = int(truth_.size), int(truth_.sum())
    if champion_predicted is None:
        first = ["no champion is served"]
        return Verdict(True, first, rows, positives, None, challenger_scores, config=config)
    champion = np.asarray(champion_predicted, dtype=bool).ravel()
    if champion.shape != truth_.shape:
        raise ValueError(f"{truth_.size} labels but {champion.size} champion answers")
    champion_scores = _scores(truth_, champion)
    champion_right, challenger_right = champion == truth_, challenger == truth_
    champion_only = int((champion_right & ~challenger_right).sum())
    challenger_only = int((challenger_right & ~champion_right).sum())
    p_value = mcnemar_exact_p(champion_only, challenger_only)
    reasons = _refusals(config, rows, positives, champion_scores, challenger_scores, champion_only,
                        challenger_only, p_value)  # fmt: skip
    passed = not reasons
    if passed:
        reasons = [
            f"recall {challenger_scores.recall:.4f} ≥ champion's {champion_scores.recall:.4f}",
            f"McNemar exact p = {p_value:.4g} (champion alone right {champion_only}, "
            f"challenger alone right {challenger_only})",
        ]
    return Verdict(passed, reasons, rows, positives, champion_scores, challenger_scores, champion_only,
                   challenger_only, p_value, config)  # fmt: skip


def _refusals(
    config: GateConfig, rows: int, positives: int, champion: Scores, challenger: Scores,
    champion_only: int, challenger_only: int, p_value: float,
) -> list[str]:  # fmt: skip
    if rows < config.min_rows or positives < config.min_positives:
        return [
            f"insufficient evidence: {rows} labelled rows ({positives} hazardous), the gate needs "
            f"{config.min_rows} ({config.min_positives} hazardous)"
        ]
    reasons = []
    if challenger.recall < champion.recall:
        reasons.append(f"recall {challenger.recall:.4f} < champion's {champion.recall:.4f}")
    if champion_only > challenger_only and p_value < config.alpha:
        reasons.append(
            f"McNemar exact p = {p_value:.4g} < {config.alpha:g}: worse "
            f"(champion alone right {champion_only}, challenger alone right {challenger_only})"
        )
    return reasons
