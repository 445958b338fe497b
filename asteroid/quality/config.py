"""Configuration of the live-quality parts: topics, database, retention. Names the served contract shares
with the hook (request id field, predictions topic) are the release contract's (asteroid/serving/contract.py);
everything here is read from the environment once, by `QualityConfig.from_env()`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from asteroid.serving import contract

DATABASE_URL_ENV = "NEO_DATABASE_URL"
BROKER_ENV = "ASTEROID_QUALITY_BROKER"  # else clearml-serving's own variable, else the running stack's broker
RETENTION_DAYS_ENV = "ASTEROID_QUALITY_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30.0
FEEDBACK_TOPIC = "asteroid_feedback"
FEEDBACK_TOPIC_ENV = "ASTEROID_FEEDBACK_TOPIC"
UNMATCHED_KEEP_DAYS_ENV = "ASTEROID_QUALITY_UNMATCHED_KEEP_DAYS"
# A label whose request id matches no stored prediction is kept this long (it may arrive before its
# prediction is stored, or name an id from a mistake), counted as unmatched, then deleted.
DEFAULT_UNMATCHED_KEEP_DAYS = 7.0
# Model metadata training records with each registered model (asteroid/steps/model_training.py): the live
# quality alerts fire below these minus a margin (asteroid/quality/rules.py).
TEST_ACCURACY_KEY = "test_accuracy"
TEST_RECALL_KEY = "test_recall"
# Port of the consumer's exporter when the serving stack runs it (serve.py); unset or 0: a free port, found
# through serving_local.api.running_stack().part_urls.
METRICS_PORT_ENV = "ASTEROID_QUALITY_METRICS_PORT"
MAX_LABEL_ROWS = 10_000  # labels one feedback request may carry
# How often the consumer deletes predictions older than the retention (and on start).
PRUNE_EVERY_S = 600.0
# Most records the consumer stores in one database transaction ...
MAX_BATCH_RECORDS = 2000
# ... and about the most bytes of them (a record may hold thousands of rows: 4 MiB is ~27,000 rows of Arrow
# batches, ~17,000 single rows). A transaction holds SQLite's write lock, which the label import and readers
# wait for (5 s at most by default): with records alone bounding it, a backlog of bulk rows made transactions
# of millions of rows and the readers failed ("database is locked").
MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class QualityConfig:
    database_url: str
    broker: str | None
    predictions_topic: str = contract.PREDICTIONS_TOPIC
    retention_days: float = DEFAULT_RETENTION_DAYS
    feedback_topic: str = FEEDBACK_TOPIC
    unmatched_keep_days: float = DEFAULT_UNMATCHED_KEEP_DAYS

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0

    @property
    def unmatched_keep_seconds(self) -> float:
        return self.unmatched_keep_days * 86400.0

    @classmethod
    def from_env(cls) -> QualityConfig:
        return cls(
            database_url=os.environ.get(DATABASE_URL_ENV) or _default_database_url(),
            broker=broker_from_env(),
            predictions_topic=os.environ.get(contract.PREDICTIONS_TOPIC_ENV) or contract.PREDICTIONS_TOPIC,
            retention_days=_days(RETENTION_DAYS_ENV, DEFAULT_RETENTION_DAYS),
            feedback_topic=feedback_topic_from_env(),
            unmatched_keep_days=_days(UNMATCHED_KEEP_DAYS_ENV, DEFAULT_UNMATCHED_KEEP_DAYS),
        )


def broker_from_env() -> str | None:
    return os.environ.get(BROKER_ENV) or os.environ.get(contract.BROKER_ENV) or None


def metrics_port_from_env() -> int:
    raw = os.environ.get(METRICS_PORT_ENV) or "0"
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"{METRICS_PORT_ENV} must be a TCP port (0: a free one), got {raw!r}")
    return port


def feedback_topic_from_env() -> str:
    return os.environ.get(FEEDBACK_TOPIC_ENV) or FEEDBACK_TOPIC


def _days(name: str, default: float) -> float:
    raw = os.environ.get(name)
    days = float(raw) if raw else default
    if not days > 0:
        raise ValueError(f"{name} must be a positive number of days, got {raw!r}")
    return days


def _default_database_url() -> str:
    import global_config

    return global_config.DATABASE_URL
