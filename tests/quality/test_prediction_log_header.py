"""The flusher writes a block's per-row header fields as runs built per request (ids as their prefix and
count, a request's shared time, reference id and date once): a 1,000-row request's header is a few hundred
bytes, not tens of kilobytes, and every row decodes as it was answered — across blocks, beside requests whose
ids are given one by one, and in the blocks written before runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asteroid.serving import contract, prediction_log

NAMES = [f"feature_{index}" for index in range(18)]
MODEL = {"endpoint": "asteroid/1", "id": "m", "version": "3"}


def answered(
    rows: int,
    at: float,
    ids: list[str] | None = None,
    references: list | None = None,
    dates: list | None = None,
) -> prediction_log.Answered:
    features = np.arange(rows * len(NAMES), dtype=float).reshape(rows, len(NAMES)) + at
    return prediction_log.Answered(
        at, MODEL, NAMES, features, np.linspace(0, 1, rows), np.arange(rows) % 2 == 0,
        ids if ids is not None else prediction_log.new_request_ids(rows),
        references if references is not None else [None] * rows,
        dates if dates is not None else [None] * rows,
    )  # fmt: skip


def header_of(block: bytes) -> dict:
    (length,) = prediction_log.HEADER.unpack_from(block, 0)
    return json.loads(block[prediction_log.HEADER.size : prediction_log.HEADER.size + length])


def decoded_rows(requests: list[prediction_log.Answered]) -> list[tuple]:
    rows = []
    for block, count in prediction_log.encode_requests(requests):
        decoded = prediction_log.decode_block(block)
        assert len(decoded[contract.REQUEST_ID]) == count
        rows += zip(
            decoded[contract.REQUEST_ID], decoded["time"], decoded["neo_reference_id"],
            decoded["close_approach_date"], decoded["features"].tolist(),
            decoded[contract.PROBABILITY].tolist(), decoded["hazardous"].tolist(), strict=True,
        )  # fmt: skip
    return rows


def answered_rows(requests: list[prediction_log.Answered]) -> list[tuple]:
    return [
        (str(i), r.time, ref, date, list(f), float(p), bool(h))
        for r in requests
        for i, ref, date, f, p, h in zip(
            r.request_ids, r.neo_reference_ids, r.close_approach_dates, np.asarray(r.features).tolist(),
            r.probabilities, r.hazardous, strict=True,
        )
    ]  # fmt: skip


def test_new_request_ids_are_their_prefix_and_row() -> None:
    ids = prediction_log.new_request_ids(3)
    assert list(ids) == [f"{ids.prefix}-0", f"{ids.prefix}-1", f"{ids.prefix}-2"]
    assert len(ids.prefix) == 32 and ids.prefix != prediction_log.new_request_ids(3).prefix


def test_a_thousand_row_request_has_a_header_of_runs_not_of_rows() -> None:
    request = answered(1000, 1_900_000_000.5)
    blocks = prediction_log.encode_requests([request])
    headers = [header_of(block) for block, _ in blocks]
    assert len(blocks) > 1  # split by size
    # the model's fields and feature names, then a few runs: under 3 bytes a row (the ids alone were 40)
    assert sum(len(json.dumps(header)) for header in headers) < 3 * 1000
    assert [header["request_id_runs"] for header in headers] == [
        [[request.request_ids.prefix, sum(rows for _, rows in blocks[:number]), rows]]
        for number, (_, rows) in enumerate(blocks)
    ]
    assert decoded_rows([request]) == answered_rows([request])


def test_rows_split_over_blocks_keep_their_own_fields_among_other_requests() -> None:
    mixed = answered(
        700, 5.0, references=[None if i % 3 else 2_000_000 + i for i in range(700)],
        dates=["2026-01-02" if i % 2 else None for i in range(700)],
    )  # fmt: skip
    given_ids = answered(
        2, 6.0, ids=["a" * 32 + "-0", "custom id"], references=[7, 7], dates=["2026-03-04"] * 2
    )
    requests = [answered(1, 1.0, references=[3_000_001]), mixed, given_ids, answered(1, 1.0)]
    assert decoded_rows(requests) == answered_rows(requests)


def test_consecutive_requests_share_their_runs() -> None:
    requests = [answered(1, 2.0, references=[None]) for _ in range(40)]
    (block, rows), *_ = prediction_log.encode_requests(requests)
    header = header_of(block)
    assert rows == 40
    assert header["time"] == [[2.0, 40]]
    assert header["neo_reference_id_runs"] == [[None, 40]] and header["close_approach_date_runs"] == [
        [None, 40]
    ]
    assert len(header["request_id_runs"]) == 40  # each request has its own prefix


def test_blocks_written_before_runs_still_decode() -> None:
    """Ids, reference ids and dates a list per row; time one value, or runs."""
    features = np.ones((2, len(NAMES)))
    for time in (7.5, [[7.5, 2]]):
        header = json.dumps({
            "endpoint": "asteroid/1", "model_id": "m", "model_version": "3", "feature_names": NAMES,
            "time": time, contract.REQUEST_ID: ["x-0", "x-1"], "neo_reference_id": [None, 4],
            "close_approach_date": ["2026-01-01", None],
        }).encode()  # fmt: skip
        data = features.tobytes() + np.array([0.2, 0.9]).tobytes() + bytes([0, 1])
        decoded = prediction_log.decode_block(prediction_log.HEADER.pack(len(header)) + header + data)
        assert decoded[contract.REQUEST_ID] == ["x-0", "x-1"] and decoded["time"] == [7.5, 7.5]
        assert decoded["neo_reference_id"] == [None, 4]
        assert decoded["close_approach_date"] == ["2026-01-01", None]
        assert decoded["hazardous"].tolist() == [False, True]


@pytest.mark.parametrize(
    "field, runs",
    [("neo_reference_id_runs", [[None, 3]]), ("request_id_runs", [["p", 0, 1]]), ("time", [[1.0, 5]])],
)
def test_runs_that_do_not_cover_the_rows_are_refused(field: str, runs: list) -> None:
    (block, _), *_ = prediction_log.encode_requests([answered(2, 1.0)])
    (length,) = prediction_log.HEADER.unpack_from(block, 0)
    encoded = json.dumps({**header_of(block), field: runs}).encode()
    rest = block[prediction_log.HEADER.size + length :]
    with pytest.raises(ValueError):
        prediction_log.decode_block(prediction_log.HEADER.pack(len(encoded)) + encoded + rest)


def test_a_request_whose_fields_do_not_match_its_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="values for 2 rows"):
        prediction_log.encode_requests([answered(2, 1.0, references=[1])])


def test_a_request_the_flusher_cannot_encode_is_counted_and_the_flusher_goes_on() -> None:
    sent: list[bytes] = []

    class Recording:
        def send(self, datagram: bytes) -> bool:
            sent.append(datagram)
            return True

        def close(self) -> None:
            pass

    log = prediction_log.PredictionLog("broker:9092", "topic", start_forwarder=lambda *_: Recording())
    log._queue.extend([answered(2, 1.0, references=[1])])  # two rows, one reference id
    log._pending_rows = 2
    log.flush()
    assert log.dropped == 2 and sent == []
    log._queue.append(answered(3, 2.0))
    log._pending_rows = 3
    log.flush()
    assert log.dropped == 2 and len(sent) == 1


@pytest.mark.parametrize(
    "field, runs",
    [
        ("request_id_runs", [["p", 0, 10**12]]),
        ("neo_reference_id_runs", [[None, 10**12]]),
        ("time", [[1.0, 10**12]]),
    ],
)
def test_runs_claiming_more_rows_than_the_block_holds_are_refused_before_they_are_expanded(
    field: str, runs: list
) -> None:
    """A few bytes of header must not make the consumer build lists of a trillion values."""
    (block, _), *_ = prediction_log.encode_requests([answered(2, 1.0)])
    (length,) = prediction_log.HEADER.unpack_from(block, 0)
    encoded = json.dumps({**header_of(block), field: runs}).encode()
    forged = prediction_log.HEADER.pack(len(encoded)) + encoded + block[prediction_log.HEADER.size + length :]
    with pytest.raises(ValueError, match="rows in a block with data for 2"):
        prediction_log.decode_block(forged)


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param(
            [
                answered(1, 1_900_000_000.0 + index / 7, references=[4_000_000 + index], dates=["2026-01-02"])
                for index in range(3_000)
            ],
            id="single rows, each its own runs",
        ),
        pytest.param(
            [
                answered(
                    1_000,
                    1.5,
                    references=list(range(1_000)),
                    dates=[f"2026-01-{1 + i % 28:02d}" for i in range(1_000)],
                )
            ],
            id="a batch whose references and dates differ row by row",
        ),
        pytest.param(
            [answered(900, 2.5, ids=[f"{index:040d}" for index in range(900)])],
            id="ids given one by one",
        ),
    ],
)
def test_no_block_outgrows_the_forwarders_datagram(requests: list[prediction_log.Answered]) -> None:
    """A datagram holds a block at most `MAX_BLOCK_BYTES` long (framed); the header's share is budgeted per
    request and per row not written as runs (single rows had grown blocks to 91 KB)."""
    blocks = prediction_log.encode_request_blocks(requests)
    assert max(block.size for block in blocks) <= prediction_log.prediction_forwarder.MAX_BLOCK_BYTES
    assert all(block.size == len(b"".join(block.parts)) for block in blocks)
    assert all(
        len(b"".join(datagram)) <= prediction_log.MAX_DATAGRAM_BYTES
        for datagram, _ in prediction_log.datagrams(blocks)
    )
    assert decoded_rows(requests) == answered_rows(requests)
