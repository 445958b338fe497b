"""The retrain rules with an injected clock and a fake launcher: each event launches exactly once, never
during the cooldown nor for a duplicate; every decision is audited; a launch a dead process had queued or
begun starts exactly once after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import global_config
from asteroid.automation import schedules, store
from asteroid.automation.receiver import dataset_event
from asteroid.automation.retrain import Retrainer, rule
from asteroid.automation.store import COOLDOWN, DUPLICATE, LAUNCHED, Event

COOLDOWN_S = 600.0
DAY = 1_780_000_000.0  # 2026-05-28 UTC


class Clock:
    def __init__(self, now: float = DAY) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLauncher:
    """Records each launch; ``fail`` makes the next launch raise as a process that cannot start would."""

    def __init__(self) -> None:
        self.launches: list[tuple[str, str]] = []
        self.fail = False

    def launch(self, token: str, query_date: str) -> str:
        if self.fail:
            raise OSError("no such file: pipeline.py")
        self.launches.append((token, query_date))
        return f"fake {token}"

    def started(self, token: str) -> str | None:
        return f"fake {token}" if any(t == token for t, _ in self.launches) else None


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return store.engine(f"sqlite:///{tmp_path / 'decisions.db'}")


def alert(fingerprint: str, starts: str = "2026-05-28T00:00:00Z") -> Event:
    return Event("alert", f"alert:{fingerprint}@{starts}", "AsteroidModelRecallLow")


def audit(engine: sa.Engine) -> list[store.Decision]:
    with engine.connect() as connection:
        return list(store.decisions(connection, 100))


def test_the_rule_table() -> None:
    assert rule(False, None, DAY, COOLDOWN_S) == LAUNCHED
    assert rule(False, DAY - COOLDOWN_S + 1, DAY, COOLDOWN_S) == COOLDOWN
    assert rule(False, DAY - COOLDOWN_S, DAY, COOLDOWN_S) == LAUNCHED  # the cooldown has just passed
    assert rule(True, None, DAY, COOLDOWN_S) == DUPLICATE
    assert rule(True, DAY - 1, DAY, COOLDOWN_S) == DUPLICATE  # a duplicate is a duplicate, cooldown or not


def test_an_event_launches_once_and_its_repeats_are_duplicates(engine: sa.Engine) -> None:
    clock, launcher = Clock(), FakeLauncher()
    retrainer = Retrainer(engine, launcher, COOLDOWN_S, clock=clock)

    first = retrainer.submit([alert("a")])
    clock.now += COOLDOWN_S * 3  # Alertmanager repeats the same firing alert hours later
    repeats = retrainer.submit([alert("a"), alert("a")])
    retrainer.start_pending()
    retrainer.start_pending()

    assert [d.decision for d in [*first, *repeats]] == [LAUNCHED, DUPLICATE, DUPLICATE]
    assert launcher.launches == [(first[0].token, "2026-05-28")]
    assert [d.launch_state for d in audit(engine)] == [store.STARTED, None, None]


def test_a_new_event_within_the_cooldown_is_suppressed_and_launches_after_it(engine: sa.Engine) -> None:
    clock, launcher = Clock(), FakeLauncher()
    retrainer = Retrainer(engine, launcher, COOLDOWN_S, clock=clock)

    retrainer.submit([alert("a")])
    clock.now += COOLDOWN_S - 1
    suppressed = retrainer.submit([alert("b"), Event("dataset", "dataset:d1", "d1")])
    clock.now += 1
    later = retrainer.submit([alert("b")])  # the same alert still firing once the cooldown is over
    again = retrainer.submit([alert("c")])  # ... which starts a new cooldown
    retrainer.start_pending()

    assert [d.decision for d in suppressed] == [COOLDOWN, COOLDOWN]
    assert "cooldown 1 s more" in suppressed[0].reason
    assert [later[0].decision, again[0].decision] == [LAUNCHED, COOLDOWN]
    assert [token for token, _ in launcher.launches] == ["retrain-1", later[0].token]


def test_two_events_in_one_notification_launch_once(engine: sa.Engine) -> None:
    launcher = FakeLauncher()
    decided = Retrainer(engine, launcher, COOLDOWN_S, clock=Clock()).submit([alert("a"), alert("b")])

    assert [d.decision for d in decided] == [LAUNCHED, COOLDOWN]


def test_a_queued_launch_survives_a_restart_and_starts_once(engine: sa.Engine) -> None:
    clock = Clock()
    Retrainer(engine, FakeLauncher(), COOLDOWN_S, clock=clock).submit([alert("a")])  # acknowledged, then dies

    launcher = FakeLauncher()
    restarted = Retrainer(engine, launcher, COOLDOWN_S, clock=clock)
    restarted.start_pending()
    restarted.start_pending()

    assert launcher.launches == [("retrain-1", "2026-05-28")]
    assert audit(engine)[0].launch_state == store.STARTED


def test_a_launch_begun_by_a_dead_process_is_not_started_twice(engine: sa.Engine) -> None:
    clock, launcher = Clock(), FakeLauncher()
    retrainer = Retrainer(engine, launcher, COOLDOWN_S, clock=clock)
    decided = retrainer.submit([alert("a")])[0]
    launcher.launch(decided.token, "2026-05-28")  # it started the run, then died before recording it
    with engine.begin() as connection:
        store.set_launch_state(connection, decided.id, store.STARTING)

    Retrainer(engine, launcher, COOLDOWN_S, clock=clock).start_pending()

    assert len(launcher.launches) == 1
    assert audit(engine)[0].launch_state == store.STARTED


def test_a_launch_begun_but_never_started_is_started_after_a_restart(engine: sa.Engine) -> None:
    clock, launcher = Clock(), FakeLauncher()
    decided = Retrainer(engine, launcher, COOLDOWN_S, clock=clock).submit([alert("a")])[0]
    with engine.begin() as connection:
        store.set_launch_state(connection, decided.id, store.STARTING)  # died before the launcher ran

    Retrainer(engine, launcher, COOLDOWN_S, clock=clock).start_pending()

    assert launcher.launches == [(decided.token, "2026-05-28")]


def test_a_launch_that_cannot_start_is_audited_as_failed_and_not_retried(engine: sa.Engine) -> None:
    launcher = FakeLauncher()
    launcher.fail = True
    retrainer = Retrainer(engine, launcher, COOLDOWN_S, clock=Clock())
    retrainer.submit([alert("a")])
    retrainer.start_pending()
    launcher.fail = False
    retrainer.start_pending()

    record = audit(engine)[0]
    assert (record.launch_state, launcher.launches) == (store.FAILED, [])
    assert "no such file: pipeline.py" in (record.launch_ref or "")


def test_the_worker_starts_a_launch_when_a_decision_queues_it(engine: sa.Engine) -> None:
    launcher = FakeLauncher()
    retrainer = Retrainer(engine, launcher, COOLDOWN_S, clock=Clock(), poll_seconds=3600)
    retrainer.start_worker()
    try:
        retrainer.submit([alert("a")])
        deadline = time.monotonic() + 10
        while not launcher.launches and time.monotonic() < deadline:
            time.sleep(0.02)  # polling interval, bounded by the deadline
    finally:
        retrainer.stop()
    assert launcher.launches == [("retrain-1", "2026-05-28")]


def test_a_dataset_version_of_another_project_is_ignored(engine: sa.Engine) -> None:
    launcher = FakeLauncher()
    retrainer = Retrainer(engine, launcher, COOLDOWN_S, clock=Clock())
    ours = f"{global_config.PROJECT_NAME}/.datasets/{global_config.RAW_DATASET_NAME}"
    projects = {"mine": ours, "theirs": "another project/.datasets/raw_asteroid_dataset"}

    def submit(dataset_id: str) -> None:
        retrainer.submit([dataset_event(dataset_id)])

    submitted = [schedules.on_new_dataset(submit, d, projects.__getitem__) for d in ("theirs", "mine")]

    assert submitted == [False, True]
    assert [(d.event_key, d.decision) for d in audit(engine)] == [("dataset:mine", LAUNCHED)]
