"""clearml-serving's statistics sender, replaced by `third_party_patches.send_statistics_in_small_chunks`:
the queued records go out in small messages, in order, in the stock wire format (read back from a real
broker as the stock statistics controller reads them), and the patch switches itself off with one line on
stderr when clearml-serving's code is not what it was written against."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from clearml_serving.serving import model_request_processor as mrp
from kafka.errors import MessageSizeTooLargeError

import third_party_patches
from tests.backend.backend_harness import wait_for
from tests.code.test_third_party_patches import original, switched_off_line
from tests.quality.conftest import broker  # noqa: F401  (a Tansu broker on a free port)
from third_party_patches import STATISTICS_CHUNK_RECORDS, ChunkedStatisticsSender

Processor = mrp.ModelRequestProcessor


@pytest.fixture
def stock_sender(monkeypatch: pytest.MonkeyPatch) -> Any:
    """clearml-serving's own ``_stats_send_loop`` for one test, whatever was installed before; restored."""
    stock = original(Processor._stats_send_loop)
    monkeypatch.setattr(Processor, "_stats_send_loop", stock)
    return stock


def records(count: int) -> list[dict[str, Any]]:
    """Records shaped as the stock processor queues them (latency, count, url, a custom statistic)."""
    return [{"_latency": 0.001 * (i % 7), "_count": 1, "_url": "test/1", "x0": i} for i in range(count)]


def queue_of(items: list[dict[str, Any]]) -> Any:
    queue = mrp.FastSimpleQueue()
    for item in items:
        queue.put(item, block=False)
    return queue


def test_queued_records_go_out_in_order_in_bounded_chunks() -> None:
    queued = records(2 * STATISTICS_CHUNK_RECORDS + 7)
    queue = queue_of(queued)
    sent: list[list[dict[str, Any]]] = []
    sender = ChunkedStatisticsSender(lambda: queue.get(block=False), sent.append)
    assert sender.send_queued() == len(queued)
    assert [len(chunk) for chunk in sent] == [STATISTICS_CHUNK_RECORDS, STATISTICS_CHUNK_RECORDS, 7]
    assert [record for chunk in sent for record in chunk] == queued
    assert sender.send_queued() == 0 and len(sent) == 3  # nothing queued: nothing sent


def test_the_sender_waits_its_period_between_rounds() -> None:
    queue = queue_of(records(3))
    sent: list[list[dict[str, Any]]] = []
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            queue.put(records(1)[0], block=False)  # queued by a request meanwhile
        else:
            raise StopIteration  # ends run_forever for the test

    sender = ChunkedStatisticsSender(lambda: queue.get(block=False), sent.append, period_s=0.25, sleep=sleep)
    with pytest.raises(StopIteration):
        sender.run_forever()
    assert naps == [0.25, 0.25] and [len(chunk) for chunk in sent] == [3, 1]


def test_a_message_too_large_for_the_broker_is_split_in_halves(capsys: pytest.CaptureFixture[str]) -> None:
    delivered: list[list[Any]] = []

    class Producer:
        def send(self, topic: str, value: list[Any]) -> Any:
            if len(value) > 3:
                raise MessageSizeTooLargeError("too large")
            delivered.append(value)
            return SimpleNamespace(get=lambda timeout: None)

    items = records(10)
    third_party_patches._send_records(Producer(), "topic", items)
    assert [record for chunk in delivered for record in chunk] == items
    assert max(len(chunk) for chunk in delivered) <= 3
    assert capsys.readouterr().out == ""


def test_the_patched_loop_delivers_stock_wire_format_messages_through_a_broker(
    broker: str,  # noqa: F811
    stock_sender: Any,
) -> None:
    from kafka import KafkaConsumer

    assert third_party_patches.send_statistics_in_small_chunks()
    consumer = KafkaConsumer(Processor._kafka_topic, bootstrap_servers=broker)
    try:
        wait_for(lambda: consumer.poll(timeout_ms=100) == {} and bool(consumer.assignment()), "assigned", 30)
        processor = SimpleNamespace(
            _kafka_stats_url=broker, _stats_queue=mrp.FastSimpleQueue(), _kafka_topic=Processor._kafka_topic
        )
        threading.Thread(target=Processor._stats_send_loop, args=(processor,), daemon=True).start()
        queued = records(3 * STATISTICS_CHUNK_RECORDS)
        for record in queued:
            processor._stats_queue.put(record, block=False)
        messages: list[list[Any]] = []

        def received() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                messages.extend(json.loads(record.value.decode("utf-8")) for record in batch)
            return sum(len(message) for message in messages) >= len(queued)

        wait_for(received, "the queued records on the broker", 30, 0.1)
        assert all(isinstance(message, list) for message in messages)
        assert max(len(message) for message in messages) <= STATISTICS_CHUNK_RECORDS
        # each message is a run of the queue in order; messages may arrive in another order (the topic has
        # several partitions, as for the stock sender: the controller does not depend on the order)
        messages.sort(key=lambda message: message[0]["x0"])
        assert [record for message in messages for record in message] == queued
    finally:
        consumer.close()


# --- switched off when clearml-serving changed -----------------------------------------------------------


def test_installing_the_sender_twice_changes_nothing(stock_sender: Any) -> None:
    assert third_party_patches.send_statistics_in_small_chunks()
    installed = Processor._stats_send_loop
    assert installed is not stock_sender and original(installed) is stock_sender
    assert third_party_patches.send_statistics_in_small_chunks()
    assert Processor._stats_send_loop is installed


def test_the_sender_switches_off_when_the_stock_loop_changed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stock_sender: Any
) -> None:
    label = "clearml-serving ModelRequestProcessor._stats_send_loop"
    monkeypatch.setitem(third_party_patches.FINGERPRINTS, label, "0" * 16)
    assert not third_party_patches.send_statistics_in_small_chunks()
    assert f"{label} changed" in switched_off_line(capsys, "send_statistics_in_small_chunks")
    assert Processor._stats_send_loop is stock_sender


def test_the_sender_switches_off_when_the_queue_takes_other_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stock_sender: Any
) -> None:
    def get(self: Any, block: bool = True, timeout: float | None = None) -> Any:
        raise AssertionError("not called")

    monkeypatch.setattr(mrp.FastSimpleQueue, "get", get)
    assert not third_party_patches.send_statistics_in_small_chunks()
    line = switched_off_line(capsys, "send_statistics_in_small_chunks")
    assert "FastSimpleQueue.get takes ('block', 'timeout')" in line
    assert Processor._stats_send_loop is stock_sender


def test_the_sender_switches_off_when_launch_no_longer_starts_the_loop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stock_sender: Any
) -> None:
    def launch(self: Any, poll_frequency_sec: float = 300) -> None:
        threading.Thread(target=self._send_statistics, daemon=True).start()

    monkeypatch.setattr(Processor, "launch", launch)
    assert not third_party_patches.send_statistics_in_small_chunks()
    assert "launch no longer starts _stats_send_loop" in switched_off_line(
        capsys, "send_statistics_in_small_chunks"
    )
    assert Processor._stats_send_loop is stock_sender


def test_the_sender_switches_off_without_the_kafka_topic(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stock_sender: Any
) -> None:
    monkeypatch.delattr(Processor, "_kafka_topic")
    assert not third_party_patches.send_statistics_in_small_chunks()
    assert "no _kafka_topic" in switched_off_line(capsys, "send_statistics_in_small_chunks")
    assert Processor._stats_send_loop is stock_sender
