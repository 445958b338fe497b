"""Which training run wins: the best validation PR-AUC, ties broken by the lower validation log loss, then by
the lower seed. The pipeline's selection step (asteroid/steps/selection.py) and the model-against-rule
comparison (asteroid/comparison.py) both choose with `choose`; the test split never takes part."""

from __future__ import annotations

import math
from dataclasses import dataclass

SELECTION_METRIC = "val_pr_auc"  # higher is better; ties broken by lower validation log loss


@dataclass(frozen=True)
class Candidate:
    task_id: str
    seed: int
    model_id: str
    val_pr_auc: float
    val_logloss: float

    def rank_key(self) -> tuple[float, float, int]:
        pr_auc = self.val_pr_auc if math.isfinite(self.val_pr_auc) else -math.inf
        return (-pr_auc, self.val_logloss, self.seed)


def choose(candidates: list[Candidate]) -> Candidate:
    if not candidates:
        raise ValueError("no training runs to choose from")
    return min(candidates, key=Candidate.rank_key)
