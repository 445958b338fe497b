"""The hook's side of the prediction log: every answered row goes to a Kafka topic; the request thread only
queues a reference to what the hook already computed.

The hook calls `PredictionLog.record()` once per request with what it already computed (the feature matrix,
the probabilities, the request ids): an `Answered` is appended to a queue, nothing is encoded or copied. Every
`FLUSH_INTERVAL_S`, or as soon as `FLUSH_ROWS` are queued, a flusher thread takes what is queued and encodes
it column-wise (`encode_request_blocks`: the rows of consecutive requests answered by the same model share a
block, a small JSON header with runs of the rows' ids, times, reference ids and dates, built per request, then
the feature matrix, probabilities and decisions as raw little-endian arrays, viewed in the requests' own:
3-5 µs and 233 bytes a single-row request, 30 µs and 153 bytes a row for 1,000 rows, where a block per
request on the request thread took 6 µs and 790 bytes for one row), then hands the blocks' buffers, a few
datagrams at a time, to the kernel (`sendmsg`: its copy is the only one) through a `SOCK_SEQPACKET` socket
whose other end is read by a forwarder process of this worker's own
(asteroid/serving/prediction_forwarder.py, started on first use), which gathers them into Kafka messages and
publishes them (confluent-kafka where installed, else kafka-python). So the Kafka client's work never holds
this worker's GIL, and the forwarder is woken a few times a second, not once per request
(docs/notes/quality.md, docs/notes/prediction-log-cost.md).

The broker is clearml-serving's own (`contract.BROKER_ENV`, which its inference app reads too); without it,
or with `contract.PREDICTION_LOG_ENV=off`, nothing is queued nor published. When the forwarder does not keep
up (its socket buffer full for `SEND_WAIT_S`) or is not running, rows are dropped and counted (`dropped`):
the log is for measuring quality, never a reason to slow or fail an answer; a forwarder that died is started
again (at most once every `RESTART_DELAY_S`). The consumer (asteroid/quality/) makes the storage exact
(idempotent by request id).

This file travels in the hook folder (asteroid/serving/hook_package.py): standard library, numpy, and the
release contract and the forwarder beside it only.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

try:  # deployed in the hook folder: the contract and the forwarder travel beside this file
    from . import contract, prediction_forwarder
except ImportError:  # imported from a checkout or the installed project
    from asteroid.serving import contract, prediction_forwarder

FORWARDER_SCRIPT = Path(prediction_forwarder.__file__).resolve()
HEADER = prediction_forwarder.FRAME  # a block starts with the length of its JSON header
FEATURE_DTYPE = np.dtype("<f8")
PROBABILITY_DTYPE = np.dtype("<f8")
DECISION_DTYPE = np.dtype("u1")
# A block's JSON header, amply: each request's rows in it add their runs (an id prefix, a time, a reference
# id and a date: up to this much), and rows whose ids were given one by one, or whose reference ids or dates
# differ from row to row, add up to this much each.
REQUEST_OVERHEAD_BYTES = 256
ROW_OVERHEAD_BYTES = 160
FLUSH_INTERVAL_S = 0.2  # the flusher encodes and sends what is queued at least this often
# ... and as soon as this many rows are queued: big requests are handed over within a few requests, so what
# they hold is freed at once for the next ones (with 200 ms of 1,000-row Arrow requests queued, a worker had
# 60-80 page faults a request and a flush outgrew the forwarder's socket buffer, dropping rows)
FLUSH_ROWS = 8192
MAX_PENDING_ROWS = 100_000  # queued for the flusher (about, unlocked) before requests are dropped
MAX_DATAGRAM_BYTES = prediction_forwarder.MAX_DATAGRAM_BYTES
MAX_DATAGRAM_PARTS = 256  # buffers of one `sendmsg`, well below the kernel's limit (IOV_MAX, 1,024)
SEND_WAIT_S = 0.5  # the flusher waits this long for room in the forwarder's socket, then drops the datagram
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # asked for; the kernel caps it (net.core.wmem_max)
RESTART_DELAY_S = 1.0


class RequestIds(Sequence[str]):
    """The request ids of one request's rows: `<prefix>-<row>` for rows 0, 1, ... (`new_request_ids`), each
    string made only when it is read. The flusher writes such ids as their prefix and count, not one by one;
    an Arrow answer makes its column of them in pyarrow (preprocess_serving.py): making 1,000 strings had
    been 7 % of a worker's CPU on 1,000-row Arrow batches."""

    __slots__ = ("prefix", "rows")

    def __init__(self, prefix: str, rows: int) -> None:
        self.prefix = prefix
        self.rows = rows

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [f"{self.prefix}-{row}" for row in range(*index.indices(self.rows))]
        row = index + self.rows if index < 0 else index
        if not 0 <= row < self.rows:
            raise IndexError(f"row {index} of {self.rows}")
        return f"{self.prefix}-{row}"

    def __iter__(self) -> Iterator[str]:
        return map(f"{self.prefix}-{{}}".format, range(self.rows))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (RequestIds, list, tuple)) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # compared by value, as the tuple it replaced


def new_request_ids(rows: int) -> RequestIds:
    """One id per row: a random UUID per request, the row's index after it (`<32 hex>-<row>`)."""
    return RequestIds(uuid.uuid4().hex, rows)


@dataclass(frozen=True)
class Answered:
    """One answered request, as the hook hands it over (the log keeps the references until its flusher
    encodes them: the hook must not change them afterwards)."""

    time: float
    model: dict[str, Any]
    feature_names: Sequence[str]
    features: Any  # numpy matrix, one row per answered row
    probabilities: Sequence[float]
    hazardous: Sequence[bool]
    request_ids: Sequence[str]  # `RequestIds` are written as their prefix and count
    neo_reference_ids: Sequence[int | None]
    close_approach_dates: Sequence[str | None]

    def encode_blocks(self) -> list[bytes]:
        """The request as blocks of at most `prediction_forwarder.MAX_BLOCK_BYTES` (one unless it is big)."""
        return [block for block, _ in encode_requests([self])]


class Block(NamedTuple):
    """A block as the buffers that make it, in order: its header (with its length) and its arrays, viewed in
    the requests' own arrays where a block's column comes from one request (sent as they are: no copy in
    this process), joined where it comes from several."""

    parts: list[Any]  # bytes-like
    rows: int
    size: int


def encode_requests(requests: Sequence[Answered]) -> list[tuple[bytes, int]]:
    """The requests' rows as blocks of at most `prediction_forwarder.MAX_BLOCK_BYTES`, with the number of rows
    of each: the rows of consecutive requests answered by the same model and features share blocks."""
    return [(b"".join(block.parts), block.rows) for block in encode_request_blocks(requests)]


def encode_request_blocks(requests: Sequence[Answered]) -> list[Block]:
    """`encode_requests`, each block as its buffers (`Block`)."""
    blocks: list[Block] = []
    for group in _same_model_runs(requests):
        blocks += _encode_group(group)
    return blocks


def _same_model_runs(requests: Sequence[Answered]) -> list[list[Answered]]:
    runs: list[list[Answered]] = []
    for request in requests:
        if runs and _same_model(runs[-1][-1], request):
            runs[-1].append(request)
        else:
            runs.append([request])
    return runs


def _same_model(one: Answered, other: Answered) -> bool:
    if one.feature_names is not other.feature_names and list(one.feature_names) != list(other.feature_names):
        return False
    return one.model is other.model or one.model == other.model


def _encode_group(group: list[Answered]) -> list[Block]:
    """Blocks of the group's rows, a block's arrays taken straight from its requests' (no copy of the whole
    group first). The header's per-row fields are runs, built per request (a request's rows share its time,
    its id prefix, and often a reference id and date of None): `time` `[[time, rows], ...]`,
    `request_id_runs` `[[prefix, first row, rows] or id, ...]`, `neo_reference_id_runs` and
    `close_approach_date_runs` `[[value, rows], ...]`."""
    first = group[0]
    names = list(first.feature_names)
    model = {"endpoint": first.model.get("endpoint"), "model_id": first.model.get("id"),
             "model_version": first.model.get("version"), "feature_names": names}  # fmt: skip
    pieces = [_Piece.of(request, len(names)) for request in group]
    data_bytes = FEATURE_DTYPE.itemsize * len(names) + PROBABILITY_DTYPE.itemsize + DECISION_DTYPE.itemsize
    budget = prediction_forwarder.MAX_BLOCK_BYTES - 1024 - 16 * len(names)  # the model's part of the header
    blocks = []
    for block_pieces in _block_pieces(pieces, budget, data_bytes):
        header = json.dumps({**model, **_header_runs(block_pieces)}).encode()
        parts = [HEADER.pack(len(header)) + header]
        for column in range(3):
            views = [piece.arrays[column][low:high] for piece, low, high in block_pieces]
            parts.append(views[0] if len(views) == 1 else b"".join(views))
        rows = sum(high - low for _, low, high in block_pieces)
        blocks.append(Block(parts, rows, len(parts[0]) + rows * data_bytes))
    return blocks


_MIXED = object()  # a request's field whose rows differ


class _Piece(NamedTuple):
    """A request's arrays, its id prefix (or None) and its reference ids' and dates' one value when all its
    rows share it (else `_MIXED`)."""

    request: Answered
    rows: int
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray]  # features, probabilities, decisions
    prefix: str | None
    reference: Any
    date: Any

    @property
    def as_runs(self) -> bool:
        """Whether its rows add nothing to the header beyond the piece's runs."""
        return self.prefix is not None and self.reference is not _MIXED and self.date is not _MIXED

    @classmethod
    def of(cls, request: Answered, features: int) -> _Piece:
        rows = len(request.request_ids)
        arrays = (
            np.ascontiguousarray(np.asarray(request.features, FEATURE_DTYPE).reshape(rows, features)),
            np.ascontiguousarray(np.asarray(request.probabilities, PROBABILITY_DTYPE)),
            _decisions(request.hazardous),
        )
        if arrays[1].shape != (rows,) or arrays[2].shape != (rows,):
            raise ValueError(
                f"{arrays[1].shape} probabilities and {arrays[2].shape} decisions for {rows} rows"
            )
        prefix = getattr(request.request_ids, "prefix", None)
        reference = _uniform(request.neo_reference_ids, rows)
        return cls(request, rows, arrays, prefix, reference, _uniform(request.close_approach_dates, rows))


def _decisions(hazardous: Any) -> np.ndarray:
    """Decisions as bytes of 0 and 1: a numpy bool array is viewed as such, anything else converted."""
    if isinstance(hazardous, np.ndarray) and hazardous.dtype == np.bool_:
        return np.ascontiguousarray(hazardous).view(DECISION_DTYPE)
    return np.asarray(hazardous, DECISION_DTYPE)


def _uniform(values: Sequence[Any], rows: int) -> Any:
    values = values if isinstance(values, (list, tuple)) else list(values)
    if len(values) != rows:
        raise ValueError(f"{len(values)} values for {rows} rows")
    return values[0] if rows and values.count(values[0]) == rows else _MIXED


def _block_pieces(pieces: list[_Piece], budget: int, data_bytes: int) -> list[list[tuple[_Piece, int, int]]]:
    """The pieces' rows in blocks of at most `budget` bytes (their data, and their share of the header: at
    most `REQUEST_OVERHEAD_BYTES` a piece in the block and `ROW_OVERHEAD_BYTES` a row not written as runs);
    per block, (piece, first row, row after the last)."""
    blocks: list[list[tuple[_Piece, int, int]]] = []
    current: list[tuple[_Piece, int, int]] = []
    room = budget
    for piece in pieces:
        row_bytes = data_bytes + (0 if piece.as_runs else ROW_OVERHEAD_BYTES)
        low = 0
        while low < piece.rows:
            fitting = (room - REQUEST_OVERHEAD_BYTES) // row_bytes
            if fitting < 1 and current:
                blocks.append(current)
                current, room = [], budget
                continue
            high = min(piece.rows, low + max(1, fitting))
            current.append((piece, low, high))
            room -= REQUEST_OVERHEAD_BYTES + (high - low) * row_bytes
            low = high
    if current:
        blocks.append(current)
    return blocks


def _header_runs(pieces: list[tuple[_Piece, int, int]]) -> dict[str, list]:
    """The runs of a block's rows (`_block_pieces`)."""
    times: list[list[Any]] = []
    ids: list[Any] = []
    references: list[list[Any]] = []
    dates: list[list[Any]] = []
    for piece, low, high in pieces:
        request = piece.request
        _add_run(times, request.time, high - low)
        if piece.prefix is not None:
            ids.append([piece.prefix, low, high - low])
        else:
            ids += [str(request_id) for request_id in request.request_ids[low:high]]
        _add_values(references, piece.reference, request.neo_reference_ids, low, high)
        _add_values(dates, piece.date, request.close_approach_dates, low, high)
    return {"time": times, "request_id_runs": ids, "neo_reference_id_runs": references,
            "close_approach_date_runs": dates}  # fmt: skip


def _add_run(runs: list[list[Any]], value: Any, count: int) -> None:
    if runs and runs[-1][0] == value and type(runs[-1][0]) is type(value):
        runs[-1][1] += count
    else:
        runs.append([value, count])


def _add_values(runs: list[list[Any]], uniform: Any, values: Sequence[Any], low: int, high: int) -> None:
    if uniform is not _MIXED:
        _add_run(runs, uniform, high - low)
        return
    for value in values[low:high]:
        _add_run(runs, value, 1)


def _times_of_rows(time: Any, rows: int) -> list[float]:
    """A block's `time`, one for all its rows or `[[time, rows], ...]` in row order, as one time per row."""
    if not isinstance(time, list):
        return [float(time)] * rows
    times = _expand_runs(time, rows)
    if len(times) != rows:
        raise ValueError(f"a block of {rows} rows has {len(times)} times")
    return [float(value) for value in times]


def _expand_runs(runs: list[list[Any]], limit: int) -> list[Any]:
    """`[[value, repeats], ...]` as the values; ValueError when they would be more than `limit`."""
    _check_total([repeats for _, repeats in runs], limit)
    values: list[Any] = []
    for value, repeats in runs:
        values += [value] * int(repeats)
    return values


def _expand_request_ids(runs: list[Any], limit: int) -> list[str]:
    """`[[prefix, first row, rows] or id, ...]` as the ids; ValueError when they would be more than
    `limit`."""
    _check_total([1 if isinstance(run, str) else run[2] for run in runs], limit)
    ids: list[str] = []
    for run in runs:
        if isinstance(run, str):
            ids.append(run)
        else:
            prefix, first, count = run
            ids += [f"{prefix}-{index}" for index in range(int(first), int(first) + int(count))]
    return ids


def _check_total(counts: list[Any], limit: int) -> None:
    """A header's runs must not expand to more rows than its block's data holds: a few bytes of JSON must
    not make the reader build lists of billions."""
    total = sum(int(count) for count in counts)
    if total > limit:
        raise ValueError(f"runs of {total} rows in a block with data for {limit}")


def _per_row_fields(header: dict[str, Any], limit: int) -> None:
    """The header's runs (`_encode_group`) as one value per row, under the names of the blocks written
    before runs (a list each), which are read as they are; at most `limit` rows."""
    if "request_id_runs" in header:
        header[contract.REQUEST_ID] = _expand_request_ids(header.pop("request_id_runs"), limit)
    for name in ("neo_reference_id", "close_approach_date"):
        if f"{name}_runs" in header:
            header[name] = _expand_runs(header.pop(f"{name}_runs"), limit)
        if len(header[name]) != len(header[contract.REQUEST_ID]):
            raise ValueError(
                f"a block of {len(header[contract.REQUEST_ID])} rows has {len(header[name])} {name}"
            )


def decode_block(block: bytes) -> dict[str, Any]:
    """A block's header fields, with `request_id`, `neo_reference_id`, `close_approach_date` and `time` one
    per row, `features` (rows x features), `probability` and `hazardous` as arrays; ValueError (or KeyError,
    TypeError) when it is not a block."""
    (length,) = HEADER.unpack_from(block, 0)
    start = HEADER.size + length
    header = json.loads(block[HEADER.size : start])
    columns = len(header["feature_names"])
    row_bytes = columns * FEATURE_DTYPE.itemsize + PROBABILITY_DTYPE.itemsize + DECISION_DTYPE.itemsize
    _per_row_fields(header, (len(block) - start) // row_bytes)
    rows = len(header[contract.REQUEST_ID])
    header["time"] = _times_of_rows(header["time"], rows)
    sizes = (rows * columns * FEATURE_DTYPE.itemsize, rows * PROBABILITY_DTYPE.itemsize, rows)
    if len(block) != start + sum(sizes):
        raise ValueError(f"a block of {rows} rows and {columns} features has {len(block) - start} data bytes")
    features = np.frombuffer(block, FEATURE_DTYPE, rows * columns, start).reshape(rows, columns)
    probabilities = np.frombuffer(block, PROBABILITY_DTYPE, rows, start + sizes[0])
    decisions = np.frombuffer(block, DECISION_DTYPE, rows, start + sizes[0] + sizes[1])
    return {**header, "features": features, contract.PROBABILITY: probabilities, "hazardous": decisions != 0}


def predictions_topic() -> str:
    return os.environ.get(contract.PREDICTIONS_TOPIC_ENV) or contract.PREDICTIONS_TOPIC


class Forwarder:
    """This worker's forwarder process and the socket to it."""

    def __init__(self, broker: str, topic: str, client: str = "auto") -> None:
        """`client`: the Kafka client the forwarder publishes with (`prediction_forwarder.CLIENTS`)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        command = [sys.executable, str(FORWARDER_SCRIPT), "--fd", str(theirs.fileno()), "--broker", broker]
        command += ["--topic", topic, "--client", client]
        try:
            self.process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.connection = mine
        self._congested = False
        mine.setblocking(False)  # a plain send: with a timeout, Python polls before each send

    def send(self, datagram: list[Any]) -> bool:
        """Hand one datagram, given as its buffers, over (the kernel copies them: `sendmsg`); False when the
        forwarder had no room for it within `SEND_WAIT_S` (then later sends do not wait, until one succeeds
        again). OSError when the forwarder is gone."""
        try:
            self.connection.sendmsg(datagram)
        except BlockingIOError:
            if self._congested or not self._room_within(SEND_WAIT_S):
                self._congested = True
                return False
            try:
                self.connection.sendmsg(datagram)
            except BlockingIOError:
                self._congested = True
                return False
        self._congested = False
        return True

    def _room_within(self, seconds: float) -> bool:
        poller = select.poll()
        poller.register(self.connection, select.POLLOUT)
        return bool(poller.poll(seconds * 1000))

    def close(self) -> None:
        self.connection.close()  # the forwarder publishes what it holds and exits
        self.process.poll()


def datagrams(blocks: list[Block]) -> list[tuple[list[Any], int]]:
    """The blocks framed (`prediction_forwarder.frame`) and gathered into datagrams of at most
    `MAX_DATAGRAM_BYTES` and `MAX_DATAGRAM_PARTS` buffers (a block always fits alone), each as its buffers
    and with its rows."""
    found: list[tuple[list[Any], int]] = []
    current: list[Any] = []
    size = rows = 0
    for block in blocks:
        framed = prediction_forwarder.FRAME.size + block.size
        too_big = size + framed > MAX_DATAGRAM_BYTES or len(current) + len(block.parts) > MAX_DATAGRAM_PARTS
        if current and too_big:
            found.append((current, rows))
            current, size, rows = [], 0, 0
        current += [prediction_forwarder.FRAME.pack(block.size) + block.parts[0], *block.parts[1:]]
        size += framed
        rows += block.rows
    if current:
        found.append((current, rows))
    return found


class PredictionLog:
    """Queues answered requests for this worker's flusher, which encodes them for its forwarder process
    (thread-safe)."""

    def __init__(
        self,
        broker: str | None,
        topic: str,
        start_forwarder: Callable[[str, str], Forwarder] = Forwarder,
        clock: Callable[[], float] = time.monotonic,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.dropped = 0  # rows not handed to the forwarder
        self._on_dropped = on_dropped  # told of each drop (rows): a metric, so that no drop goes unseen
        self._start_forwarder = start_forwarder
        self._clock = clock
        self._queue: deque[Answered] = deque()
        self._pending_rows = 0
        self._forwarder: Forwarder | None = None
        self._flusher: threading.Thread | None = None
        self._owner: int | None = None  # the process the flusher and forwarder belong to
        self._start_after = float("-inf")
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._wake = threading.Event()  # set by `record` once `FLUSH_ROWS` are queued, and by `close`

    @classmethod
    def from_env(cls, on_dropped: Callable[[int], None] | None = None) -> PredictionLog:
        switch = os.environ.get(contract.PREDICTION_LOG_ENV, "on").strip().lower()
        enabled = switch not in ("off", "0", "false")
        broker = os.environ.get(contract.BROKER_ENV) if enabled else None
        return cls(broker or None, predictions_topic(), on_dropped=on_dropped)

    @property
    def enabled(self) -> bool:
        return self.broker is not None

    def record(self, answered: Answered) -> None:
        """Queue one answered request for the flusher (returns at once)."""
        if not self.enabled or self._closed.is_set():
            return
        if self._owner != os.getpid():
            self._start()
        rows = len(answered.request_ids)
        if self._pending_rows >= MAX_PENDING_ROWS:  # the flusher is stuck: the queue must not grow
            self._drop(rows)
            return
        self._pending_rows += rows
        self._queue.append(answered)
        if self._pending_rows >= FLUSH_ROWS and not self._wake.is_set():
            self._wake.set()

    def _drop(self, rows: int) -> None:
        self.dropped += rows
        if self._on_dropped is not None and rows:
            try:
                self._on_dropped(rows)
            except Exception as exc:  # a metric must never cost an answer nor stop the flusher
                print(
                    f"prediction log: {rows} dropped row(s) not counted: {exc}", file=sys.stderr, flush=True
                )

    def _start(self) -> None:
        """The flusher thread of this process: on first use, and again in a child forked from a process that
        had one (its thread and forwarder stayed with the parent)."""
        with self._lock:
            if self._owner == os.getpid():
                return
            self._queue, self._pending_rows = deque(), 0
            self._forwarder, self._start_after = None, float("-inf")
            self._flusher = threading.Thread(target=self._run, name="prediction-log-flush", daemon=True)
            self._owner = os.getpid()
            self._flusher.start()
            atexit.register(self.close)

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            if self._closed.is_set():
                return
            self.flush()

    def flush(self) -> None:
        """Encode what is queued and send it to the forwarder (the flusher thread calls it every
        `FLUSH_INTERVAL_S`, and as soon as `record` has queued `FLUSH_ROWS`)."""
        requests = []
        while self._queue:
            requests.append(self._queue.popleft())
        if not requests:
            return
        rows = sum(len(request.request_ids) for request in requests)
        self._pending_rows -= rows
        forwarder = self._forwarder or self._started_forwarder()
        if forwarder is None:
            self._drop(rows)
            return
        try:
            blocks = encode_request_blocks(requests)
        except ValueError as exc:  # a request whose fields do not match its rows: never the flusher's end
            self._drop(rows)
            print(f"prediction log: {rows} row(s) not encoded: {exc}", file=sys.stderr, flush=True)
            return
        chunks = datagrams(blocks)
        for number, (datagram, datagram_rows) in enumerate(chunks):
            try:
                if not forwarder.send(datagram):
                    self._drop(datagram_rows)
            except OSError as exc:  # the forwarder exited: another is started at the next flush
                self._drop(sum(count for _, count in chunks[number:]))
                self._forwarder = None
                forwarder.close()
                print(f"prediction log: the forwarder is gone ({exc}); starting another", file=sys.stderr,
                      flush=True)  # fmt: skip
                return

    def _started_forwarder(self) -> Forwarder | None:
        """A new forwarder, unless the last one was started less than `RESTART_DELAY_S` ago."""
        if self._clock() < self._start_after:
            return None
        self._start_after = self._clock() + RESTART_DELAY_S
        try:
            self._forwarder = self._start_forwarder(self.broker, self.topic)
        except OSError as exc:
            print(f"prediction log: the forwarder did not start: {exc}", file=sys.stderr, flush=True)
        return self._forwarder

    def close(self) -> None:
        """Stop the flusher, send what is queued, close the socket: the forwarder publishes and exits."""
        if self._owner != os.getpid() or self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5.0)
        self.flush()
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
