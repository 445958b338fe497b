"""The progressive rollout controller: steps the challenger's canary weight through the configured stages,
analyses every interval, promotes or rolls back; every decision persisted first (asteroid/rollout/state.py).

Its collaborators are injected, so its rules run in tests on recorded series with a fake clock:
`Router` (the canary route: clearml-serving's ModelRequestProcessor in `serving_router.py`), `MetricsSource`
(Prometheus in `prometheus_metrics.py`), `Registry` (model tags on ClearML) and `AlertSink` (Alertmanager's
API in `alerts.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from asteroid.rollout import state as states
from asteroid.rollout.analysis import Analysis, VersionWindow, analyse
from asteroid.rollout.config import RolloutConfig
from asteroid.rollout.state import RolloutState, StateStore, Version

MANUAL = "manual"  # the failing check of a rollback asked for by hand
NO_TRAFFIC = "no_traffic"  # …of one after `max_inconclusive` analyses in a row without enough requests


class Router(Protocol):
    def set_weight(self, champion: Version, challenger: Version, challenger_weight: int) -> list[str]:
        """Route `challenger_weight` % of the endpoint to the challenger, the rest to the champion, in one
        configuration update; nothing when already so. Returns the equivalent CLI commands of what changed."""
        ...

    def retire(self, champion: Version, challenger: Version) -> list[str]:
        """Remove the champion's endpoint; the endpoint routes to the challenger alone (idempotent)."""
        ...


class MetricsSource(Protocol):
    def window(self, version: Version, seconds: float, at: float) -> VersionWindow: ...


class Registry(Protocol):
    def mark_rolled_back(self, model_id: str, check: str, reason: str) -> None: ...

    def move_production(self, previous: Version, promoted: Version) -> None: ...


class AlertSink(Protocol):
    def rolled_back(self, rollout: RolloutState) -> None: ...


class Controller:
    def __init__(
        self,
        store: StateStore,
        router: Router,
        metrics: MetricsSource,
        registry: Registry,
        alerts: AlertSink,
        config: RolloutConfig,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = print,
    ) -> None:
        self.store, self.router, self.metrics = store, router, metrics
        self.registry, self.alerts, self.config = registry, alerts, config
        self.clock, self.sleep, self.log = clock, sleep, log

    # --- running ---------------------------------------------------------------------------------------
    def run(self) -> RolloutState:
        """Drive the recorded rollout to its end (promoted and the champion retired, or rolled back)."""
        with self.store.controller_lock():
            rollout = self._loaded()
            self.reconcile(rollout)
            while rollout.active:
                rollout = self.tick(rollout)
                if rollout.active:
                    self.sleep(max(0.0, min(self._wake_at(rollout) - self.clock(), self.config.interval_s)))
            return rollout

    def _loaded(self) -> RolloutState:
        rollout = self.store.load()
        if rollout is None:
            raise states.RolloutBusy("no rollout recorded: `python -m asteroid.rollout start` begins one")
        return rollout

    def reconcile(self, rollout: RolloutState) -> None:
        """Make the canary route (and the production tag) match the recorded state: after a restart the last
        controller may have died between recording a decision and applying it."""
        if rollout.phase == states.COMPLETED:
            return
        if self._route(rollout) and rollout.phase == states.PROGRESSING:  # the stage's window opens anew
            rollout.next_analysis_at = self.clock() + self.config.settle_s + self.config.interval_s
            self.store.save(rollout)
        if rollout.phase == states.PROMOTED:
            self.registry.move_production(rollout.champion, rollout.challenger)

    def tick(self, rollout: RolloutState) -> RolloutState:
        """One decision at the current time."""
        now = self.clock()
        if rollout.phase == states.ROLLING_BACK:
            return self._finish_rollback(rollout)
        if rollout.active and self.store.rollback_request_path.exists():
            self.store.rollback_request_path.unlink()
            return self.roll_back(rollout, MANUAL, "rollback requested by hand")
        if rollout.phase == states.PROGRESSING and now >= rollout.next_analysis_at:
            return self._analyse(rollout, now)
        if (
            rollout.phase == states.PROMOTED
            and now >= (rollout.promoted_at or now) + self.config.grace_period_s
        ):
            return self._retire(rollout, now)
        return rollout

    def _wake_at(self, rollout: RolloutState) -> float:
        if rollout.phase == states.PROMOTED:
            return (rollout.promoted_at or 0.0) + self.config.grace_period_s
        return rollout.next_analysis_at

    # --- decisions -------------------------------------------------------------------------------------
    def _analyse(self, rollout: RolloutState, now: float) -> RolloutState:
        seconds = self.config.interval_s
        result = analyse(
            self.metrics.window(rollout.champion, seconds, now),
            self.metrics.window(rollout.challenger, seconds, now),
            self.config,
        )
        rollout.event(now, "analysis", weight=rollout.weight, passed=result.passed, **result.record())
        self.log(f"analysis at {rollout.weight} %: {result.describe()}")
        rollout.next_analysis_at = now + seconds
        if not result.conclusive:
            return self._inconclusive(rollout, result)
        rollout.inconclusive_in_a_row = 0
        if not result.passed:
            rollout.failures += 1
            if rollout.failures >= self.config.failure_limit:
                return self.roll_back(rollout, result.failed_checks[0], result.describe())
            self.store.save(rollout)
            return rollout
        rollout.passed_at_stage += 1
        if rollout.passed_at_stage >= self.config.analyses_per_stage:
            return self._advance(rollout, now)
        self.store.save(rollout)
        return rollout

    def _inconclusive(self, rollout: RolloutState, result: Analysis) -> RolloutState:
        rollout.inconclusive_in_a_row += 1
        if rollout.inconclusive_in_a_row >= self.config.max_inconclusive:
            reason = f"{rollout.inconclusive_in_a_row} analyses in a row without evidence ({result.note})"
            return self.roll_back(rollout, NO_TRAFFIC, reason)
        self.store.save(rollout)
        return rollout

    def _advance(self, rollout: RolloutState, now: float) -> RolloutState:
        rollout.stage_index += 1
        rollout.passed_at_stage = 0
        rollout.next_analysis_at = now + self.config.settle_s + self.config.interval_s
        if rollout.weight == 100:
            rollout.phase, rollout.promoted_at = states.PROMOTED, now
            rollout.event(now, "promoted", weight=100)
        else:
            rollout.event(now, "stage", weight=rollout.weight)
        self.store.save(rollout)  # the decision first: a crash before the route changes is reconciled
        self._route(rollout)
        if rollout.phase == states.PROMOTED:
            self.registry.move_production(rollout.champion, rollout.challenger)
            self.log(f"promoted: {rollout.challenger.url} serves 100 %, tagged production")
        return rollout

    def _retire(self, rollout: RolloutState, now: float) -> RolloutState:
        for command in self.router.retire(rollout.champion, rollout.challenger):
            self.log(f"$ {command}")
        rollout.phase = states.COMPLETED
        rollout.event(now, "champion_retired", champion=rollout.champion.url)
        self.store.save(rollout)
        self.log(f"completed: {rollout.champion.url} retired after the grace period")
        return rollout

    def roll_back(self, rollout: RolloutState, check: str, reason: str) -> RolloutState:
        """Weight back to the champion in one configuration update, the challenger tagged, the alert sent."""
        rollout.phase, rollout.failed_check, rollout.reason = states.ROLLING_BACK, check, reason
        rollout.event(self.clock(), "rolling_back", check=check, reason=reason)
        self.store.save(rollout)
        return self._finish_rollback(rollout)

    def _finish_rollback(self, rollout: RolloutState) -> RolloutState:
        self._route(rollout)
        self.registry.mark_rolled_back(
            rollout.challenger.model_id, rollout.failed_check or MANUAL, rollout.reason
        )
        if not rollout.alert_sent:
            self.alerts.rolled_back(rollout)
            rollout.alert_sent = True
            self.store.save(rollout)
        rollout.phase = states.ROLLED_BACK
        rollout.event(self.clock(), "rolled_back", check=rollout.failed_check)
        self.store.save(rollout)
        self.log(f"rolled back: {rollout.challenger.url} failed {rollout.failed_check} ({rollout.reason})")
        return rollout

    def _route(self, rollout: RolloutState) -> bool:
        """Make the route match the recorded weight; whether it changed."""
        commands = self.router.set_weight(rollout.champion, rollout.challenger, rollout.weight)
        for command in commands:
            self.log(f"$ {command}")
        return bool(commands)


def new_rollout(
    service_id: str, endpoint: str, champion: Version, challenger: Version, profile: str,
    config: RolloutConfig, now: float,
) -> RolloutState:  # fmt: skip
    first_window_ends = now + config.settle_s + config.interval_s
    rollout = RolloutState(
        service_id=service_id, endpoint=endpoint, champion=champion, challenger=challenger, profile=profile,
        stages=list(config.stages), started_at=now, next_analysis_at=first_window_ends,
    )  # fmt: skip
    rollout.event(now, "started", weight=rollout.weight)
    return rollout
