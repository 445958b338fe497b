"""The release contract: what a released model version exposes to its clients and to its monitoring.

- the statistics the hook reports per row: every model feature under its snake_case name
  (`FEATURE_STATISTICS`) and the predicted probability (`PROBABILITY`, also the answer's field);
- the histogram buckets the statistics controller counts them in: per feature the training data's bucket
  edges (`served_edges` of the split's `feature_spec`), for the probability `PROBABILITY_BUCKETS` with the
  version's threshold added as an edge when it is not one of them, so that the share of rows answered
  `hazardous` is a sum of whole buckets;
- the request id of every answered row (`REQUEST_ID`) and the prediction log's topic, by which labels sent
  later are joined to the prediction they judge;
- the served threshold: the probability at or above which the hook answers `hazardous`. Training records it
  twice from its one `threshold` parameter: as the model file's attribute `THRESHOLD_ATTRIBUTE` (what the hook
  reads when it loads the model) and under the same key in the `feature_spec` artifact of its task (what the
  rollout and the rules read, without downloading the model). A model without it is served at
  `schema.HAZARD_THRESHOLD`.

The hook folder carries this file beside `schema.py` (asteroid/serving/hook_package.py), so it imports only
the standard library and `schema`; reading a model's spec from ClearML imports clearml inside the function.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # deployed in the hook folder: schema travels beside this file
    from . import schema
except ImportError:  # imported from a checkout or the installed project
    from asteroid import schema

PROBABILITY = "probability"
FEATURE_STATISTICS: tuple[str, ...] = tuple(schema.FEATURES)
# Probability histogram buckets of every version; a version's threshold is added when it is not among them.
PROBABILITY_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
THRESHOLD_ATTRIBUTE = "hazard_threshold"
# Set only on the deliberately broken models of the rollout drills (asteroid/rollout/faults.py): JSON the hook
# reads as its `ServingFault`.
FAULT_ATTRIBUTE = "injected_serving_fault"
# The prediction log (asteroid/serving/prediction_log.py, asteroid/quality/): every answered row carries
# `REQUEST_ID`; the hook publishes each prediction to the Kafka topic `PREDICTIONS_TOPIC` (the environment
# variable `PREDICTIONS_TOPIC_ENV` overrides it) on clearml-serving's own broker (`BROKER_ENV`).
REQUEST_ID = "request_id"
PREDICTIONS_TOPIC = "asteroid_predictions"
PREDICTIONS_TOPIC_ENV = "ASTEROID_PREDICTIONS_TOPIC"
PREDICTION_LOG_ENV = "ASTEROID_PREDICTION_LOG"  # "off" stops publishing (the benchmark compares on and off)
# `what` of the rows the log drops, in the serving wrapper's `clearml_serving_hook_dropped_rows` counter
PREDICTION_LOG_DROPS = "prediction_log"
BROKER_ENV = "CLEARML_DEFAULT_KAFKA_SERVE_URL"
FEATURE_SPEC_ARTIFACT = "feature_spec"
# A batch may also travel as an Apache Arrow IPC stream (request body and, when `Accept` names it, answer).
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ContractError(ValueError):
    pass


def checked_threshold(value: Any) -> float:
    threshold = float(value)
    if not 0.0 < threshold < 1.0:
        raise ContractError(f"the hazard threshold must be strictly between 0 and 1, got {value!r}")
    return threshold


def threshold_of_model(booster: Any) -> float:
    """The threshold training recorded in the model file (an XGBoost booster), else the default."""
    value = booster.attr(THRESHOLD_ATTRIBUTE)
    return checked_threshold(value) if value else schema.HAZARD_THRESHOLD


def threshold_of_spec(spec: dict[str, Any]) -> float:
    """The threshold training recorded in its `feature_spec`, else the default."""
    value = spec.get(THRESHOLD_ATTRIBUTE)
    return schema.HAZARD_THRESHOLD if value is None else checked_threshold(value)


def stamp_model(booster: Any, threshold: float) -> None:
    """Training: record its `threshold` parameter in the model file (read by the hook)."""
    booster.set_attr(**{THRESHOLD_ATTRIBUTE: repr(checked_threshold(threshold))})


def spec_with_threshold(spec: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Training: the `feature_spec` to attach to its task, with its `threshold` parameter (read at
    rollout)."""
    return {**spec, THRESHOLD_ATTRIBUTE: checked_threshold(threshold)}


def probability_buckets(threshold: float) -> list[float]:
    """The probability histogram's edges for a version served at `threshold` (one of the edges)."""
    return sorted({*PROBABILITY_BUCKETS, checked_threshold(threshold)})


def served_edges(edges: list[float]) -> list[float]:
    """The bucket edges clearml-serving gets: strictly increasing, at least two (its histogram needs two)."""
    edges = sorted(set(edges))
    return edges if len(edges) >= 2 else [edges[0], edges[0] + 1.0]


@dataclass(frozen=True)
class ReleaseContract:
    """What one released version exposes, read from its training task's `feature_spec`."""

    threshold: float
    feature_edges: dict[str, list[float]]  # served edges per feature statistic; a +Inf bucket follows
    spec: dict[str, Any]

    @property
    def probability_edges(self) -> list[float]:
        return probability_buckets(self.threshold)

    @property
    def hazardous_edges(self) -> list[float]:
        """Edges of the probability buckets whose rows are answered `hazardous` (the +Inf bucket too): the
        controller counts a value in the first bucket with value <= edge, so these are the buckets above the
        threshold's edge. A probability exactly at the threshold lands in the threshold's own bucket."""
        return [edge for edge in self.probability_edges if edge > self.threshold]

    def histogram_buckets(self) -> dict[str, list[float]]:
        """Statistic name -> bucket edges, for clearml-serving's `metrics add --variable-scalar`."""
        return {**self.feature_edges, PROBABILITY: self.probability_edges}


def from_feature_spec(spec: dict[str, Any]) -> ReleaseContract:
    edges = spec.get("bucket_edges") or {}
    missing = [name for name in FEATURE_STATISTICS if not edges.get(name)]
    if missing:
        raise ContractError(f"feature_spec has no bucket edges for {missing}")
    served = {name: served_edges([float(edge) for edge in edges[name]]) for name in FEATURE_STATISTICS}
    if not all(math.isfinite(edge) for values in served.values() for edge in values):
        raise ContractError("feature_spec holds a bucket edge that is not a finite number")
    return ReleaseContract(threshold_of_spec(spec), served, spec)


def feature_spec_of(model: Any) -> dict[str, Any]:
    """The `feature_spec` artifact of the model's training task (a clearml `Model`)."""
    from clearml import Task

    task = Task.get_task(task_id=model.task)
    artifact = task.artifacts.get(FEATURE_SPEC_ARTIFACT)
    if artifact is None:
        raise ContractError(f"training task {model.task} of model {model.id} has no {FEATURE_SPEC_ARTIFACT}")
    spec = artifact.get()
    if not isinstance(spec, dict):  # stored as a file: get() gives its local path
        spec = json.loads(Path(str(spec)).read_text())
    return spec


def of_model(model: Any) -> ReleaseContract:
    """The contract of a clearml `Model` the pipeline registered."""
    try:
        return from_feature_spec(feature_spec_of(model))
    except ContractError as exc:
        raise ContractError(f"model {model.id} (training task {model.task}): {exc}") from None
