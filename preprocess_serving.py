"""clearml-serving hook for the asteroid model: validates request rows, builds the training features,
reports them to the statistics controller and turns the model's probabilities into answers.

    POST /serve/asteroid   {"Absolute Magnitude": 21.3, "Est Dia in KM(min)": 0.13, ...}     one row
    POST /serve/asteroid   {"rows": [{...}, {...}]}                                             a batch

A row carries NASA's column names (a whole CSV row is fine: `Name`, dates, `Orbiting Body`, `Hazardous` and
the other columns the model does not use are ignored) or the snake_case feature names. Any problem — a
missing or unknown field, a string, NaN, a physically impossible value, an empty or oversized batch — raises
`ValueError` naming the row and the field, which clearml-serving answers with HTTP 422. clearml-serving's
own request parsing refuses a bare JSON array sent as `application/json`; send `{"rows": [...]}` instead
(an array sent with another content type arrives as bytes and is accepted here).

`make serve` deploys this file as the `__init__.py` of a folder that also holds `feature_rows.py`,
`schema.py` and `contract.py`, so a stock clearml-serving container needs nothing of this repository. The
`xgboost` engine calls `self._model.predict(data)`; `load()` gives it a predictor that runs
`Booster.inplace_predict` on the numpy matrix (a one-row `DMatrix` costs milliseconds at the tail).

Statistics: the release contract's (asteroid/serving/contract.py): every feature and the probability under
their snake_case names, one observation per row; a batch reports a uniform sample of at most
`MAX_STATISTICS_ROWS` rows. A row is answered `hazardous` when its probability is at or above the threshold
training recorded in the model file (`contract.threshold_of_model`).

Every answered row carries `request_id` (`contract.REQUEST_ID`), the id labels sent later to
`POST /feedback/asteroid` name; each prediction (id, time, endpoint, model version, the row's `Neo Reference
ID` when given, the features, the probability, the decision) is published to the prediction log's Kafka topic
by a background thread (asteroid/serving/prediction_log.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

try:  # deployed as a folder: the shared feature code and the release contract travel beside this file
    from . import contract, feature_rows, prediction_log, schema
except ImportError:  # loaded as a single file, or imported from a checkout: the installed project
    from asteroid import feature_rows, schema
    from asteroid.serving import contract, prediction_log

BATCH_KEY = "rows"
# `"explain": true` beside the row's fields or the batch's rows: each answered row gets `EXPLANATION`, every
# feature's contribution to the margin (log-odds) and the bias, which sum to the row's margin (XGBoost's
# `pred_contribs`). Off by default: it costs a DMatrix and a tree walk per row.
EXPLAIN_KEY = "explain"
EXPLANATION = "explanation"
# Rows of a batch whose features and probability are reported to the statistics controller: a uniform sample
# of this many (all rows of smaller batches). Every reported value travels through Kafka as JSON and is
# bucketed one by one in Python by the controller; reporting all 1,000 rows of a large batch made the
# statistics backlog starve the request path (measured in benchmarks/serving_bench.py).
MAX_STATISTICS_ROWS = 50
_SAMPLER = np.random.default_rng()
# One per process (uvicorn runs one per worker): the hook instances of every endpoint share its thread.
PREDICTION_LOG = prediction_log.PredictionLog.from_env()


class Predictor:
    """What the xgboost engine calls `predict` on: P(hazardous) per row of a feature matrix."""

    def __init__(self, booster: Any, threshold: float) -> None:
        self.booster = booster
        self.threshold = threshold
        self.feature_names = list(booster.feature_names or [])

    def explain(self, features: np.ndarray) -> list[dict[str, Any]]:
        """Per row: {"bias": b, "contributions": {feature: c}}; b + sum(c) is the row's margin (log-odds)."""
        import xgboost

        # nthread=1 as the booster: with OpenMP threads on a busy 2-core machine a one-row call took 30-60 ms
        matrix = xgboost.DMatrix(
            features.astype(np.float32, copy=False), feature_names=self.feature_names, nthread=1
        )
        contributions = self.booster.predict(matrix, pred_contribs=True).astype(np.float64)
        return [
            {"bias": row[-1], "contributions": dict(zip(self.feature_names, row[:-1], strict=True))}
            for row in contributions.tolist()
        ]

    def predict(self, features: np.ndarray) -> np.ndarray:
        # float32, as the model was trained: a float64 value between two float32 values could take the
        # other branch of a split.
        return self.booster.inplace_predict(features.astype(np.float32, copy=False)).astype(np.float64)


class Preprocess:
    """The clearml-serving `Preprocess` class (one instance per endpoint and process; thread-safe)."""

    def __init__(self) -> None:
        self.model_endpoint: Any = None  # set by clearml-serving before load()
        self._predictor: Predictor | None = None
        self._model_info: dict[str, Any] = {}
        self._fault: ServingFault | None = None  # rollout drills only

    def load(self, local_file_name: str) -> Predictor:
        """Load the XGBoost model; its feature names must be the features this hook computes, in order."""
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(local_file_name)
        booster.set_param({"nthread": 1})
        names = list(booster.feature_names or [])
        if names != list(schema.FEATURES):
            raise ValueError(
                f"the model's features {names} differ from the hook's features {list(schema.FEATURES)}"
            )
        endpoint = self.model_endpoint
        self._model_info = {
            "id": getattr(endpoint, "model_id", None),
            "version": getattr(endpoint, "version", None),
            "endpoint": _endpoint_url(endpoint),
        }
        self._predictor = Predictor(booster, contract.threshold_of_model(booster))
        self._fault = ServingFault.of_model(booster)
        return self._predictor

    def preprocess(
        self, body: Any, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> np.ndarray:
        rows, state["batch"], state["explain"] = parse_body(body)
        features = feature_rows.feature_matrix(feature_rows.validate_rows(rows))
        state["features"] = features
        state["neo_reference_ids"] = [_neo_reference_id(row) for row in rows]
        state["close_approach_dates"] = [_close_approach_date(row) for row in rows]
        if collect_custom_statistics_fn:
            state["reported_rows"] = _reported_rows(len(features))
            collect_custom_statistics_fn(_statistics(features[state["reported_rows"]], state["batch"]))
        return features

    def postprocess(
        self, data: Any, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> dict:
        probabilities = np.asarray(data, dtype=np.float64).reshape(-1)
        if self._fault is not None:
            probabilities = self._fault.apply(probabilities)
        threshold = self._predictor.threshold if self._predictor else schema.HAZARD_THRESHOLD
        values = probabilities.tolist()
        if collect_custom_statistics_fn:
            reported = probabilities[state.get("reported_rows", slice(None))].tolist()
            statistic = reported if state.get("batch") else reported[0]
            collect_custom_statistics_fn({contract.PROBABILITY: statistic})
        request_ids = prediction_log.new_request_ids(len(values))
        decisions = [value >= threshold for value in values]
        predictions = [
            {contract.REQUEST_ID: request_id, "hazardous": decision, contract.PROBABILITY: value}
            for request_id, decision, value in zip(request_ids, decisions, values, strict=True)
        ]
        if state.get("explain") and self._predictor is not None:
            for prediction, explanation in zip(
                predictions, self._predictor.explain(state["features"]), strict=True
            ):
                prediction[EXPLANATION] = explanation
        model = self._model_info or {"endpoint": _endpoint_url(self.model_endpoint)}
        if "features" in state:
            PREDICTION_LOG.record(
                prediction_log.Answered(
                    time.time(), model, contract.FEATURE_STATISTICS, state["features"], values, decisions,
                    request_ids, state["neo_reference_ids"], state["close_approach_dates"],
                )
            )  # fmt: skip
        if state.get("batch"):
            return {"predictions": predictions, "model": model}
        return {**predictions[0], "model": model}


def parse_body(body: Any) -> tuple[list, bool, bool]:
    """(rows, is_batch, explain) of a body: an object, `{"rows": [...]}` (either with `"explain": true`), or
    JSON text of either or of an array."""
    if isinstance(body, (bytes, bytearray)):
        body = _parse_json(bytes(body))
    if body is None:
        raise ValueError("the request body is empty: send a JSON object of the asteroid's fields")
    if isinstance(body, list):
        return body, True, False
    if not isinstance(body, dict):
        raise ValueError(f"the request body must be a JSON object or array, got {type(body).__name__}")
    explain = _explain_flag(body)
    if BATCH_KEY in body:
        rows = body[BATCH_KEY]
        extra = sorted(str(key) for key in body if key not in (BATCH_KEY, EXPLAIN_KEY))
        if extra:
            raise ValueError(
                f"a batch body holds only {BATCH_KEY!r} (and {EXPLAIN_KEY!r}); unexpected field(s) {extra}"
            )
        if not isinstance(rows, list):
            raise ValueError(f"field {BATCH_KEY!r} must be an array of row objects")
        return rows, True, explain
    if EXPLAIN_KEY in body:
        body = {key: value for key, value in body.items() if key != EXPLAIN_KEY}
    return [body], False, explain


def _explain_flag(body: dict) -> bool:
    value = body.get(EXPLAIN_KEY, False)
    if not isinstance(value, bool):
        raise ValueError(f"field {EXPLAIN_KEY!r} must be true or false, got {type(value).__name__}")
    return value


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ValueError(f"the request body is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the request body is not valid JSON: {exc.msg} at position {exc.pos}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"the request body holds {name}, which is not a number JSON allows")


def _reported_rows(rows: int) -> np.ndarray | slice:
    """Which rows' values go to the statistics: all, or a uniform sample of `MAX_STATISTICS_ROWS`."""
    if rows <= MAX_STATISTICS_ROWS:
        return slice(None)
    return np.sort(_SAMPLER.choice(rows, MAX_STATISTICS_ROWS, replace=False))


def _statistics(features: np.ndarray, batch: bool) -> dict[str, Any]:
    """Every model feature (the computed ones too) under its snake_case name: one value per row (a list for a
    batch)."""
    columns = features.T.tolist()
    return {
        name: column if batch else column[0]
        for name, column in zip(contract.FEATURE_STATISTICS, columns, strict=True)
    }


def _neo_reference_id(row: Any) -> int | None:
    """The row's `Neo Reference ID` (NASA's or the snake_case name) when it is a whole number, else None."""
    value = row.get(schema.GROUP, row.get(schema.GROUP_NAME)) if isinstance(row, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _close_approach_date(row: Any) -> str | None:
    """The row's `Close Approach Date` (YYYY-MM-DD) when given: bulk labels may name an approach by it."""
    value = row.get(schema.DATE_COLUMN, row.get(schema.snake_case(schema.DATE_COLUMN)))
    date = value[:10] if isinstance(value, str) else ""
    return date if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) else None


def _endpoint_url(endpoint: Any) -> str | None:
    if endpoint is None:
        return None
    url = str(getattr(endpoint, "serving_url", "") or "").strip("/")
    version = getattr(endpoint, "version", None)
    return f"{url}/{version}" if version else url


class ServingFault:
    """Fault injection for the rollout drills (asteroid/rollout/faults.py), switched on only by a model whose
    file carries `contract.FAULT_ATTRIBUTE`: fail `error_rate` of the requests (RuntimeError: a 500), answer
    `latency_s` later, answer `hazardous_rate` of the rows hazardous with probability 1."""

    def __init__(self, error_rate: float = 0.0, latency_s: float = 0.0, hazardous_rate: float = 0.0) -> None:
        self.error_rate, self.latency_s, self.hazardous_rate = error_rate, latency_s, hazardous_rate
        self.random = np.random.default_rng()

    @classmethod
    def of_model(cls, booster: Any) -> ServingFault | None:
        value = booster.attr(contract.FAULT_ATTRIBUTE)
        return cls(**json.loads(value)) if value else None

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        if self.random.random() < self.error_rate:
            raise RuntimeError("injected serving fault (rollout drill): request failed on purpose")
        if self.latency_s:
            time.sleep(self.latency_s)
        drifted = self.random.random(probabilities.shape) < self.hazardous_rate
        return np.where(drifted, 1.0, probabilities)
