"""The rollout controller on replayed series with a fake clock: promotion, rollback on each check, the
failure limit, inconclusive windows, a manual rollback, resume after a crash, refusal of a second rollout."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from asteroid.rollout import state as states
from asteroid.rollout.analysis import VersionWindow
from asteroid.rollout.config import DRILL, PRODUCTION, RolloutConfig
from asteroid.rollout.controller import MANUAL, NO_TRAFFIC, Controller, new_rollout
from asteroid.rollout.state import RolloutBusy, StateStore
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


class Harness:
    def __init__(self, tmp_path: Path, windows: list[tuple[VersionWindow, VersionWindow]],
                 config: RolloutConfig = DRILL) -> None:  # fmt: skip
        self.clock, self.router, self.metrics = FakeClock(), FakeRouter(), ReplayedMetrics(windows)
        self.registry, self.alerts, self.config = FakeRegistry(), FakeAlerts(), config
        self.store = StateStore(tmp_path / "state.json")
        self.lines: list[str] = []

    def controller(self) -> Controller:
        return Controller(self.store, self.router, self.metrics, self.registry, self.alerts, self.config,
                          clock=self.clock, sleep=self.clock.sleep, log=self.lines.append)  # fmt: skip

    def begin(self) -> states.RolloutState:
        rollout = new_rollout("svc", "asteroid", CHAMPION, CHALLENGER, "drill", self.config, self.clock())
        self.store.begin(rollout)
        return rollout


def healthy(n: int = 10) -> list[tuple[VersionWindow, VersionWindow]]:
    return [(series.CHAMPION, series.HEALTHY)] * n


def test_a_healthy_challenger_steps_through_the_stages_and_is_promoted(tmp_path: Path) -> None:
    harness = Harness(tmp_path, healthy())
    started = harness.clock()
    harness.begin()
    final = harness.controller().run()
    assert final.phase == states.COMPLETED
    assert harness.router.updates == [10, 50, 100]  # one configuration update per stage
    assert harness.router.retired and harness.registry.production == CHALLENGER.model_id
    assert harness.alerts.fired == [] and harness.registry.rolled_back == []
    # an analysis per interval at 10 % and at 50 %, then the grace period before the champion is retired
    analyses = [event for event in final.events if event["kind"] == "analysis"]
    assert [event["weight"] for event in analyses] == [10, 50]
    assert [at - started for _, _, at in harness.metrics.asked[::2]] == [
        DRILL.settle_s + DRILL.interval_s,  # each window opens once the route change has settled
        2 * (DRILL.settle_s + DRILL.interval_s),
    ]
    retired = next(event for event in final.events if event["kind"] == "champion_retired")
    assert retired["time"] - started == pytest.approx(
        2 * (DRILL.settle_s + DRILL.interval_s) + DRILL.grace_period_s
    )
    assert any(line.startswith("$ clearml-serving model canary") for line in harness.lines)
    assert harness.store.load().phase == states.COMPLETED


@pytest.mark.parametrize("check", sorted(series.FAILING))
def test_a_failing_check_rolls_back_in_one_update_tags_and_alerts(tmp_path: Path, check: str) -> None:
    harness = Harness(tmp_path, [(series.CHAMPION, series.HEALTHY), (series.CHAMPION, series.FAILING[check])])
    harness.begin()
    final = harness.controller().run()
    assert final.phase == states.ROLLED_BACK and final.failed_check == check
    assert harness.router.updates == [10, 50, 0]  # failed at 50 %: straight back to the champion
    assert harness.registry.rolled_back == [(CHALLENGER.model_id, check)]
    assert harness.alerts.fired == [(CHALLENGER.url, check)]
    assert harness.registry.production == CHAMPION.model_id and not harness.router.retired


def test_live_recall_is_judged_once_enough_labels_exist(tmp_path: Path) -> None:
    labelled = (series.LABELLED_CHAMPION, series.LABELLED_WORSE_RECALL)
    harness = Harness(tmp_path, [labelled])
    harness.begin()
    final = harness.controller().run()
    assert final.failed_check == "recall" and harness.router.updates == [10, 0]
    unlabelled = Harness(
        tmp_path / "b", [(series.CHAMPION, replace(series.LABELLED_WORSE_RECALL, labelled=5))]
    )
    unlabelled.begin()
    assert unlabelled.controller().run().phase == states.COMPLETED  # 5 labels < min_labels: not judged


def test_the_failure_limit_tolerates_fewer_failures(tmp_path: Path) -> None:
    # failure_limit 2, 5 analyses per stage; the replayed windows hold 60 requests
    config = replace(PRODUCTION, interval_s=1.0, grace_period_s=1.0, min_requests=50, min_answered_rows=50)
    once = [(series.CHAMPION, series.FAILING["latency_p99"]), *healthy()]
    harness = Harness(tmp_path, once, config)
    harness.begin()
    final = harness.controller().run()
    assert final.phase == states.COMPLETED and final.failures == 1
    assert [e["weight"] for e in final.events if e["kind"] == "analysis"] == [10] * 6 + [50] * 5
    twice = [(series.CHAMPION, series.FAILING["latency_p99"])] * 2
    harness = Harness(tmp_path / "b", twice, config)
    harness.begin()
    assert harness.controller().run().failed_check == "latency_p99"


def test_windows_without_enough_requests_wait_then_roll_back(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [(series.CHAMPION, series.QUIET)] * 2 + healthy())
    harness.begin()
    assert harness.controller().run().phase == states.COMPLETED  # two quiet windows only delay it
    harness = Harness(tmp_path / "b", [(series.CHAMPION, series.QUIET)])
    harness.begin()
    final = harness.controller().run()
    assert final.failed_check == NO_TRAFFIC and final.inconclusive_in_a_row == DRILL.max_inconclusive
    assert harness.router.updates == [10, 0]


def test_a_rollback_asked_for_by_hand_is_taken_at_the_next_tick(tmp_path: Path) -> None:
    harness = Harness(tmp_path, healthy())
    harness.begin()
    harness.store.rollback_request_path.write_text("by hand")
    final = harness.controller().run()
    assert final.failed_check == MANUAL and harness.router.updates == [10, 0]
    assert not harness.store.rollback_request_path.exists()


def test_a_second_rollout_is_refused_while_one_is_active(tmp_path: Path) -> None:
    harness = Harness(tmp_path, healthy())
    harness.begin()
    with pytest.raises(RolloutBusy, match="a rollout is already progressing: model model-challenger"):
        harness.begin()
    with harness.store.controller_lock(), pytest.raises(RolloutBusy, match="another controller is running"):
        harness.controller().run()
    harness.controller().run()
    harness.begin()  # once finished, the next one may start


class Crash(Exception):
    pass


def test_a_controller_killed_between_decision_and_route_change_is_resumed_without_a_half_state(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path, healthy())
    harness.begin()
    controller = harness.controller()
    real_set_weight = harness.router.set_weight

    def dies_at_50(champion, challenger, weight):  # type: ignore[no-untyped-def]
        if weight == 50:
            raise Crash
        return real_set_weight(champion, challenger, weight)

    harness.router.set_weight = dies_at_50  # type: ignore[method-assign]
    with pytest.raises(Crash):
        controller.run()
    recorded = harness.store.load()
    assert recorded.phase == states.PROGRESSING and recorded.weight == 50 and harness.router.weight == 10
    harness.router.set_weight = real_set_weight  # type: ignore[method-assign]
    final = harness.controller().run()  # a new controller: reconciles the route to 50 % first
    assert final.phase == states.COMPLETED and harness.router.updates == [10, 50, 100]


def test_a_controller_killed_mid_rollback_finishes_it_and_alerts_once(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [(series.CHAMPION, series.FAILING["error_rate"])])
    harness.begin()
    harness.alerts.rolled_back = lambda rollout: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        harness.controller().run()
    assert harness.store.load().phase == states.ROLLING_BACK and harness.router.weight == 0
    harness.alerts = FakeAlerts()
    final = harness.controller().run()
    assert final.phase == states.ROLLED_BACK and harness.alerts.fired == [(CHALLENGER.url, "error_rate")]
    assert harness.router.updates == [10, 0]


def test_configurations_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="end at 100"):
        RolloutConfig(stages=(10, 50))
    with pytest.raises(ValueError, match="end at 100"):
        RolloutConfig(stages=(50, 10, 100))
    assert PRODUCTION.success_rate_min == 0.99 and PRODUCTION.latency_p99_max_s == 0.5
    assert PRODUCTION.interval_s == 60 and PRODUCTION.window() == "60s"
