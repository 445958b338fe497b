"""Arrow batches through clearml-serving's real XGBoost engine and the hook folder `make serve` deploys: the
same answers as the same rows sent as JSON (probabilities bit for bit), the same 422 messages for the same bad
rows, a 4xx naming the problem for a malformed stream, and the answer's format chosen by `Accept`."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import preprocess_serving
from asteroid import feature_rows, schema
from asteroid.serving import contract, prediction_log
from asteroid.serving.traffic import arrow_ipc
from serving_local import content_negotiation
from serving_local.request_limits import RequestLimits
from tests.serving.conftest import serve

ARROW = contract.ARROW_STREAM


def read_stream(body: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(body)).read_all()


def error_of(call: Callable[[], Any]) -> str:
    with pytest.raises(ValueError) as caught:
        call()
    return str(caught.value)


@pytest.fixture
def headers() -> Iterator[Callable[[str, str], None]]:
    """Sets the Content-Type and Accept the hook sees, as the stock app's wrapper does for a request."""
    tokens = []

    def set_headers(content_type: str, accept: str) -> None:
        tokens.append(content_negotiation._HEADERS.set((content_type, accept)))

    yield set_headers
    for token in reversed(tokens):
        content_negotiation._HEADERS.reset(token)


def test_an_arrow_batch_answers_as_the_same_rows_in_json(engine: Any, sample_records: list[dict]) -> None:
    rows = sample_records[:300]  # whole CSV rows: NASA's 40 columns, strings and dates among them
    arrow_reply, arrow_statistics = serve(engine, arrow_ipc(pa.Table.from_pylist(rows)))
    json_reply, json_statistics = serve(engine, {"rows": rows})
    arrow_predictions, json_predictions = arrow_reply["predictions"], json_reply["predictions"]
    assert [p["probability"] for p in arrow_predictions] == [p["probability"] for p in json_predictions]
    assert [p["hazardous"] for p in arrow_predictions] == [p["hazardous"] for p in json_predictions]
    assert arrow_reply["model"] == json_reply["model"]
    # a batch's statistics are sampled as for JSON: at most MAX_STATISTICS_ROWS rows of every feature
    assert set(arrow_statistics) == set(json_statistics) == {*schema.FEATURES, "probability"}
    assert len(arrow_statistics["probability"]) == preprocess_serving.MAX_STATISTICS_ROWS


def test_feature_named_columns_and_an_arrow_answer_when_accepted(
    engine: Any, sample_records: list[dict], headers: Callable[[str, str], None]
) -> None:
    rows = [
        {name: value for name, value in features.items() if name in schema.INPUT_FEATURES}
        for features in feature_form(sample_records[:40])
    ]
    body = arrow_ipc(pa.Table.from_pylist(rows))
    json_reply, _ = serve(engine, {"rows": rows})
    headers(ARROW, f"application/json;q=0.5, {ARROW}")
    answer, _ = serve(engine, body)
    assert answer.media_type == ARROW and answer.headers["vary"] == "Accept"
    table = read_stream(answer.body)
    assert table.column_names == ["request_id", "hazardous", "probability"]
    expected = [p["probability"] for p in json_reply["predictions"]]
    assert table.column("probability").to_pylist() == expected
    assert table.column("hazardous").to_pylist() == [p["hazardous"] for p in json_reply["predictions"]]
    assert len(set(table.column("request_id").to_pylist())) == len(rows)
    assert preprocess_serving.json.loads(table.schema.metadata[b"model"]) == json_reply["model"]


def feature_form(records: list[dict]) -> list[dict[str, Any]]:
    """The rows under the model's snake_case feature names (the derived diameter instead of its sources)."""
    matrix = feature_rows.feature_matrix(feature_rows.validate_rows(records))
    return [dict(zip(schema.FEATURES, row, strict=True)) for row in matrix.tolist()]


@pytest.mark.parametrize(
    ("accept", "arrow"),
    [
        ("", False),
        ("*/*", False),
        ("application/json", False),
        (f"{ARROW};q=0", False),
        (ARROW, True),
        (f"application/json, {ARROW};q=0.1", True),
    ],
)
def test_accept_chooses_the_answer_format(
    engine: Any, sample_records: list[dict], headers: Callable[[str, str], None], accept: str, arrow: bool
) -> None:
    headers(ARROW, accept)
    answer, _ = serve(engine, arrow_ipc(pa.Table.from_pylist(sample_records[:3])))
    if arrow:
        assert read_stream(answer.body).num_rows == 3
    else:
        assert isinstance(answer, dict) and len(answer["predictions"]) == 3


def test_explanations_in_arrow_equal_the_json_ones(
    engine: Any, sample_records: list[dict], headers: Callable[[str, str], None]
) -> None:
    rows = sample_records[:5]
    table = pa.Table.from_pylist(rows).replace_schema_metadata({"explain": "true"})
    json_reply, _ = serve(engine, {"rows": rows, "explain": True})
    arrow_reply, _ = serve(engine, arrow_ipc(table))
    explanations = [p["explanation"] for p in json_reply["predictions"]]
    assert [p["explanation"] for p in arrow_reply["predictions"]] == explanations
    headers(ARROW, ARROW)
    answer, _ = serve(engine, arrow_ipc(table))
    assert read_stream(answer.body).column("explanation").to_pylist() == explanations
    flag = pa.Table.from_pylist(rows).replace_schema_metadata({"explain": "yes"})
    assert "schema metadata 'explain' must be true or false" in error_of(
        lambda: serve(engine, arrow_ipc(flag))
    )


def bad_tables(rows: list[dict[str, Any]]) -> list[tuple[str, pa.Table]]:
    """Bad batches as Arrow tables; `table.to_pylist()` is the same batch as JSON rows."""
    good = pa.Table.from_pylist(rows)
    n = len(rows)

    def with_column(name: str, values: Any) -> pa.Table:
        return good.set_column(good.column_names.index(name), name, values)

    magnitude = [row["Absolute Magnitude"] for row in rows]
    some_null = pa.array([None if i % 3 else 1.5 for i in range(n)], pa.float64())
    not_finite = pa.array([math.nan, math.inf, *magnitude[2:]])
    alternating = pa.array([1.2 if i % 2 else 0.5 for i in range(n)])
    one_inverted = pa.array([5000.0 if i == 1 else 0.01 for i in range(n)])
    nan_first = with_column("Absolute Magnitude", pa.array([math.nan, *magnitude[1:]]))
    return [
        ("missing column", good.drop_columns(["Eccentricity"])),
        ("unknown column", good.append_column("Eccentricty", pa.array([0.3] * n))),
        ("string column", with_column("Inclination", pa.array(["12.5"] * n))),
        ("boolean column", with_column("Inclination", pa.array([True] * n))),
        ("all-null column", with_column("Inclination", pa.nulls(n))),
        ("nulls", with_column("Inclination", some_null)),
        ("NaN and infinity", with_column("Absolute Magnitude", not_finite)),
        ("out of range", with_column("Eccentricity", alternating)),
        ("negative diameter", with_column("Est Dia in KM(min)", pa.array([-1.0] * n))),
        ("fractional integer", with_column("Orbit Uncertainity", pa.array([2.5] * n))),
        ("minimum above maximum", with_column("Est Dia in KM(min)", one_inverted)),
        ("given twice", good.append_column("absolute_magnitude", pa.array(magnitude))),
        ("both derived and sources", good.append_column("est_dia_km_avg", pa.array([0.1] * n))),
        ("wrong computed feature", good.append_column(schema.CNEOS_CELL, pa.array([0.5] * n))),
        ("null computed feature", good.append_column(schema.CNEOS_CELL, pa.nulls(n, pa.float64()))),
        ("NaN among problems", nan_first.drop_columns(["Mean Motion"])),
        ("list column", with_column("Inclination", pa.array([[1.0]] * n))),
        ("empty", good.slice(0, 0)),
    ]  # fmt: skip


def test_bad_arrow_rows_get_the_json_rows_messages(engine: Any, sample_records: list[dict]) -> None:
    for name, table in bad_tables(sample_records[:12]):
        arrow_error = error_of(lambda table=table: serve(engine, arrow_ipc(table)))
        json_error = error_of(lambda table=table: serve(engine, {"rows": table.to_pylist()}))
        assert arrow_error == json_error, name
        assert arrow_error.startswith(("invalid input: row ", "the batch is empty")), (name, arrow_error)


def test_a_valid_nan_free_batch_in_feature_form_checks_its_computed_feature(
    engine: Any, sample_records: list[dict]
) -> None:
    rows = feature_form(sample_records[:20])  # in_cneos_cell included, equal to what the hook computes
    reply, _ = serve(engine, arrow_ipc(pa.Table.from_pylist(rows)))
    assert len(reply["predictions"]) == 20


def test_oversized_batches_are_refused_by_the_same_limit(engine: Any, sample_records: list[dict]) -> None:
    table = pa.Table.from_pylist(sample_records[:1])
    big = table.take(np.zeros(feature_rows.MAX_BATCH_ROWS + 1, dtype=np.int64))
    message = error_of(lambda: serve(engine, arrow_ipc(big)))
    assert f"at most {feature_rows.MAX_BATCH_ROWS} are allowed" in message


def malformed_bodies(good: bytes) -> list[tuple[str, bytes]]:
    return [
        ("marker only", b"\xff\xff\xff\xff"),
        ("truncated stream", good[: len(good) // 2]),
        ("garbage after the marker", b"\xff\xff\xff\xff" + bytes(range(256)) * 4),
        ("huge declared metadata length", b"\xff\xff\xff\xff\xff\xff\xff\x7f" + b"\x00" * 64),
        ("body truncated inside the first message", good[:12]),
        (
            "a bit flipped in every 97th byte",
            bytes(b ^ 0x10 if i % 97 == 0 else b for i, b in enumerate(good)),
        ),
    ]


def test_malformed_arrow_is_a_value_error_naming_the_problem_and_the_hook_keeps_serving(
    engine: Any, sample_records: list[dict], headers: Callable[[str, str], None]
) -> None:
    good = arrow_ipc(pa.Table.from_pylist(sample_records[:10]))
    for name, body in malformed_bodies(good):
        message = error_of(lambda body=body: serve(engine, body))
        assert message, name
    assert "not a valid Arrow IPC stream" in error_of(lambda: serve(engine, good[:12]))
    headers(ARROW, "")  # declared Arrow: never read as JSON
    assert "not a valid Arrow IPC stream" in error_of(lambda: serve(engine, b'{"rows": []}'))
    reply, _ = serve(engine, good)
    assert len(reply["predictions"]) == 10


class RecordingApp:
    """Stands for the stock app: records what the hook would read of the headers while it runs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.bodies.append((await receive()).get("body", b""))
        self.seen.append(
            (content_negotiation.request_media_type(), content_negotiation.client_accepts(ARROW))
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        pass

    asyncio.run(app(scope, receive, send))


def test_the_wrapper_tells_the_app_the_requests_content_type_and_accept() -> None:
    assert ARROW in content_negotiation.BINARY_MEDIA_TYPES  # serving_local cannot import the contract
    inner = RecordingApp()
    app = content_negotiation.ContentNegotiation(inner)
    call(app, "/serve/asteroid", [(b"content-type", f"{ARROW}; x=1".encode()), (b"accept", ARROW.encode())])
    call(app, "/serve/asteroid", [(b"content-type", b"application/json"), (b"accept", b"*/*")])
    call(app, "/metrics", [(b"content-type", ARROW.encode()), (b"accept", ARROW.encode())])
    assert inner.seen == [(ARROW, True), ("application/json", False), ("", False)]
    assert (content_negotiation.request_media_type(), content_negotiation.client_accepts(ARROW)) == (
        "",
        False,
    )


def test_request_limits_do_not_read_an_arrow_body_as_json() -> None:
    inner = RecordingApp()
    app = RequestLimits(content_negotiation.ContentNegotiation(inner), max_bytes=1 << 20, max_depth=4)
    deep = b"[" * 10 + b"\x00" * 10  # binary data may hold any bytes, brackets too
    call(app, "/serve/asteroid", [(b"content-type", ARROW.encode())], deep)
    call(app, "/serve/asteroid", [(b"content-type", b"application/octet-stream")], deep)
    assert inner.bodies == [deep]  # the second, not declared binary, was refused (400) before the app


def test_a_small_stream_of_many_empty_columns_costs_no_string_per_cell(engine: Any) -> None:
    rows, columns = feature_rows.MAX_BATCH_ROWS, 1_000
    table = pa.table({f"c{index}": pa.nulls(rows) for index in range(columns)})
    body = arrow_ipc(table)
    assert len(body) < 1 << 20  # null columns carry no data
    began = time.perf_counter()
    message = error_of(lambda: serve(engine, body))
    assert time.perf_counter() - began < 5.0  # one string per cell would be 10^8 of them
    every_row = columns + len(feature_rows.SOURCE_COLUMNS)  # unknown fields, then the missing ones
    hidden = rows * every_row - feature_rows.MAX_REPORTED_PROBLEMS
    assert message.startswith("invalid input: row 0: unknown field 'c0'; row 0: unknown field 'c1'")
    assert message.endswith(f"; and {hidden} more problem(s)")


def test_the_prediction_logs_ids_and_dates_are_the_json_rows_ones(
    engine: Any, sample_records: list[dict]
) -> None:
    hook = engine._preprocess

    def logged(rows: list[dict], table: pa.Table) -> tuple[dict, dict]:
        as_json, as_arrow = {}, {}
        hook.preprocess({"rows": rows}, as_json, None)
        hook.preprocess(arrow_ipc(table), as_arrow, None)
        return as_json, as_arrow

    rows = [dict(row) for row in sample_records[:6]]
    rows[3]["Close Approach Date"] = "1995-01-0"
    as_json, as_arrow = logged(rows, pa.Table.from_pylist(rows))  # integer ids
    assert (
        as_arrow["neo_reference_ids"] == as_json["neo_reference_ids"] == [r["Neo Reference ID"] for r in rows]
    )
    assert as_arrow["close_approach_dates"] == as_json["close_approach_dates"]
    assert as_json["close_approach_dates"][3] is None and as_json["close_approach_dates"][0] is not None
    for row, text in zip(rows, (" 12345 ", "abc", "", "7", "1.5", "x1"), strict=True):
        row["Neo Reference ID"] = text  # a string of digits counts, other text does not
    as_json, as_arrow = logged(rows, pa.Table.from_pylist(rows))
    assert as_arrow["neo_reference_ids"] == as_json["neo_reference_ids"] == [12345, None, None, 7, None, None]
    # a date column (as pyarrow's CSV reader gives it) counts as the date's text
    table = pa.Table.from_pylist(sample_records[:6])
    dates = pa.array([row["Close Approach Date"] for row in sample_records[:6]]).cast(pa.date32())
    dated = table.set_column(table.column_names.index("Close Approach Date"), "Close Approach Date", dates)
    as_json, as_arrow = logged(sample_records[:6], dated)
    assert as_arrow["close_approach_dates"] == as_json["close_approach_dates"]


@pytest.mark.parametrize("rows", [0, 1, 1000, 3000])
def test_an_answers_request_id_column_is_each_rows_id(rows: int) -> None:
    ids = prediction_log.new_request_ids(rows)
    column = preprocess_serving.request_id_column(ids)  # made in pyarrow from the prefix, growing its numbers
    assert column.type == pa.string() and column.to_pylist() == [f"{ids.prefix}-{row}" for row in range(rows)]
    assert preprocess_serving.request_id_column(["a-0", "b-7"]).to_pylist() == ["a-0", "b-7"]


def test_request_ids_read_as_the_sequence_of_strings_they_stand_for() -> None:
    ids = prediction_log.new_request_ids(4)
    expected = [f"{ids.prefix}-{row}" for row in range(4)]
    assert (list(ids), len(ids), ids[-1], ids[1:3], ids == tuple(expected)) == (
        expected, 4, expected[3], expected[1:3], True
    )  # fmt: skip
    with pytest.raises(IndexError, match="row 4 of 4"):
        ids[4]
