"""The hook's side of the prediction log: every answered row goes to a Kafka topic; the request thread only
queues a reference to what the hook already computed.

The hook calls `PredictionLog.record()` once per request with what it already computed (the feature matrix,
the probabilities, the request ids): an `Answered` is appended to a queue, nothing is encoded or copied. Every
`FLUSH_INTERVAL_S` a flusher thread takes what is queued and encodes it column-wise (`encode_requests`: the
rows of consecutive requests answered by the same model share a block, a small JSON header with the rows'
ids and dates and each request's time, then the feature matrix, probabilities and decisions as raw
little-endian arrays; 2 µs and 240 bytes a single-row request, where a block per request on the request
thread took 6 µs and 790 bytes), then writes the blocks, a few datagrams at a time, into a `SOCK_SEQPACKET`
socket whose other end is read by a forwarder process of this worker's own
(asteroid/serving/prediction_forwarder.py, started on first use), which gathers them into Kafka messages and
runs kafka-python's producer. So the Kafka client's Python-level work never holds this worker's GIL, and the
forwarder is woken a few times a second, not once per request (docs/notes/quality.md,
docs/notes/prediction-log-cost.md).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
ROW_OVERHEAD_BYTES = 160  # a row's share of the JSON header (request id, time, reference id, date), amply
FLUSH_INTERVAL_S = 0.2  # the flusher encodes and sends what is queued this often (a wake-up of the forwarder)
MAX_PENDING_ROWS = 100_000  # queued for the flusher (about, unlocked) before requests are dropped
MAX_DATAGRAM_BYTES = prediction_forwarder.MAX_DATAGRAM_BYTES
SEND_WAIT_S = 0.5  # the flusher waits this long for room in the forwarder's socket, then drops the datagram
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # asked for; the kernel caps it (net.core.wmem_max)
RESTART_DELAY_S = 1.0


def new_request_ids(rows: int) -> list[str]:
    """One id per row: a random UUID per request, the row's index after it (`<32 hex>-<row>`)."""
    base = uuid.uuid4().hex
    return [f"{base}-{index}" for index in range(rows)]


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
    request_ids: Sequence[str]
    neo_reference_ids: Sequence[int | None]
    close_approach_dates: Sequence[str | None]

    def encode_blocks(self) -> list[bytes]:
        """The request as blocks of at most `prediction_forwarder.MAX_BLOCK_BYTES` (one unless it is big)."""
        return [block for block, _ in encode_requests([self])]


def encode_requests(requests: Sequence[Answered]) -> list[tuple[bytes, int]]:
    """The requests' rows as blocks of at most `prediction_forwarder.MAX_BLOCK_BYTES`, with the number of rows
    of each: the rows of consecutive requests answered by the same model and features share blocks."""
    blocks: list[tuple[bytes, int]] = []
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


def _encode_group(group: list[Answered]) -> list[tuple[bytes, int]]:
    first = group[0]
    names = list(first.feature_names)
    features = np.concatenate([np.asarray(r.features, FEATURE_DTYPE).reshape(-1, len(names)) for r in group])
    probabilities = np.concatenate([np.asarray(r.probabilities, PROBABILITY_DTYPE) for r in group])
    decisions = np.concatenate([np.asarray(r.hazardous, DECISION_DTYPE) for r in group])
    times = [r.time for r in group for _ in range(len(r.request_ids))]
    columns = {
        contract.REQUEST_ID: [i for r in group for i in r.request_ids],
        "neo_reference_id": [i for r in group for i in r.neo_reference_ids],
        "close_approach_date": [d for r in group for d in r.close_approach_dates],
    }
    model = {"endpoint": first.model.get("endpoint"), "model_id": first.model.get("id"),
             "model_version": first.model.get("version"), "feature_names": names}  # fmt: skip
    row_bytes = FEATURE_DTYPE.itemsize * len(names) + PROBABILITY_DTYPE.itemsize + ROW_OVERHEAD_BYTES
    step = max(1, (prediction_forwarder.MAX_BLOCK_BYTES - 1024 - 16 * len(names)) // row_bytes)
    rows = len(columns[contract.REQUEST_ID])
    blocks = []
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        rows_of_block = {key: values[start:stop] for key, values in columns.items()}
        header = json.dumps({**model, "time": _runs(times[start:stop]), **rows_of_block}).encode()
        parts = (features[start:stop], probabilities[start:stop], decisions[start:stop])
        block = b"".join((HEADER.pack(len(header)), header, *(part.tobytes() for part in parts)))
        blocks.append((block, stop - start))
    return blocks


def _runs(values: list[float]) -> list[list[float]]:
    """[[value, repeats], ...] of consecutive equal values: a request's rows share its time, and a float's
    JSON costs as much as a row's other fields together."""
    runs: list[list[float]] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return runs


def _times_of_rows(time: Any, rows: int) -> list[float]:
    """A block's `time`, one for all its rows or `[[time, rows], ...]` in row order, as one time per row."""
    if not isinstance(time, list):
        return [float(time)] * rows
    times = [float(value) for value, repeats in time for _ in range(int(repeats))]
    if len(times) != rows:
        raise ValueError(f"a block of {rows} rows has {len(times)} times")
    return times


def decode_block(block: bytes) -> dict[str, Any]:
    """A block's header fields, with `time` one per row, `features` (rows x features), `probability` and
    `hazardous` as arrays; ValueError (or KeyError, TypeError) when it is not a block."""
    (length,) = HEADER.unpack_from(block, 0)
    start = HEADER.size + length
    header = json.loads(block[HEADER.size : start])
    rows, columns = len(header[contract.REQUEST_ID]), len(header["feature_names"])
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

    def __init__(self, broker: str, topic: str) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        command = [sys.executable, str(FORWARDER_SCRIPT), "--fd", str(theirs.fileno()), "--broker", broker]
        try:
            self.process = subprocess.Popen(
                [*command, "--topic", topic], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
            )
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.connection = mine
        self._congested = False
        mine.setblocking(False)  # a plain send: with a timeout, Python polls before each send

    def send(self, datagram: bytes) -> bool:
        """Hand one datagram over; False when the forwarder had no room for it within `SEND_WAIT_S` (then
        later sends do not wait, until one succeeds again). OSError when the forwarder is gone."""
        try:
            self.connection.send(datagram)
        except BlockingIOError:
            if self._congested or not self._room_within(SEND_WAIT_S):
                self._congested = True
                return False
            try:
                self.connection.send(datagram)
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


def datagrams(frames: list[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
    """Framed blocks (with their rows) joined into datagrams of at most `MAX_DATAGRAM_BYTES` (a frame always
    fits alone), with the rows of each."""
    found: list[tuple[bytes, int]] = []
    current: list[bytes] = []
    size = rows = 0
    for frame, frame_rows in frames:
        if current and size + len(frame) > MAX_DATAGRAM_BYTES:
            found.append((b"".join(current), rows))
            current, size, rows = [], 0, 0
        current.append(frame)
        size += len(frame)
        rows += frame_rows
    if current:
        found.append((b"".join(current), rows))
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
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.dropped = 0  # rows not handed to the forwarder
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

    @classmethod
    def from_env(cls) -> PredictionLog:
        switch = os.environ.get(contract.PREDICTION_LOG_ENV, "on").strip().lower()
        enabled = switch not in ("off", "0", "false")
        broker = os.environ.get(contract.BROKER_ENV) if enabled else None
        return cls(broker or None, predictions_topic())

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
            self.dropped += rows
            return
        self._pending_rows += rows
        self._queue.append(answered)

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
        while not self._closed.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Encode what is queued and send it to the forwarder (the flusher thread calls it every
        `FLUSH_INTERVAL_S`)."""
        requests = []
        while self._queue:
            requests.append(self._queue.popleft())
        if not requests:
            return
        rows = sum(len(request.request_ids) for request in requests)
        self._pending_rows -= rows
        forwarder = self._forwarder or self._started_forwarder()
        if forwarder is None:
            self.dropped += rows
            return
        framed = [(prediction_forwarder.frame(block), count) for block, count in encode_requests(requests)]
        chunks = datagrams(framed)
        for number, (datagram, datagram_rows) in enumerate(chunks):
            try:
                if not forwarder.send(datagram):
                    self.dropped += datagram_rows
            except OSError as exc:  # the forwarder exited: another is started at the next flush
                self.dropped += sum(count for _, count in chunks[number:])
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
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5.0)
        self.flush()
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
