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
# How often the consumer deletes predictions older than the retention (and on start).
PRUNE_EVERY_S = 600.0
# Most records the consumer stores in one database transaction.
MAX_BATCH_RECORDS = 2000


@dataclass(frozen=True)
class QualityConfig:
    database_url: str
    broker: str | None
    predictions_topic: str = contract.PREDICTIONS_TOPIC
    retention_days: float = DEFAULT_RETENTION_DAYS

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0

    @classmethod
    def from_env(cls) -> QualityConfig:
        retention = os.environ.get(RETENTION_DAYS_ENV)
        days = float(retention) if retention else DEFAULT_RETENTION_DAYS
        if not days > 0:
            raise ValueError(f"{RETENTION_DAYS_ENV} must be a positive number of days, got {retention!r}")
        return cls(
            database_url=os.environ.get(DATABASE_URL_ENV) or _default_database_url(),
            broker=os.environ.get(BROKER_ENV) or os.environ.get(contract.BROKER_ENV) or None,
            predictions_topic=os.environ.get(contract.PREDICTIONS_TOPIC_ENV) or contract.PREDICTIONS_TOPIC,
            retention_days=days,
        )


def _default_database_url() -> str:
    import global_config

    return global_config.DATABASE_URL
