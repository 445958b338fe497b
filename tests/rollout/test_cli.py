"""`python -m asteroid.rollout status|rollback` on a recorded rollout, its collaborators faked: a rollback by
hand with no controller running is made at once; with one running, it is asked of that controller."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from asteroid.rollout import __main__ as cli
from asteroid.rollout import state as states
from asteroid.rollout.config import DRILL
from asteroid.rollout.controller import MANUAL, Controller, new_rollout
from asteroid.rollout.state import StateStore
from tests.rollout import series
from tests.rollout.fakes import (
    CHALLENGER,
    CHAMPION,
    FakeAlerts,
    FakeClock,
    FakeRegistry,
    FakeRouter,
    ReplayedMetrics,
)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateStore:
    path = tmp_path / "state.json"
    monkeypatch.setenv(states.STATE_ENV, str(path))
    store = StateStore(path)
    store.begin(new_rollout("svc", "asteroid", CHAMPION, CHALLENGER, "drill", DRILL, FakeClock()()))
    return store


def test_status_names_the_phase_the_weight_and_the_controller(
    store: StateStore, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "asteroid/2 (model model-challenger) against asteroid/1: progressing, challenger at 10 %" in out
    assert "controller: no controller" in out and "started" in out


def test_a_rollback_by_hand_without_a_controller_is_made_at_once(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    router, alerts, registry = FakeRouter(weight=10), FakeAlerts(), FakeRegistry()
    metrics = ReplayedMetrics([(series.CHAMPION, series.HEALTHY)])
    controller = Controller(
        store, router, metrics, registry, alerts, DRILL, clock=FakeClock(), log=lambda _: None
    )
    monkeypatch.setattr(cli, "controller_for", lambda rollout, given: controller)
    # README: .venv/bin/python -m asteroid.rollout rollback
    assert cli.main(["rollback"]) == 0
    final = store.load()
    assert (final.phase, final.failed_check) == (states.ROLLED_BACK, MANUAL)
    assert router.updates == [0] and alerts.fired == [(CHALLENGER.url, MANUAL)]
    assert cli.main(["rollback"]) == 1  # nothing active any more


def test_a_rollback_by_hand_is_asked_of_the_running_controller(store: StateStore) -> None:
    held, asked = threading.Event(), threading.Event()

    def running_controller() -> None:  # holds the lock; acts on the request as Controller.tick does
        with store.controller_lock():
            held.set()
            while not store.rollback_request_path.exists():
                asked.wait(0.01)
            rollout = store.load()
            rollout.phase = states.ROLLED_BACK
            store.save(rollout)

    thread = threading.Thread(target=running_controller)
    thread.start()
    held.wait(10)
    assert cli.main(["rollback"]) == 0
    thread.join(10)
    assert store.load().phase == states.ROLLED_BACK


def test_a_second_start_is_refused_while_a_rollout_is_active(
    store: StateStore, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["start", "--profile", "drill"]) == 3
    assert "refused: a rollout is already progressing" in capsys.readouterr().err
