"""Fakes of the controller's collaborators: a clock, a canary route, a metrics source replaying series, the
model registry and the alert sink; each records what was asked of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from asteroid.rollout.analysis import VersionWindow
from asteroid.rollout.state import RolloutState, Version

CHAMPION = Version("model-champion", 1, "asteroid/1")
CHALLENGER = Version("model-challenger", 2, "asteroid/2")


@dataclass
class FakeClock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeRouter:
    weight: int | None = None  # the challenger's weight on the route
    updates: list[int] = field(default_factory=list)  # one entry per configuration update
    retired: bool = False

    def set_weight(self, champion: Version, challenger: Version, challenger_weight: int) -> list[str]:
        if self.weight == challenger_weight:
            return []
        self.weight = challenger_weight
        self.updates.append(challenger_weight)
        return [f"clearml-serving model canary --endpoint asteroid --weights {100 - challenger_weight} "
                f"{challenger_weight} --input-endpoint {champion.url} {challenger.url}"]  # fmt: skip

    def retire(self, champion: Version, challenger: Version) -> list[str]:
        if self.retired:
            return []
        self.retired = True
        return [f"clearml-serving model remove --endpoint {champion.url}"]


@dataclass
class ReplayedMetrics:
    """Per analysis (in order), the champion's and the challenger's windows; the last pair repeats."""

    series: list[tuple[VersionWindow, VersionWindow]]
    asked: list[tuple[str, float, float]] = field(default_factory=list)

    def window(self, version: Version, seconds: float, at: float) -> VersionWindow:
        self.asked.append((version.url, seconds, at))
        analysis = (len(self.asked) - 1) // 2
        pair = self.series[min(analysis, len(self.series) - 1)]
        return pair[0] if version == CHAMPION else pair[1]


@dataclass
class FakeRegistry:
    rolled_back: list[tuple[str, str]] = field(default_factory=list)
    production: str = CHAMPION.model_id

    def mark_rolled_back(self, model_id: str, check: str, reason: str) -> None:
        if (model_id, check) not in self.rolled_back:
            self.rolled_back.append((model_id, check))

    def move_production(self, previous: Version, promoted: Version) -> None:
        self.production = promoted.model_id


@dataclass
class FakeAlerts:
    fired: list[tuple[str, str | None]] = field(default_factory=list)

    def rolled_back(self, rollout: RolloutState) -> None:
        self.fired.append((rollout.challenger.url, rollout.failed_check))
