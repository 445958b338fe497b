"""The prediction log's consumer: reads the predictions and feedback topics and stores each prediction and
label once.

Exactly-once storage without the broker's consumer groups: the consumer assigns itself every partition of
the topic and positions each at the offset stored in the database (`quality_offsets`), or at the beginning.
Each poll's records are inserted and the partitions' next offsets written in one database transaction, so a
crash (even `kill -9`) before the commit re-reads the batch and one after it skips it; the request id as
primary key makes a re-read harmless anyway. Why not group offsets: the offsets then live beside the rows
they account for (one commit, not two to order), and a consumer with a `group_id` received nothing within
15 s from the local broker (Tansu 0.6; /work/shared notes), while assignment works at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asteroid.quality import store
from asteroid.quality.config import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    PRUNE_EVERY_S,
    QualityConfig,
    metrics_port_from_env,
)
from asteroid.serving import prediction_forwarder

if TYPE_CHECKING:
    from serving_local.api import ExtraPart

POLL_TIMEOUT_MS = 500
# After a poll that found records, further polls gather more this long before their one transaction: a
# commit per forwarder's message (several a second) was most of the consumer's work besides Kafka's
# checksums (docs/notes/prediction-log-cost.md).
GATHER_S = 1.0
SCRAPE_TARGET = "asteroid-quality"  # the exporter's name among the stack's scrape targets
TOPIC_PARTITIONS = 4  # partitions of the topic when the consumer creates it (the broker's default here)
TOPIC_WAIT_S = 30.0


@dataclass
class ConsumerStats:
    consumed: int = 0
    stored: int = 0
    labels: int = 0
    rejected: int = 0
    pruned: int = 0
    errors: list[str] = field(default_factory=list)


class PredictionConsumer:
    """Stores the predictions topic into the database until `stop()` (or `run(max_idle_polls=...)`)."""

    def __init__(self, config: QualityConfig, clock: Callable[[], float] = time.time) -> None:
        if not config.broker:
            raise ValueError("no broker: set ASTEROID_QUALITY_BROKER or start the serving stack")
        self.config = config
        self.clock = clock
        self.engine = store.engine(config.database_url)
        self.stats = ConsumerStats()
        self._stop = threading.Event()
        self._last_prune = float("-inf")

    def stop(self) -> None:
        self._stop.set()

    def run(self, max_idle_polls: int | None = None) -> ConsumerStats:
        """Consume until stopped; with `max_idle_polls`, also return after that many empty polls in a row."""
        consumer = self._positioned_consumer()
        idle = 0
        try:
            while not self._stop.is_set():
                self._prune_when_due()
                batch = self._gathered(consumer)
                if not batch:
                    idle += 1
                    if max_idle_polls is not None and idle >= max_idle_polls:
                        break
                    continue
                idle = 0
                self._store(batch)
        finally:
            consumer.close()
        return self.stats

    def _gathered(self, consumer: Any) -> list[Any]:
        """The records of a poll and of the polls `GATHER_S` after it, until `MAX_BATCH_RECORDS` or
        `MAX_BATCH_BYTES` (one poll may pass the latter): one transaction, one commit, for them all rather
        than one for each forwarder's message."""
        batch = _records(consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_BATCH_RECORDS))
        size = _size(batch)
        deadline = time.monotonic() + GATHER_S
        while batch and len(batch) < MAX_BATCH_RECORDS and size < MAX_BATCH_BYTES and not self._stop.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            polled = _records(consumer.poll(timeout_ms=left_ms, max_records=MAX_BATCH_RECORDS - len(batch)))
            batch += polled
            size += _size(polled)
        return batch

    def _positioned_consumer(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        topics = (self.config.predictions_topic, self.config.feedback_topic)
        # earliest: a broker restarted with empty storage (Tansu keeps it in memory) starts its offsets over
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.broker, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        assigned: list[Any] = []
        offsets: dict[tuple[str, int], int] = {}
        for topic in topics:
            partitions = _partitions(consumer, self.config.broker, topic)
            assigned += [TopicPartition(topic, partition) for partition in sorted(partitions)]
            with self.engine.connect() as connection:
                stored = store.stored_offsets(connection, topic)
            offsets.update({(topic, partition): offset for partition, offset in stored.items()})
        consumer.assign(assigned)
        for partition in assigned:
            offset = offsets.get((partition.topic, partition.partition))
            if offset is None:
                consumer.seek_to_beginning(partition)
            else:
                consumer.seek(partition, offset)
        return consumer

    def _store(self, batch: list[Any]) -> None:
        predictions: list[tuple[Any, ...]] = []  # rows of store.PREDICTIONS
        labels: list[store.LabelRecord] = []
        next_offsets: dict[tuple[str, int], int] = {}
        for record in batch:
            key = (record.topic, record.partition)
            next_offsets[key] = max(next_offsets.get(key, 0), record.offset + 1)
            try:
                if record.topic == self.config.feedback_topic:
                    labels.append(store.LabelRecord.from_message(record.value))
                else:
                    predictions += store.prediction_rows(record.value)
            except store.RecordError as exc:
                self.stats.rejected += 1
                self._report(f"{record.topic} partition {record.partition} offset {record.offset}: {exc}")
        with self.engine.begin() as connection:
            store.store_labels(connection, labels)
            self.stats.stored += store.store_rows(connection, predictions, next_offsets)
        self.stats.labels += len(labels)
        self.stats.consumed += len(batch)

    def _prune_when_due(self) -> None:
        now = self.clock()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        with self.engine.begin() as connection:
            self.stats.pruned += store.prune(connection, now - self.config.retention_seconds)
            store.prune_unmatched(connection, now - self.config.unmatched_keep_seconds)

    def _report(self, problem: str) -> None:
        self.stats.errors = [*self.stats.errors[-99:], problem]
        print(f"prediction log: {problem}", file=sys.stderr, flush=True)


def _records(polled: dict[Any, list[Any]]) -> list[Any]:
    return [record for partition_records in polled.values() for record in partition_records]


def _size(records: list[Any]) -> int:
    return sum(len(record.value or b"") for record in records)


def _partitions(consumer: Any, broker: str, topic: str) -> set[int]:
    """The topic's partitions, the topic created when it does not exist yet."""
    partitions = consumer.partitions_for_topic(topic)
    if partitions:
        return set(partitions)
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.create_topics([NewTopic(topic, TOPIC_PARTITIONS, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    deadline = time.monotonic() + TOPIC_WAIT_S
    while time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)  # refreshes the metadata
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
    raise RuntimeError(f"topic {topic!r} has no partitions on {broker} after {TOPIC_WAIT_S:.0f} s")


def serve_metrics(consumer: PredictionConsumer, host: str, port: int) -> None:
    """The live quality figures (asteroid/quality/metrics.py) on `http://host:port/metrics`, over the
    monitoring window of the alert rules."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    from asteroid.monitoring import config as monitoring_config
    from asteroid.quality.metrics import QualityCollector
    from serving_local.api import start_metrics_server

    window = monitoring_config.seconds(monitoring_config.load().window)
    registry = CollectorRegistry()
    registry.register(QualityCollector(consumer.engine, window, consumer.clock))
    ProcessCollector(registry=registry)  # its CPU and memory (AsteroidServingCPUHigh / MemoryHigh)
    start_metrics_server(port, addr=host, registry=registry)  # answers only its own Host names


def run_forever(
    config: QualityConfig, metrics_port: int | None = None, host: str = "127.0.0.1", register: bool = True
) -> int:
    """`python -m asteroid.quality consume`: until SIGTERM or SIGINT. With `register`, a running local
    stack's Prometheus is told to scrape the metrics (the stack does it itself for its part, `stack_part`)."""
    os.nice(prediction_forwarder.BACKGROUND_NICENESS)  # off the request path: the workers win the cores
    consumer = PredictionConsumer(config)
    register = bool(metrics_port) and register
    if metrics_port:
        serve_metrics(consumer, host, metrics_port)
        print(f"live quality metrics: http://{host}:{metrics_port}/metrics", flush=True)
    if register:
        from serving_local.api import register_scrape_target, remove_scrape_target

        if register_scrape_target(SCRAPE_TARGET, f"{host}:{metrics_port}"):
            print("  scraped by the running serving stack's Prometheus", flush=True)
    from asteroid.quality import scalars

    stop_scalars = scalars.start_reporting(consumer.engine, consumer.clock)  # ClearML scalars of the figures
    try:
        return _consume(consumer, config)
    finally:
        if stop_scalars:
            stop_scalars.set()
        if register:
            remove_scrape_target(SCRAPE_TARGET)


def stack_part() -> ExtraPart:
    """The consumer and its exporter as a part of the local serving stack (`serving_local.api.ExtraPart`):
    started after the broker, restarted with the stack's backoff, scraped by its Prometheus, on the port
    `METRICS_PORT_ENV` names (default: a free one); its URL is `running_stack().part_urls[SCRAPE_TARGET]`.
    The broker reaches it as clearml-serving's variable, the database as `NEO_DATABASE_URL` or the default."""
    from serving_local.api import ExtraPart

    command = ("-m", "asteroid.quality", "consume", "--metrics-host", "{host}", "--metrics-port", "{port}")
    return ExtraPart(
        name=SCRAPE_TARGET,
        command=(sys.executable, *command, "--scraped-by-stack"),
        env={"PYTHONUNBUFFERED": "1"},
        port=metrics_port_from_env(),
        ready_path="/metrics",
        scrape=True,
    )


def _consume(consumer: PredictionConsumer, config: QualityConfig) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: consumer.stop())
    print(
        f"prediction log: {config.predictions_topic} on {config.broker} -> database, "
        f"retention {config.retention_days:g} days",
        flush=True,
    )
    stats = consumer.run()
    summary = f"consumed {stats.consumed}, stored {stats.stored}, pruned {stats.pruned}"
    print(f"prediction log: {summary}", flush=True)
    return 0
