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

    POST /serve/asteroid   Content-Type: application/vnd.apache.arrow.stream                       a batch

An Apache Arrow IPC stream of rows (columns with the same names as JSON rows' fields) is validated column by
column with the same rules and messages (`feature_rows.validate_columns`); schema metadata `explain: true`
asks for explanations. The answer is JSON, or an Arrow stream (`request_id`, `hazardous`, `probability`
and, when asked, `explanation`; the model in the schema metadata `model`) when the request's `Accept` names
the Arrow media type. clearml-serving hands the hook only the body: the Content-Type and Accept headers come
from the wrapper of the stock app (serving_local/content_negotiation.py) when it runs; without it an Arrow
body is recognised by its first bytes and answered in JSON. pyarrow is imported only for an Arrow body.

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

import functools
import gc
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

try:  # the stock app's wrapper in this process tells the request's Content-Type and Accept (see above)
    from serving_local.content_negotiation import client_accepts, request_media_type
except ImportError:  # the stock app alone: bodies recognised by their first bytes, answers in JSON
    client_accepts = request_media_type = None  # type: ignore[assignment]
try:  # ... and exports what the prediction log drops (`clearml_serving_hook_dropped_rows`)
    from serving_local.request_metrics import count_dropped_rows
except ImportError:  # the stock app alone: drops are counted in `PREDICTION_LOG.dropped` only
    count_dropped_rows = None  # type: ignore[assignment]

try:  # deployed as a folder: the shared feature code and the release contract travel beside this file
    from . import contract, feature_rows, prediction_log, schema
except ImportError:  # loaded as a single file, or imported from a checkout: the installed project
    from asteroid import feature_rows, schema
    from asteroid.serving import contract, prediction_log

# Every Arrow IPC stream message starts with this continuation marker; JSON text never does (not UTF-8).
_ARROW_MARKER = b"\xff\xff\xff\xff"
MODEL_METADATA = b"model"
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
PREDICTION_LOG = prediction_log.PredictionLog.from_env(
    functools.partial(count_dropped_rows, contract.PREDICTION_LOG_DROPS) if count_dropped_rows else None
)


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
        settle_long_lived_objects()
        return self._predictor

    def preprocess(
        self, body: Any, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> np.ndarray:
        if _is_arrow(body):
            batch = read_arrow_batch(bytes(body))
            features = feature_rows.feature_matrix(batch.sources)
            state["batch"], state["explain"], state["arrow"] = True, batch.explain, _client_accepts_arrow()
            state["neo_reference_ids"], state["close_approach_dates"] = batch.neo_reference_ids, batch.dates
        else:
            rows, state["batch"], state["explain"] = parse_body(body)
            features = feature_rows.feature_matrix(feature_rows.validate_rows(rows))
            state["neo_reference_ids"] = [_neo_reference_id(row) for row in rows]
            state["close_approach_dates"] = [_close_approach_date(row) for row in rows]
        state["features"] = features
        if collect_custom_statistics_fn:
            state["reported_rows"] = _reported_rows(len(features))
            collect_custom_statistics_fn(_statistics(features[state["reported_rows"]], state["batch"]))
        return features

    def postprocess(
        self, data: Any, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> Any:
        probabilities = np.asarray(data, dtype=np.float64).reshape(-1)
        if self._fault is not None:
            probabilities = self._fault.apply(probabilities)
        threshold = self._predictor.threshold if self._predictor else schema.HAZARD_THRESHOLD
        if collect_custom_statistics_fn:
            reported = probabilities[state.get("reported_rows", slice(None))].tolist()
            statistic = reported if state.get("batch") else reported[0]
            collect_custom_statistics_fn({contract.PROBABILITY: statistic})
        request_ids = prediction_log.new_request_ids(len(probabilities))
        model = self._model_info or {"endpoint": _endpoint_url(self.model_endpoint)}
        if state.get("arrow"):
            hazardous = probabilities >= threshold
            explanations = self._explanations(state)
            self._log(state, model, probabilities, hazardous, request_ids)
            return arrow_answer(request_ids, hazardous, probabilities, explanations, model)
        values = probabilities.tolist()
        decisions = [value >= threshold for value in values]
        predictions = [
            {contract.REQUEST_ID: request_id, "hazardous": decision, contract.PROBABILITY: value}
            for request_id, decision, value in zip(request_ids, decisions, values, strict=True)
        ]
        explanations = self._explanations(state)
        if explanations is not None:
            for prediction, explanation in zip(predictions, explanations, strict=True):
                prediction[EXPLANATION] = explanation
        self._log(state, model, values, decisions, request_ids)
        if state.get("batch"):
            return {"predictions": predictions, "model": model}
        return {**predictions[0], "model": model}

    def _explanations(self, state: dict) -> list[dict[str, Any]] | None:
        if state.get("explain") and self._predictor is not None:
            return self._predictor.explain(state["features"])
        return None

    def _log(self, state: dict, model: dict, values: Any, decisions: Any, request_ids: Any) -> None:
        if "features" in state:
            PREDICTION_LOG.record(
                prediction_log.Answered(
                    time.time(), model, contract.FEATURE_STATISTICS, state["features"], values, decisions,
                    request_ids, state["neo_reference_ids"], state["close_approach_dates"],
                )
            )  # fmt: skip


def settle_long_lived_objects() -> None:
    """Collect the garbage, then move every object alive (the app's modules, the model) out of the garbage
    collector's reach (`gc.freeze`): its full collections then scan only what requests create. Measured in a
    process holding the worker's imports: a full collection took 56-70 ms, every few thousand requests (more
    often with the prediction log, whose queued requests outlive the young generations); 0.1-0.3 ms after
    the freeze. Called after each model load (one collection then, off the request path)."""
    gc.collect()
    gc.freeze()


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


# --- Arrow batches -------------------------------------------------------------------------------------


def _is_arrow(body: Any) -> bool:
    if not isinstance(body, (bytes, bytearray)):
        return False
    declared = request_media_type() if request_media_type else ""
    return declared == contract.ARROW_STREAM or bytes(body[:4]) == _ARROW_MARKER


def _client_accepts_arrow() -> bool:
    return bool(client_accepts and client_accepts(contract.ARROW_STREAM))


class ArrowBatch(NamedTuple):
    """A validated Arrow request: its source matrix and what the prediction log keeps of its rows.

    (Not a dataclass: clearml-serving loads a single-file hook without registering it in `sys.modules`, where
    `dataclass` looks the module up.)"""

    sources: np.ndarray
    explain: bool
    neo_reference_ids: list[int | None]
    dates: list[str | None]


def read_arrow_batch(raw: bytes) -> ArrowBatch:
    """Read and validate an Arrow IPC stream body; `ValueError` naming the problem otherwise."""
    table = _read_arrow_table(raw)
    names = list(table.column_names)
    columns = [_column_values(table.column(index)) for index in range(table.num_columns)]
    sources = feature_rows.validate_columns(names, columns, table.num_rows)
    return ArrowBatch(
        sources,
        _arrow_explain_flag(table.schema.metadata or {}),
        _arrow_neo_reference_ids(table),
        _arrow_dates(table),
    )


def _read_arrow_table(raw: bytes) -> Any:
    try:
        import pyarrow as pa
    except ImportError:
        raise ValueError(
            f"this server cannot read {contract.ARROW_STREAM} bodies: pyarrow is not installed"
        ) from None
    try:
        table = pa.ipc.open_stream(pa.py_buffer(raw)).read_all()
        table.validate(full=True)  # offsets and lengths of untrusted buffers, before anything reads them
    except (pa.ArrowException, OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise ValueError(f"the request body is not a valid Arrow IPC stream: {exc}") from None
    return table


def _column_values(column: Any) -> feature_rows.ColumnValues:
    """Numbers (float64) of an integer, floating-point or decimal column, else the column's Python values."""
    import pyarrow as pa

    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        return feature_rows.ColumnValues(objects=lambda count: column.slice(0, count).to_pylist())
    numbers = column.cast(pa.float64(), safe=False).to_numpy()
    null = column.is_null().to_numpy() if column.null_count else None
    return feature_rows.ColumnValues(numbers=numbers, null=null)


def _arrow_explain_flag(metadata: dict[bytes, bytes]) -> bool:
    value = metadata.get(EXPLAIN_KEY.encode(), b"false").strip().lower()
    if value not in (b"true", b"false"):
        raise ValueError(f"schema metadata {EXPLAIN_KEY!r} must be true or false, got {value[:20]!r}")
    return value == b"true"


def _arrow_column(table: Any, *names: str) -> Any | None:
    """The first of these columns the table has (as a JSON row: NASA's name before the snake_case one)."""
    return next((table.column(name) for name in names if name in table.column_names), None)


def _arrow_neo_reference_ids(table: Any) -> list[int | None]:
    """`_neo_reference_id` of every row, computed on the column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _arrow_column(table, schema.GROUP, schema.GROUP_NAME)
    if column is None:
        return [None] * table.num_rows
    if pa.types.is_integer(column.type):
        return column.cast(pa.int64()).to_pylist()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        trimmed = pc.utf8_trim_whitespace(column)
        digits = pc.match_substring_regex(trimmed, r"^[0-9]+$")
        return pc.if_else(digits, trimmed, pa.scalar(None, column.type)).cast(pa.int64()).to_pylist()
    return [None] * table.num_rows


def _arrow_dates(table: Any) -> list[str | None]:
    """`_close_approach_date` of every row, computed on the column (a date or timestamp column too)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _arrow_column(table, schema.DATE_COLUMN, schema.snake_case(schema.DATE_COLUMN))
    if column is None:
        return [None] * table.num_rows
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        column = column.cast(pa.string())
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return [None] * table.num_rows
    dates = pc.utf8_slice_codeunits(column, 0, 10)
    valid = pc.match_substring_regex(dates, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    return pc.if_else(valid, dates, pa.scalar(None, dates.type)).to_pylist()


_ROW_NUMBERS: Any = None  # "0", "1", ... as an Arrow string array, made longer when a request needs it


def request_id_column(request_ids: Sequence[str]) -> Any:
    """The ids as an Arrow string column; `prediction_log.RequestIds` joined in pyarrow from their prefix
    and the rows' numbers (a quarter of the time of making the strings in Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    prefix = getattr(request_ids, "prefix", None)
    if prefix is None:
        return pa.array(list(request_ids), pa.string())
    global _ROW_NUMBERS
    numbers = _ROW_NUMBERS  # read once: another thread may replace it meanwhile
    if numbers is None or len(numbers) < len(request_ids):
        numbers = pc.cast(pa.array(np.arange(max(len(request_ids), 1024))), pa.string())
        _ROW_NUMBERS = numbers
    return pc.binary_join_element_wise(f"{prefix}-", numbers.slice(0, len(request_ids)), "")


def arrow_answer(
    request_ids: Sequence[str],
    hazardous: np.ndarray,
    probabilities: np.ndarray,
    explanations: list[dict[str, Any]] | None,
    model: dict[str, Any],
) -> Any:
    """The answer as an Arrow IPC stream: one row per request row, the model in the schema metadata."""
    import pyarrow as pa

    columns = {
        contract.REQUEST_ID: request_id_column(request_ids),
        "hazardous": pa.array(hazardous, pa.bool_()),
        contract.PROBABILITY: pa.array(probabilities, pa.float64()),
    }
    if explanations is not None:
        columns[EXPLANATION] = pa.array(explanations)
    table = pa.table(columns, metadata={MODEL_METADATA: json.dumps(model).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return _arrow_response(sink.getvalue().to_pybytes())


def _arrow_response(body: bytes) -> Any:
    """A response the stock app returns as it is (FastAPI passes a `Response` through)."""
    return _arrow_answer_class()(body, headers={"Vary": "Accept"})


@functools.cache
def _arrow_answer_class() -> type:
    from starlette.responses import Response

    class ArrowAnswer(Response):
        media_type = contract.ARROW_STREAM

        def keys(self) -> tuple[()]:
            """clearml-serving reads the answer's keys for the request/response fields an endpoint's metric
            logging names: an Arrow answer has none."""
            return ()

    return ArrowAnswer


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
