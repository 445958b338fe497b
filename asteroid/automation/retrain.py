"""The retrain rules, and the launches they decide.

An event (an alert, a new dataset version) launches the pipeline unless an equal event already launched it
(duplicate: the same alert fingerprint and start, the same dataset version) or a launch happened less than
the cooldown ago (cooldown; whatever asked for it: a retrain's own new dataset version does not start a
second one). Every decision is committed before `submit` returns, a launch as "queued"; the launch worker then
starts it through a launcher and records what it started. A launch the worker had begun when the process died
is recognised on restart by its token (the launcher's `started`), so each queued launch starts exactly once.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import sqlalchemy as sa

from asteroid.automation import store
from asteroid.automation.store import COOLDOWN, DUPLICATE, LAUNCHED, Decision, Event


class Launcher(Protocol):
    def launch(self, token: str, query_date: str) -> str:
        """Start the pipeline; a reference to what was started. OSError when it cannot start."""
        ...

    def started(self, token: str) -> str | None:
        """The reference of the launch named ``token`` when it was started (by this or an earlier process)."""
        ...


def rule(already_launched: bool, last_launch: float | None, now: float, cooldown_seconds: float) -> str:
    """The decision on one event."""
    if already_launched:
        return DUPLICATE
    if last_launch is not None and now - last_launch < cooldown_seconds:
        return COOLDOWN
    return LAUNCHED


def reason_for(decision: str, last_launch: float | None, now: float, cooldown_seconds: float) -> str:
    if decision == DUPLICATE:
        return "this event already launched a retrain"
    if decision == COOLDOWN:
        left = cooldown_seconds - (now - (last_launch or now))
        return f"a retrain launched {now - (last_launch or now):.0f} s ago; cooldown {left:.0f} s more"
    return "retrain launched"


def utc_day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()


class Retrainer:
    """Decides on events (thread-safe) and starts the launches it decided, in a worker thread."""

    def __init__(
        self,
        engine: sa.Engine,
        launcher: Launcher,
        cooldown_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 5.0,
    ) -> None:
        self.engine, self.launcher, self.cooldown_seconds = engine, launcher, cooldown_seconds
        self.clock, self.poll_seconds = clock, poll_seconds
        self._lock = threading.Lock()  # one decision at a time: the cooldown reads the last launch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, events: Sequence[Event]) -> list[Decision]:
        """Decide on each event in order and commit the decisions (launches queued) before returning."""
        with self._lock, self.engine.begin() as connection:
            decided = [self._decide(connection, event) for event in events]
        if any(d.decision == LAUNCHED for d in decided):
            self._wake.set()
        return decided

    def _decide(self, connection: sa.Connection, event: Event) -> Decision:
        now = self.clock()
        last = store.last_launch_at(connection)
        decision = rule(store.was_launched(connection, event.key), last, now, self.cooldown_seconds)
        reason = reason_for(decision, last, now, self.cooldown_seconds)
        return store.record(connection, event, decision, reason, now, utc_day(now))

    def start_pending(self) -> list[Decision]:
        """Start every queued launch (and finish any a dead process had begun); the launches handled."""
        with self.engine.connect() as connection:
            pending = store.pending_launches(connection)
        for decision in pending:
            self._start(decision)
        return pending

    def _start(self, decision: Decision) -> None:
        if decision.launch_state == store.STARTING:
            ref = self.launcher.started(decision.token)
            if ref is not None:
                self._set(decision, store.STARTED, ref)
                return
        self._set(decision, store.STARTING)
        try:
            ref = self.launcher.launch(decision.token, decision.query_date or utc_day(self.clock()))
        except OSError as exc:
            self._set(decision, store.FAILED, f"cannot start: {exc}")
            return
        self._set(decision, store.STARTED, ref)

    def _set(self, decision: Decision, state: str, ref: str | None = None) -> None:
        at = self.clock() if state == store.STARTED else None
        with self.engine.begin() as connection:
            store.set_launch_state(connection, decision.id, state, ref, at)

    def run_worker(self) -> None:
        """Start queued launches until `stop`: at once when a decision queues one, else every poll."""
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.start_pending()
            except sa.exc.SQLAlchemyError as exc:
                print(f"retrain launches: database error, retrying: {exc}", flush=True)
            self._wake.wait(self.poll_seconds)

    def start_worker(self) -> None:
        self._thread = threading.Thread(target=self.run_worker, name="retrain-launches", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
