"""The one storage layer of the embedded backend: SQLite in WAL mode plus an in-memory document cache.

Documents (tasks, models, projects, queues, workers, ...) are JSON objects keyed by (collection, id). Every
write is committed before the HTTP reply is sent, so an acknowledged write survives a ``kill -9``. Reads are
served from the cache, which is loaded once at start-up: the SDK polls a lot and polling must be cheap.
"""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Document = dict[str, Any]
log = logging.getLogger("clearml_local.storage")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    type TEXT NOT NULL,
    metric TEXT NOT NULL DEFAULT '',
    variant TEXT NOT NULL DEFAULT '',
    iter INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task, type, metric, variant, iter);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Store:
    """Thread-safe document and event store backed by one SQLite file."""

    def __init__(self, path: Path, repair: Callable[[str, Document], Document] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (kill -9); only an OS crash could lose the last commit.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._repair = repair
        self._cache: dict[str, dict[str, Document]] = {}
        self._load_all()
        self._in_transaction = False

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes into one commit (and hold the lock for a read-modify-write)."""
        with self._lock:
            if self._in_transaction:
                yield
                return
            self._db.execute("BEGIN")
            self._in_transaction = True
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (a full disk: SQLITE_FULL) may have rolled back already.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._reload()  # the cache forgets what was not committed
                raise
            finally:
                self._in_transaction = False

    def _load_all(self) -> None:
        """Fill the cache from the database; a record that cannot be read is left out, not fatal."""
        self._cache = {}
        for collection, doc_id, body in self._db.execute("SELECT collection, id, body FROM documents"):
            try:
                doc = json.loads(body)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                if self._repair is not None:
                    doc = self._repair(collection, doc)
            except (ValueError, RecursionError) as exc:
                log.warning("skipping unreadable %s record %s: %s", collection, doc_id, str(exc)[:100])
                continue
            self._cache.setdefault(collection, {})[doc_id] = doc

    def _reload(self) -> None:
        self._load_all()

    # --- documents ----------------------------------------------------------------------------------

    def get(self, collection: str, doc_id: str) -> Document | None:
        """A deep copy of one document, or None."""
        with self._lock:
            doc = self._cache.get(collection, {}).get(doc_id)
            return copy.deepcopy(doc) if doc is not None else None

    def peek(self, collection: str, doc_id: str) -> Document | None:
        """The cached document itself, for reading only. Cached documents are never changed in place
        (``put`` replaces them), so a peeked document stays consistent while it is serialised."""
        return self._cache.get(collection, {}).get(doc_id)

    def all(self, collection: str) -> list[Document]:
        """The cached documents themselves, for filtering; callers copy what they return."""
        with self._lock:
            return list(self._cache.get(collection, {}).values())

    def put(self, collection: str, doc: Document) -> None:
        body = json.dumps(doc, separators=(",", ":"), default=str)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO documents (collection, id, body) VALUES (?, ?, ?)",
                (collection, doc["id"], body),
            )
            self._cache.setdefault(collection, {})[doc["id"]] = json.loads(body)

    def delete(self, collection: str, doc_id: str) -> bool:
        with self._lock:
            self._db.execute("DELETE FROM documents WHERE collection = ? AND id = ?", (collection, doc_id))
            return self._cache.get(collection, {}).pop(doc_id, None) is not None

    # --- events ---------------------------------------------------------------------------------------

    def add_events(self, rows: Iterable[tuple[str, str, str, str, int, int, Document]]) -> int:
        """Insert (task, type, metric, variant, iter, timestamp, body) rows; returns how many."""
        encoded = [(*row[:6], json.dumps(row[6], separators=(",", ":"), default=str)) for row in rows]
        with self._lock:
            self._db.executemany(
                "INSERT INTO events (task, type, metric, variant, iter, timestamp, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                encoded,
            )
        return len(encoded)

    def query_events(
        self,
        task_ids: list[str],
        types: list[str],
        metric: str | None = None,
        variant: str | None = None,
        order: str = "seq",
        limit: int | None = None,
        after_seq: int | None = None,
    ) -> list[tuple[int, Document]]:
        """Events of the given tasks and types as (seq, body), ordered by ``order`` (a fixed SQL clause)."""
        clauses = [
            f"task IN ({','.join('?' * len(task_ids))})",
            f"type IN ({','.join('?' * len(types))})",
        ]
        params: list[Any] = [*task_ids, *types]
        if metric is not None:
            clauses.append("metric = ?")
            params.append(metric)
        if variant is not None:
            clauses.append("variant = ?")
            params.append(variant)
        if after_seq is not None:
            clauses.append("seq > ?" if not order.endswith("DESC") else "seq < ?")
            params.append(after_seq)
        sql = f"SELECT seq, body FROM events WHERE {' AND '.join(clauses)} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [(seq, json.loads(body)) for seq, body in rows]

    def count_events(self, task_id: str, types: list[str] | None = None) -> int:
        sql = "SELECT COUNT(*) FROM events WHERE task = ?"
        params: list[Any] = [task_id]
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            params.extend(types)
        with self._lock:
            return int(self._db.execute(sql, params).fetchone()[0])

    def delete_event_key(
        self, task_id: str, event_type: str, metric: str, variant: str, iteration: int
    ) -> int:
        """Delete a task's events of one type, metric, variant and iteration (which a newer one replaces)."""
        sql = "DELETE FROM events WHERE task = ? AND type = ? AND metric = ? AND variant = ? AND iter = ?"
        with self._lock:
            return self._db.execute(sql, (task_id, event_type, metric, variant, iteration)).rowcount

    def delete_events(self, task_id: str, event_type: str | None = None) -> int:
        sql, params = "DELETE FROM events WHERE task = ?", [task_id]
        if event_type is not None:
            sql += " AND type = ?"
            params.append(event_type)
        with self._lock:
            return self._db.execute(sql, params).rowcount

    # --- settings -------------------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))
