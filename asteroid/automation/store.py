"""The retrain decisions in the project's SQL database (SQLite by default, PostgreSQL through
`NEO_DATABASE_URL`), in one table created by this module: `automation_decisions`, one row per decision on an
event (an alert, a new dataset version) — launched, suppressed by the cooldown, or a duplicate — and, for a
launch, where it stands: queued (committed before the receiver answers), starting (the launcher was called),
started (with the launcher's reference) or failed (with why)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from asteroid import database

LAUNCHED, COOLDOWN, DUPLICATE = "launched", "cooldown", "duplicate"
QUEUED, STARTING, STARTED, FAILED = "queued", "starting", "started", "failed"

METADATA = sa.MetaData()
DECISIONS = sa.Table(
    "automation_decisions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("decided_at", sa.Float, nullable=False, index=True),  # Unix time
    sa.Column("source", sa.String(16), nullable=False),  # alert | dataset
    # what makes two events the same: an alert's fingerprint and start, a dataset version's id
    sa.Column("event_key", sa.String(255), nullable=False, index=True),
    sa.Column("subject", sa.String(255), nullable=False),  # the alert's name, or the dataset version id
    sa.Column("decision", sa.String(16), nullable=False),  # launched | cooldown | duplicate
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("query_date", sa.String(10)),  # the pipeline's query date, for a launch
    sa.Column("launch_state", sa.String(16)),  # queued | starting | started | failed, for a launch
    sa.Column("launch_ref", sa.String(255)),  # what the launcher started (or why it failed)
    sa.Column("launched_at", sa.Float),
)


@dataclass(frozen=True)
class Event:
    source: str
    key: str
    subject: str


@dataclass(frozen=True)
class Decision:
    id: int
    decided_at: float
    source: str
    event_key: str
    subject: str
    decision: str
    reason: str
    query_date: str | None
    launch_state: str | None
    launch_ref: str | None
    launched_at: float | None

    @property
    def token(self) -> str:
        """The launch's name, unique per decision (the launcher recognises a launch it started by it)."""
        return f"retrain-{self.id}"


def engine(database_url: str) -> Engine:
    """An engine on the database, the decisions table created when missing."""
    created = database.make_engine(database_url)
    METADATA.create_all(created)
    return created


def _decision(row: sa.Row) -> Decision:
    return Decision(**row._mapping)


def was_launched(connection: sa.Connection, event_key: str) -> bool:
    query = sa.select(DECISIONS.c.id).where(
        DECISIONS.c.event_key == event_key, DECISIONS.c.decision == LAUNCHED
    )
    return connection.execute(query.limit(1)).first() is not None


def last_launch_at(connection: sa.Connection) -> float | None:
    query = sa.select(sa.func.max(DECISIONS.c.decided_at)).where(DECISIONS.c.decision == LAUNCHED)
    return connection.execute(query).scalar()


def record(
    connection: sa.Connection, event: Event, decision: str, reason: str, now: float, query_date: str | None
) -> Decision:
    values = {
        "decided_at": now,
        "source": event.source,
        "event_key": event.key[:255],
        "subject": event.subject[:255],
        "decision": decision,
        "reason": reason[:255],
        "query_date": query_date if decision == LAUNCHED else None,
        "launch_state": QUEUED if decision == LAUNCHED else None,
    }
    new_id = connection.execute(DECISIONS.insert().values(**values)).inserted_primary_key[0]
    return get(connection, int(new_id))


def get(connection: sa.Connection, decision_id: int) -> Decision:
    return _decision(connection.execute(sa.select(DECISIONS).where(DECISIONS.c.id == decision_id)).one())


def pending_launches(connection: sa.Connection) -> list[Decision]:
    """Launches decided but not known to have started, oldest first."""
    query = sa.select(DECISIONS).where(DECISIONS.c.launch_state.in_((QUEUED, STARTING)))
    return [_decision(row) for row in connection.execute(query.order_by(DECISIONS.c.id))]


def set_launch_state(
    connection: sa.Connection, decision_id: int, state: str, ref: str | None = None, at: float | None = None
) -> None:
    values: dict[str, object] = {"launch_state": state}
    if ref is not None:
        values["launch_ref"] = ref[:255]
    if at is not None:
        values["launched_at"] = at
    connection.execute(DECISIONS.update().where(DECISIONS.c.id == decision_id).values(**values))


def decisions(connection: sa.Connection, limit: int = 50) -> Sequence[Decision]:
    """The newest ``limit`` decisions, oldest first."""
    query = sa.select(DECISIONS).order_by(DECISIONS.c.id.desc()).limit(limit)
    return list(reversed([_decision(row) for row in connection.execute(query)]))
