"""The prediction log's cost on the request path is queueing a reference: nothing is encoded nor sent on the
request thread, one flusher thread hands the blocks over, and a forwarder that does not read costs the flusher
one bounded wait, then none. The forwarder process frames what arrives into messages the consumer reads,
survives a `kill -9` (the worker starts another) and publishes what it holds when the worker closes its
end."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from asteroid.quality import store
from asteroid.quality.config import QualityConfig
from asteroid.quality.consumer import PredictionConsumer
from asteroid.serving import contract, prediction_forwarder, prediction_log
from tests.backend.backend_harness import wait_for
from tests.net import free_port

NAMES = [f"feature_{index}" for index in range(18)]


def answered(rows: int, first: int = 0) -> prediction_log.Answered:
    features = np.arange(rows * len(NAMES), dtype=float).reshape(rows, len(NAMES)) / 7.0
    return prediction_log.Answered(
        1_900_000_000.5, {"endpoint": "asteroid/1", "id": "m", "version": "3"}, NAMES, features,
        [index / rows for index in range(rows)], [index % 2 == 0 for index in range(rows)],
        [f"{first + index:032x}-0" for index in range(rows)],
        [3_000_000 + index if index % 3 else None for index in range(rows)],
        ["2026-01-02" if index % 2 else None for index in range(rows)],
    )  # fmt: skip


class RecordingForwarder:
    def __init__(self, broker: str, topic: str) -> None:
        self.sent: list[bytes] = []
        self.senders: set[str] = set()

    def send(self, datagram: list) -> bool:
        self.sent.append(b"".join(datagram))
        self.senders.add(threading.current_thread().name)
        return True

    def close(self) -> None:
        pass


@pytest.mark.parametrize("rows", [1, 1000])
def test_the_request_thread_only_queues(rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    forwarders: list[RecordingForwarder] = []
    encoders: set[str] = set()
    encode = prediction_log.encode_request_blocks

    def start(broker: str, topic: str) -> RecordingForwarder:
        forwarders.append(RecordingForwarder(broker, topic))
        return forwarders[-1]

    def recorded_encode(requests: list[prediction_log.Answered]) -> list[prediction_log.Block]:
        encoders.add(threading.current_thread().name)
        return encode(requests)

    monkeypatch.setattr(prediction_log, "encode_request_blocks", recorded_encode)

    log = prediction_log.PredictionLog("broker:1", "topic", start_forwarder=start)
    threads = threading.active_count()
    requests = [answered(rows), *(answered(1, first=rows + index) for index in range(50))]
    for request in requests:
        log.record(request)
    assert threading.active_count() == threads + 1  # the flusher, started once
    rows_answered = sum(len(request.request_ids) for request in requests)

    def handed_over() -> int:
        blocks = [
            block
            for f in list(forwarders)
            for datagram in list(f.sent)
            for block in prediction_forwarder.unpack_message(prediction_forwarder.MAGIC + datagram)
        ]
        return sum(len(prediction_log.decode_block(block)[contract.REQUEST_ID]) for block in blocks)

    wait_for(lambda: handed_over() == rows_answered, "the flusher to hand every row over", 10.0)
    (forwarder,) = forwarders  # started once, by the flusher
    assert (
        forwarder.senders == encoders == {"prediction-log-flush"}
    )  # nor sent nor encoded on the request thread
    log.close()
    assert all(len(datagram) <= prediction_forwarder.MAX_DATAGRAM_BYTES for datagram in forwarder.sent)
    stored = store.Prediction.from_message(prediction_forwarder.MAGIC + b"".join(forwarder.sent))
    request = requests[0]
    assert [p.request_id for p in stored] == [i for r in requests for i in r.request_ids]
    assert [p.probability for p in stored[:rows]] == list(request.probabilities)
    assert [p.hazardous for p in stored[:rows]] == list(request.hazardous)
    assert [p.neo_reference_id for p in stored[:rows]] == list(request.neo_reference_ids)
    assert [p.close_approach_date for p in stored[:rows]] == list(request.close_approach_dates)
    assert [list(p.features.values()) for p in stored[:rows]] == request.features.tolist()
    assert {(p.endpoint, p.model_id, p.model_version, p.predicted_at) for p in stored} == {
        ("asteroid/1", "m", "3", 1_900_000_000.5)
    }
    assert log.dropped == 0


def test_a_stuck_flusher_bounds_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    class Stuck(RecordingForwarder):
        def send(self, datagram: list) -> bool:
            release.wait(30.0)
            return super().send(datagram)

    monkeypatch.setattr(prediction_log, "MAX_PENDING_ROWS", 50)
    log = prediction_log.PredictionLog("broker:1", "topic", start_forwarder=Stuck)
    log.record(answered(1))
    wait_for(lambda: log._forwarder is not None, "the flusher to take the first request", 10.0)
    for index in range(200):
        log.record(answered(1, first=1 + index))
    queued = len(log._queue)
    assert queued == 50 and log.dropped == 150  # the rest refused at the bound, counted (rows)
    release.set()
    log.close()


def test_one_flush_encodes_many_requests_column_wise_and_the_consumer_reads_them_back() -> None:
    """The flusher's blocks hold the rows of many requests (one header for all, per-row times); a request
    of another model starts another block; the rows come back as the requests were answered."""
    other_model = prediction_log.Answered(
        1_900_000_001.0, {"endpoint": "asteroid/2", "id": "n", "version": "4"}, NAMES,
        np.ones((2, len(NAMES))), [0.9, 0.1], [True, False], ["b" * 32 + "-0", "b" * 32 + "-1"], [7, None],
        [None, "2026-03-04"],
    )  # fmt: skip
    requests = [answered(1, first=index) for index in range(40)] + [other_model, answered(3, first=40)]
    blocks = prediction_log.encode_requests(requests)
    assert [rows for _, rows in blocks] == [40, 2, 3]
    assert len(blocks[0][0]) < 40 * len(requests[0].encode_blocks()[0]) / 2  # one header, not forty
    stored = store.Prediction.from_message(prediction_forwarder.pack_message([block for block, _ in blocks]))
    assert [p.request_id for p in stored] == [i for r in requests for i in r.request_ids]
    assert [p.predicted_at for p in stored] == [r.time for r in requests for _ in r.request_ids]
    assert [p.model_version for p in stored] == ["3"] * 40 + ["4"] * 2 + ["3"] * 3
    assert [list(p.features.values()) for p in stored] == [
        row for r in requests for row in np.asarray(r.features).tolist()
    ]
    assert [
        (p.probability, p.hazardous, p.neo_reference_id, p.close_approach_date) for p in stored[40:42]
    ] == [
        (0.9, True, 7, None),
        (0.1, False, None, "2026-03-04"),
    ]


def test_a_forwarder_that_does_not_read_costs_one_bounded_wait_then_none() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    forwarder = object.__new__(prediction_log.Forwarder)  # its socket without its process
    forwarder.connection, forwarder._congested = mine, False
    mine.setblocking(False)
    block = [answered(50).encode_blocks()[0]]
    try:
        while forwarder.send(block):  # the socket buffer fills: nobody reads
            pass
        assert forwarder._congested  # the first refusal waited for room; the next do not wait
        forwarder._room_within = lambda seconds: pytest.fail("a congested send waited")
        assert not forwarder.send(block)
        for _ in range(2):  # the forwarder reads again: the next send finds room and ends the congestion
            theirs.recv(prediction_forwarder.MAX_BLOCK_BYTES)
        assert forwarder.send(block) and not forwarder._congested
    finally:
        mine.close()
        theirs.close()


def test_the_forwarder_frames_what_arrives_and_publishes_the_rest_when_the_worker_closes() -> None:
    worker, forwarder_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    published: list[bytes] = []
    blocks = [
        block for rows in (1, 3, 700) for block in prediction_log.encode_request_blocks([answered(rows)])
    ]
    for datagram, _ in prediction_log.datagrams(blocks):
        worker.sendmsg(datagram)
    worker.close()
    prediction_forwarder.Batcher(
        forwarder_end, lambda value: published.append(bytes(value)), linger=60.0
    ).run()  # returns at the close
    forwarder_end.close()
    assert [block for value in published for block in prediction_forwarder.unpack_message(value)] == [
        b"".join(block.parts) for block in blocks
    ]
    assert all(len(value) <= prediction_forwarder.MAX_MESSAGE_BYTES for value in published)


def test_a_refusing_broker_costs_the_blocks_not_the_forwarder() -> None:
    worker, forwarder_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    calls: list[bytes] = []

    def publish(value: bytes) -> None:
        calls.append(value)
        if len(calls) == 1:
            raise ConnectionError("refused")

    batcher = prediction_forwarder.Batcher(forwarder_end, publish, linger=0.0)
    reader = threading.Thread(target=batcher.run)
    reader.start()
    framed = prediction_forwarder.frame(answered(1).encode_blocks()[0])
    worker.send(framed)
    wait_for(lambda: len(calls) == 1, "the first message", 10.0)
    worker.send(framed)
    worker.close()
    reader.join(timeout=10.0)
    forwarder_end.close()
    assert (batcher.dropped, batcher.blocks, len(calls)) == (1, 1, 2)


def test_a_killed_forwarder_is_started_again_and_the_log_goes_on(broker: str, tmp_path: Path) -> None:
    log = prediction_log.PredictionLog(broker, "forwarder_predictions")
    try:
        log.record(answered(5, first=0))
        wait_for(lambda: log._forwarder is not None, "the first forwarder", 10.0)
        first = log._forwarder.process
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        sent = 5

        def started_again() -> bool:
            nonlocal sent
            log.record(answered(1, first=sent))
            sent += 1
            forwarder = log._forwarder
            return forwarder is not None and forwarder.process.pid != first.pid

        wait_for(started_again, "another forwarder", 20.0)
        log.record(answered(10, first=1000))
        second = log._forwarder.process
    finally:
        log.close()
    assert second.wait(timeout=20) == 0  # the worker's end closed: it published what it held and exited
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    config = QualityConfig(database_url=url, broker=broker, predictions_topic="forwarder_predictions")

    def stored_the_last_request() -> bool:
        PredictionConsumer(config).run(max_idle_polls=1)
        return {f"{1000 + index:032x}-0" for index in range(10)} <= set(store.request_ids(url))

    wait_for(stored_the_last_request, "the requests after the restart in the database", 60.0)
    assert len(set(store.request_ids(url))) == store.count_predictions(url)


CLIENTS = [client for client in prediction_forwarder.CLIENTS if client != "auto"]


@pytest.mark.parametrize("client", CLIENTS)
def test_with_no_broker_the_forwarder_reads_everything_and_exits_soon_after_its_worker(client: str) -> None:
    """kafka-python waited 30 s for a broker's first answer at each attempt, the socket unread meanwhile:
    a forwarder outlived its worker by minutes. Now an attempt costs `BOOTSTRAP_TIMEOUT_MS` and the next waits
    `RECONNECT_DELAY_S` from the failure's end; librdkafka queues while it tries, and at the worker's exit
    awaits the deliveries for `CLOSE_TIMEOUT_S`."""
    log = prediction_log.Forwarder(f"127.0.0.1:{free_port()}", "nobody_listens", client)  # the real process
    block = [prediction_forwarder.frame(answered(300).encode_blocks()[0])]
    try:
        for _ in range(40):  # several messages' worth, all in the socket before the first attempt ends
            assert log.send(block)
    finally:
        log.close()
    deadline = 3 * prediction_forwarder.BOOTSTRAP_TIMEOUT_MS / 1000 + prediction_forwarder.CLOSE_TIMEOUT_S + 5
    assert log.process.wait(timeout=deadline) == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_publishes_every_block_the_consumer_then_stores(
    client: str, broker: str, tmp_path: Path
) -> None:
    topic = f"predictions_{client.replace('-', '_')}"
    forwarder = prediction_log.Forwarder(broker, topic, client)  # the real process
    requests = [answered(300, first=1000 * index) for index in range(4)]
    try:
        for request in requests:
            for datagram, _rows in prediction_log.datagrams(prediction_log.encode_request_blocks([request])):
                assert forwarder.send(datagram)
    finally:
        forwarder.close()
    assert forwarder.process.wait(timeout=30) == 0  # it published what it held, then exited
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    config = QualityConfig(database_url=url, broker=broker, predictions_topic=topic)
    expected = {request_id for request in requests for request_id in request.request_ids}

    def stored_every_row() -> bool:
        PredictionConsumer(config).run(max_idle_polls=1)
        return set(store.request_ids(url)) == expected

    wait_for(stored_every_row, f"the 1,200 rows {client} published in the database", 60.0)
    assert store.count_predictions(url) == len(expected)


def test_what_librdkafka_could_not_deliver_by_the_close_is_counted() -> None:
    publisher = prediction_forwarder.LibrdkafkaPublisher(f"127.0.0.1:{free_port()}", "nobody_listens")
    block = answered(3).encode_blocks()[0]
    publisher(memoryview(prediction_forwarder.pack_message([block, block, block])))
    publisher(prediction_forwarder.pack_message([block]))
    publisher.close(timeout=0.5)
    assert publisher.undelivered == 4


def test_the_forwarder_prefers_librdkafka_and_falls_back_to_kafka_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chosen = prediction_forwarder.new_publisher("auto", f"127.0.0.1:{free_port()}", "t")
    assert isinstance(chosen, prediction_forwarder.LibrdkafkaPublisher)  # installed: requirements.txt
    chosen.close(timeout=0.0)
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # as in clearml-serving's stock image
    assert isinstance(
        prediction_forwarder.new_publisher("auto", "nowhere:9092", "t"), prediction_forwarder.KafkaPublisher
    )
    with pytest.raises(
        ValueError, match="client: 'rdkafka' is not one of auto, confluent-kafka, kafka-python"
    ):
        prediction_forwarder.new_publisher("rdkafka", "nowhere:9092", "t")


def test_a_failed_connection_is_retried_a_delay_after_the_failure_ends() -> None:
    now = [100.0]
    attempts: list[float] = []
    publisher = prediction_forwarder.KafkaPublisher("nowhere:9092", "t", clock=lambda: now[0])

    def slow_failure() -> None:
        attempts.append(now[0])
        now[0] += 2.0  # the attempt itself takes time
        raise ConnectionError("no broker")

    publisher._new_producer = slow_failure
    for _ in range(2):
        with pytest.raises(ConnectionError):
            publisher(b"value")
    now[0] += prediction_forwarder.RECONNECT_DELAY_S
    with pytest.raises(ConnectionError):
        publisher(b"value")
    assert attempts == [100.0, 102.0 + prediction_forwarder.RECONNECT_DELAY_S]


def test_a_big_request_is_handed_over_at_once_not_at_the_next_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Queued rows reaching `FLUSH_ROWS` wake the flusher: big requests are not held for the interval."""
    monkeypatch.setattr(prediction_log, "FLUSH_INTERVAL_S", 3600.0)
    forwarders: list[RecordingForwarder] = []

    def start(broker: str, topic: str) -> RecordingForwarder:
        forwarders.append(RecordingForwarder(broker, topic))
        return forwarders[-1]

    log = prediction_log.PredictionLog("broker:1", "topic", start_forwarder=start)
    try:
        log.record(answered(prediction_log.FLUSH_ROWS - 1))
        log.record(answered(1, first=10**6))
        wait_for(lambda: forwarders and forwarders[0].sent, "the flusher to hand the rows over", 10.0)
    finally:
        log.close()


def test_every_dropped_row_is_told_to_the_metric() -> None:
    class Refusing(RecordingForwarder):
        def send(self, datagram: list) -> bool:
            return False  # no room in the forwarder's socket

    told: list[int] = []
    log = prediction_log.PredictionLog("broker:1", "topic", start_forwarder=Refusing, on_dropped=told.append)
    log.record(answered(7))
    wait_for(lambda: log.dropped == 7, "the flusher to drop the rows", 10.0)
    log.close()
    assert told == [7]


def test_the_hook_counts_the_logs_drops_in_the_serving_wrappers_metric() -> None:
    from prometheus_client import REGISTRY

    import preprocess_serving

    def dropped() -> float:
        labels = {"what": contract.PREDICTION_LOG_DROPS}
        return REGISTRY.get_sample_value("clearml_serving_hook_dropped_rows_total", labels) or 0.0

    before = dropped()
    preprocess_serving.PREDICTION_LOG._on_dropped(3)
    assert dropped() == before + 3
