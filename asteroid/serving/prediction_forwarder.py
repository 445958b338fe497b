"""The prediction log's forwarder: a process of its own beside each inference worker that publishes what the
worker hands it to the predictions topic, so that Kafka's client (kafka-python's Python-level protocol work)
never runs in the worker and never holds its GIL.

The worker (asteroid/serving/prediction_log.py) encodes the requests answered meanwhile into blocks every
`prediction_log.FLUSH_INTERVAL_S`, or once `prediction_log.FLUSH_ROWS` rows are queued, and writes them,
framed (`FRAME`), as datagrams into its end of a `SOCK_SEQPACKET` socket pair (message boundaries kept by
the kernel); this process reads datagrams until the worker closes its end (or dies), straight into the
message it gathers from those of up to `LINGER_S`, one Kafka message of at most
`MAX_MESSAGE_BYTES` and sends it. SIGTERM and SIGINT are ignored: the worker's exit (its end closed) is the
signal to send what is left and stop, so a stack stopping its process group loses nothing in between. It runs
`BACKGROUND_NICENESS` lower than the worker.

It publishes with confluent-kafka (librdkafka: the protocol work in C threads) where that is installed, as in
the project's inference image and its requirements, else with kafka-python (clearml-serving's own dependency:
its stock image has it), which checksums with the `crc32c` package (C) where that is installed. This
process's CPU per 1,000-row Arrow request (153 KB), measured in a stack: 0.30-0.33 ms with kafka-python,
0.13-0.16 ms with confluent-kafka (docs/notes/prediction-log-cost.md).

The message's framing is defined here once (`pack_message`, `unpack_message`); the consumer
(asteroid/quality/store.py) reads it. This file travels in the hook folder and runs as a script by its path:
standard library and one of the two Kafka clients only.

    python prediction_forwarder.py --fd N --broker host:port --topic T [--client C]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

MAGIC = b"APL\x01"  # the message format's name and version
FRAME = struct.Struct("<I")  # each block of a message is preceded by its length
MAX_BLOCK_BYTES = 64 * 1024  # the worker splits larger requests into blocks of at most this size
MAX_DATAGRAM_BYTES = MAX_BLOCK_BYTES + FRAME.size  # framed blocks the worker sends in one datagram
MAX_MESSAGE_BYTES = 512 * 1024  # below the broker's and the client's 1 MiB message limits
LINGER_S = 0.01  # after a datagram arrives, further ones are awaited this long to share its message
RECONNECT_DELAY_S = 1.0  # after the broker refused a message, blocks are dropped this long
# How long a new producer waits for the broker's first answer (kafka-python's default, 30 s, kept the socket
# unread for that long at each attempt: a forwarder outlived its worker by minutes when no broker answered).
BOOTSTRAP_TIMEOUT_MS = 2000
# Niceness added to the log's processes off the request path (this forwarder, the consumer): on a machine
# whose cores the workers fill they yield to the workers and catch up when there is room (measured:
# docs/notes/prediction-log-cost.md). In production they run apart from the workers anyway.
BACKGROUND_NICENESS = 10
# librdkafka's own buffer of messages not yet delivered (its default is 1 GiB): when it is full, as while the
# broker is away, further messages are counted as dropped at once instead of growing this process.
MAX_QUEUED_KBYTES = 64 * 1024
# how long librdkafka keeps trying to deliver a message before it counts it as dropped
DELIVERY_TIMEOUT_MS = 30_000
CLOSE_TIMEOUT_S = 10.0  # at the worker's exit, what is still undelivered is awaited this long
CLIENTS = ("auto", "confluent-kafka", "kafka-python")


def frame(block: bytes) -> bytes:
    return FRAME.pack(len(block)) + block


def frame_count(framed: bytes | memoryview) -> int:
    """How many framed blocks a datagram holds (without checking them)."""
    count, position = 0, 0
    while position + FRAME.size <= len(framed):
        position += FRAME.size + FRAME.unpack_from(framed, position)[0]
        count += 1
    return count


def pack_message(blocks: list[bytes]) -> bytes:
    return MAGIC + b"".join(map(frame, blocks))


def unpack_message(value: bytes) -> list[bytes]:
    """The blocks of a message; ValueError when it is not one."""
    if not value.startswith(MAGIC):
        raise ValueError(f"not a prediction log message (starts with {value[:4]!r})")
    blocks, position = [], len(MAGIC)
    while position < len(value):
        if position + FRAME.size > len(value):
            raise ValueError("a truncated frame length")
        (length,) = FRAME.unpack_from(value, position)
        position += FRAME.size
        if position + length > len(value):
            raise ValueError(f"a frame of {length} bytes runs past the message's end")
        blocks.append(value[position : position + length])
        position += length
    return blocks


class Batcher:
    """Reads datagrams of framed blocks from the worker's socket and hands them on in messages
    (`publish(value)`: a view of this batcher's buffer, valid until `publish` returns — each publisher
    copies it). Datagrams are received straight into the message being gathered: no copy of
    them in this process."""

    def __init__(
        self,
        connection: socket.socket,
        publish: Callable[[memoryview], None],
        linger: float = LINGER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection = connection
        self.publish = publish
        self.linger = linger
        self.clock = clock
        self.blocks = 0
        self.dropped = 0
        self._failing = 0  # blocks lost since the last message the broker took
        # room for a message and, after its last datagram, twice the largest one: a datagram larger than the
        # room left would be cut short by the kernel without a word
        self._message = bytearray(MAX_MESSAGE_BYTES + 2 * MAX_DATAGRAM_BYTES)
        self._message[: len(MAGIC)] = MAGIC
        self._view = memoryview(self._message)

    def run(self) -> None:
        """Until the worker closes its end; the last message is published before it returns."""
        while True:
            self.connection.settimeout(None)
            end = self._receive(len(MAGIC))
            if end is None:
                return
            closed = False
            deadline = self.clock() + self.linger
            while end < MAX_MESSAGE_BYTES - MAX_DATAGRAM_BYTES and (left := deadline - self.clock()) > 0:
                self.connection.settimeout(left)
                try:
                    received = self._receive(end)
                except TimeoutError:
                    break
                if received is None:
                    closed = True
                    break
                end = received
            self._publish(end)
            if closed:
                return

    def _receive(self, start: int) -> int | None:
        """The next datagram into the message from `start`: where it ends, None once the worker closed its
        end."""
        received = self.connection.recv_into(self._view[start:])
        return start + received if received else None

    def _publish(self, end: int) -> None:
        message = self._view[:end]
        blocks = frame_count(message[len(MAGIC) :])
        try:
            self.publish(message)
        except Exception as exc:  # a broker that refuses must not stop the reading: count and go on
            if not self._failing:  # once per outage, not per message
                print(f"prediction log: blocks not published: {exc}", file=sys.stderr, flush=True)
            self._failing += blocks
            self.dropped += blocks
        else:
            if self._failing:
                print(f"prediction log: publishing again ({self._failing} block(s) lost)", file=sys.stderr,
                      flush=True)  # fmt: skip
            self._failing = 0
            self.blocks += blocks


class KafkaPublisher:
    """kafka-python's producer, created on first use and again after a failure (not sooner than
    `RECONNECT_DELAY_S` later: until then messages are refused at once, the socket keeps being read)."""

    def __init__(self, broker: str, topic: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.broker, self.topic, self.clock = broker, topic, clock
        self._producer = None
        self._retry_at = float("-inf")

    def __call__(self, value: bytes | memoryview) -> None:
        if self._producer is None and self.clock() < self._retry_at:
            raise ConnectionError(f"no connection to the broker at {self.broker} (retrying)")
        try:
            if self._producer is None:
                self._producer = self._new_producer()
            self._producer.send(self.topic, value=value)
        except Exception:
            self.close(timeout=0.0)
            self._retry_at = self.clock() + RECONNECT_DELAY_S  # from the failure's end, not its start
            raise

    def _new_producer(self) -> Any:
        from kafka import KafkaProducer

        # max_block_ms: a broker that does not answer makes send() fail in a second, not a minute.
        # bootstrap_timeout_ms is kafka-python 3's; clearml-serving's image pins 2.0 (<2.1), which refuses
        # options it does not know and already gives up after its api_version_auto_timeout_ms (2 s).
        known = KafkaProducer.DEFAULT_CONFIG
        bootstrap = {"bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS} if "bootstrap_timeout_ms" in known else {}
        return KafkaProducer(
            bootstrap_servers=self.broker, acks=1, retries=5, linger_ms=5, max_block_ms=1000, **bootstrap
        )

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(timeout=timeout)
            producer.close(timeout=timeout)


class LibrdkafkaPublisher:
    """confluent-kafka's producer: `__call__` queues the message in librdkafka, whose own threads deliver it;
    a message it could not queue raises (the batcher counts its blocks), one it could not deliver within
    `DELIVERY_TIMEOUT_MS` is counted in `undelivered` (blocks)."""

    def __init__(self, broker: str, topic: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.undelivered = 0
        self._unreported = 0  # blocks queued whose delivery librdkafka has not reported yet
        settings = {"bootstrap.servers": broker, "acks": 1, "linger.ms": 5}
        settings["message.timeout.ms"] = DELIVERY_TIMEOUT_MS
        settings["queue.buffering.max.kbytes"] = MAX_QUEUED_KBYTES
        self._producer = Producer(settings)

    def __call__(self, value: bytes | memoryview) -> None:
        blocks = frame_count(memoryview(value)[len(MAGIC) :])
        # bytes: the view is the batcher's buffer, reused as soon as this returns (librdkafka copies it again)
        self._producer.produce(self.topic, value=bytes(value), on_delivery=self._delivered(blocks))
        self._unreported += blocks
        self._producer.poll(0)  # reports the deliveries done meanwhile

    def _delivered(self, blocks: int) -> Callable[[Any, Any], None]:
        def report(error: Any, _message: Any) -> None:
            self._unreported -= blocks
            if error is not None:
                if not self.undelivered:
                    print(f"prediction log: blocks not delivered: {error}", file=sys.stderr, flush=True)
                self.undelivered += blocks

        return report

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Awaits the deliveries for at most `timeout` seconds; what is left counts as undelivered."""
        self._producer.flush(timeout)
        self.undelivered += self._unreported
        self._unreported = 0
        self._producer = None  # destroyed now (its threads stop), not whenever the collector gets to it


def new_publisher(client: str, broker: str, topic: str) -> LibrdkafkaPublisher | KafkaPublisher:
    """The publisher of `client` (one of `CLIENTS`); `auto`: confluent-kafka where it is installed."""
    if client == "auto":
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            client = "kafka-python"
        else:
            client = "confluent-kafka"
    if client == "confluent-kafka":
        return LibrdkafkaPublisher(broker, topic)
    if client == "kafka-python":
        return KafkaPublisher(broker, topic)
    raise ValueError(f"client: {client!r} is not one of {', '.join(CLIENTS)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fd", type=int, required=True, help="this process's end of the socket pair")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--client", choices=CLIENTS, default="auto", help="default: %(default)s")
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    os.nice(BACKGROUND_NICENESS)
    connection = socket.socket(fileno=args.fd)
    publisher = new_publisher(args.client, args.broker, args.topic)
    batcher = Batcher(connection, publisher)
    try:
        batcher.run()
    finally:
        publisher.close()
        connection.close()
    lost = batcher.dropped + getattr(publisher, "undelivered", 0)
    if lost:
        print(f"prediction log: {lost} block(s) not published", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
