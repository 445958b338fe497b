"""Fault injection for the rollout drills — deliberately broken models, never for real use.

`python pipeline.py --inject-fault <spec>` passes `<spec>` to the training step (its `fault` parameter):

- `shuffled_labels`: the training labels are shuffled before training, so the model learns nothing real.
  Its validation metrics are poor but it can still win its own pipeline's selection (the only candidates are
  its own seeds); the champion/challenger gate must refuse it.
- `serving:error_rate=0.3,latency_s=0.8,hazardous_rate=0.5` (any of the three): the model is trained
  normally and passes the gate, and carries the fault in its file (`contract.FAULT_ATTRIBUTE`); the serving
  hook (preprocess_serving.py, `ServingFault`) then fails that fraction of requests with a 500, answers that
  much later (blocking its worker, as a CPU-bound fault would), or answers that fraction of rows hazardous
  with probability 1. The canary analysis must catch it and roll back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

SHUFFLED_LABELS = "shuffled_labels"
SERVING_PREFIX = "serving:"
SERVING_FIELDS = ("error_rate", "latency_s", "hazardous_rate")


@dataclass(frozen=True)
class Faults:
    shuffled_labels: bool = False
    serving: dict[str, float] = field(default_factory=dict)

    def serving_attribute(self) -> str | None:
        """The JSON the model file carries for the hook (None: no serving fault)."""
        return json.dumps(self.serving, sort_keys=True) if self.serving else None


def parse(spec: str) -> Faults:
    """`""`, `shuffled_labels` or `serving:<field>=<value>[,…]`; anything else is a ValueError naming it."""
    spec = (spec or "").strip()
    if not spec:
        return Faults()
    if spec == SHUFFLED_LABELS:
        return Faults(shuffled_labels=True)
    if not spec.startswith(SERVING_PREFIX):
        raise ValueError(f"unknown fault {spec!r}: use {SHUFFLED_LABELS!r} or 'serving:error_rate=0.3,...'")
    serving = {}
    for item in spec[len(SERVING_PREFIX) :].split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in SERVING_FIELDS:
            raise ValueError(f"unknown serving fault field {name!r}: use {', '.join(SERVING_FIELDS)}")
        number = float(value)
        if number < 0 or (name != "latency_s" and number > 1):
            raise ValueError(f"serving fault {name} must be in [0, 1] (latency_s ≥ 0), got {value!r}")
        serving[name] = number
    return Faults(serving=serving)


def shuffled(labels: Any, seed: int) -> Any:
    """The same labels (a pandas Series) in a random order, same index: what `shuffled_labels` trains on."""
    import numpy as np
    import pandas as pd

    order = np.random.default_rng(seed).permutation(len(labels))
    return pd.Series(labels.to_numpy()[order], index=labels.index, name=labels.name)


def with_shuffled_training_labels(split: Any, seed: int = 0) -> Any:
    """The split (asteroid.splitting.Split) with its training labels shuffled; validation and test intact."""
    return replace(split, train=replace(split.train, labels=shuffled(split.train.labels, seed)))


def stamp(booster: Any, spec: str) -> None:
    """Training: record the serving fault of `spec` in the model file (nothing without one)."""
    from asteroid.serving import contract

    attribute = parse(spec).serving_attribute()
    if attribute is not None:
        booster.set_attr(**{contract.FAULT_ATTRIBUTE: attribute})
