"""The champion/challenger gate on constructed answers whose verdicts and p-values are known by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from asteroid.gate import GateConfig, binomial_cdf_half, judge, mcnemar_exact_p

# (champion alone right, challenger alone right) -> two-sided exact p, computed by hand:
# b=10,c=0: 2·(1/1024); b=8,c=2: 2·(1+10+45)/1024; b=12,c=3: 2·(1+15+105+455)/32768; b=c=5: capped at 1.
HAND_COMPUTED = [((0, 0), 1.0), ((10, 0), 2 / 1024), ((0, 10), 2 / 1024), ((8, 2), 112 / 1024),
                 ((12, 3), 1152 / 32768), ((5, 5), 1.0)]  # fmt: skip


@pytest.mark.parametrize(("counts", "expected"), HAND_COMPUTED)
def test_mcnemar_exact_p_equals_the_hand_computed_value(counts: tuple[int, int], expected: float) -> None:
    assert mcnemar_exact_p(*counts) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(1, 0), (7, 3), (20, 9), (40, 41), (3, 30)])
def test_mcnemar_exact_p_agrees_with_scipys_binomial_test(b: int, c: int) -> None:
    assert mcnemar_exact_p(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_the_binomial_tail_is_exact_at_its_edges() -> None:
    assert binomial_cdf_half(-1, 5) == 0.0
    assert binomial_cdf_half(5, 5) == 1.0
    assert binomial_cdf_half(0, 3) == 1 / 8
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 2)


def rows(positives: int = 20, negatives: int = 80) -> np.ndarray:
    return np.array([1] * positives + [0] * negatives)


def flipped(truth: np.ndarray, indices: list[int]) -> np.ndarray:
    answers = truth.copy()
    answers[indices] = 1 - answers[indices]
    return answers


def test_a_challenger_missing_hazardous_rows_is_refused_on_recall() -> None:
    truth = rows()
    verdict = judge(truth, flipped(truth, [0, 1, 2]), truth)
    assert not verdict.passed and verdict.tag == "gate_refused"
    assert verdict.challenger.recall == pytest.approx(17 / 20) and verdict.champion.recall == 1.0
    assert any("recall 0.8500 < champion's 1.0000" in reason for reason in verdict.reasons)
    assert verdict.p_value == pytest.approx(0.25)  # b=3, c=0: 2/8 — recall alone refuses it


def test_a_challenger_significantly_worse_on_negatives_is_refused_by_mcnemar() -> None:
    truth = rows()
    champion = flipped(truth, [30, 31, 32])  # three false alarms the challenger avoids (c = 3)
    challenger = flipped(truth, list(range(40, 52)))  # twelve false alarms the champion avoids (b = 12)
    verdict = judge(truth, challenger, champion)
    assert (verdict.champion_only, verdict.challenger_only) == (12, 3)
    assert verdict.p_value == pytest.approx(1152 / 32768)
    assert not verdict.passed
    assert verdict.reasons == [
        "McNemar exact p = 0.03516 < 0.05: worse (champion alone right 12, challenger alone right 3)"
    ]


def test_a_challenger_worse_but_not_significantly_passes() -> None:
    truth = rows()
    champion = flipped(truth, [30, 31])
    challenger = flipped(truth, list(range(40, 48)))  # b = 8, c = 2: p = 0.109
    verdict = judge(truth, challenger, champion)
    assert verdict.passed and verdict.tag == "gate_passed"
    assert verdict.p_value == pytest.approx(112 / 1024)


def test_a_stricter_level_lets_the_mcnemar_case_pass_and_a_better_challenger_passes() -> None:
    truth = rows()
    champion, challenger = flipped(truth, [30, 31, 32]), flipped(truth, list(range(40, 52)))
    assert judge(truth, challenger, champion, GateConfig(alpha=0.01)).passed
    better = judge(truth, truth, flipped(truth, [0, 1, 40]))
    assert better.passed and better.challenger.recall > better.champion.recall


def test_too_few_rows_or_hazardous_rows_refuse_and_no_champion_passes() -> None:
    truth = rows(positives=4, negatives=96)
    verdict = judge(truth, truth, truth)
    assert not verdict.passed and verdict.reasons[0].startswith("insufficient evidence: 100 labelled rows (4")
    assert not judge(rows(10, 20), rows(10, 20), rows(10, 20)).passed
    first = judge(rows(), rows(), None)
    assert first.passed and first.reasons == ["no champion is served"] and first.champion is None


def test_answers_of_another_length_are_refused() -> None:
    with pytest.raises(ValueError, match="100 labels but 99 champion answers"):
        judge(rows(), rows(), rows()[:-1])


def test_the_verdict_table_names_both_models_and_the_verdict() -> None:
    truth = rows()
    table = judge(truth, flipped(truth, [0]), truth).table()
    by_metric = {row["metric"]: row for row in table}
    assert by_metric["recall"]["champion"] == 1.0 and by_metric["recall"]["challenger"] == 0.95
    assert by_metric["verdict"]["challenger"].startswith("gate refused: recall 0.9500")
