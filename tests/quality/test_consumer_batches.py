"""The consumer's transactions are bounded in bytes as well as in records: a backlog of bulk rows (a record
can hold thousands) must not make one transaction of millions of rows, holding SQLite's write lock for longer
than the label import and readers wait for it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from asteroid.quality import config as quality_config
from asteroid.quality.consumer import PredictionConsumer


class OneRecordAPoll:
    """A Kafka consumer whose polls each return the next of its records."""

    def __init__(self, sizes: list[int]) -> None:
        self.records = [SimpleNamespace(value=bytes(size)) for size in sizes]

    def poll(self, timeout_ms: int, max_records: int) -> dict[str, list[SimpleNamespace]]:
        taken, self.records = self.records[:1], self.records[1:]
        return {"partition": taken} if taken else {}


def test_a_transaction_gathers_records_up_to_the_byte_bound(tmp_path: Path) -> None:
    config = quality_config.QualityConfig(database_url=f"sqlite:///{tmp_path / 'q.db'}", broker="127.0.0.1:1")
    consumer = PredictionConsumer(config)
    record = 1024 * 1024
    kafka = OneRecordAPoll([record] * 10)
    batches = [consumer._gathered(kafka) for _ in range(4)]
    per_batch = -(-quality_config.MAX_BATCH_BYTES // record)
    assert [len(batch) for batch in batches] == [per_batch, per_batch, 10 - 2 * per_batch, 0]
