"""The rollout's state, persisted after every decision so that a restarted controller resumes exactly where
the last one stopped (or finishes a rollback it had begun), and the lock that lets one controller run.

The file is replaced atomically (written beside, fsynced, renamed): a crash leaves the old state or the new
one, never half a file. Every router change is made idempotent by the controller: it records what it is about
to do (the phase, the stage) first, then makes the configuration match; a resumed controller makes the
configuration match the recorded state again before it analyses anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import global_config

STATE_ENV = "ASTEROID_ROLLOUT_STATE"
PROGRESSING, PROMOTED, ROLLING_BACK = "progressing", "promoted", "rolling_back"
COMPLETED, ROLLED_BACK = "completed", "rolled_back"
ACTIVE_PHASES = (PROGRESSING, PROMOTED, ROLLING_BACK)


def default_path() -> Path:
    value = os.environ.get(STATE_ENV)
    return Path(value) if value else global_config.DATA_DIR / "rollout" / "rollout.json"


class RolloutBusy(RuntimeError):
    """A rollout is active, or another controller runs: no second one may start."""


@dataclass(frozen=True)
class Version:
    model_id: str
    version: int
    url: str  # `<endpoint>/<n>`


@dataclass
class RolloutState:
    service_id: str
    endpoint: str
    champion: Version
    challenger: Version
    profile: str
    stages: list[int]
    started_at: float
    phase: str = PROGRESSING
    stage_index: int = 0
    passed_at_stage: int = 0
    failures: int = 0
    inconclusive_in_a_row: int = 0
    next_analysis_at: float = 0.0
    promoted_at: float | None = None
    failed_check: str | None = None
    reason: str = ""
    alert_sent: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def weight(self) -> int:
        """The challenger's weight (%) the recorded phase and stage call for."""
        if self.phase in (ROLLING_BACK, ROLLED_BACK):
            return 0
        if self.phase in (PROMOTED, COMPLETED):
            return 100
        return self.stages[self.stage_index]

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES

    def event(self, at: float, kind: str, **detail: Any) -> dict[str, Any]:
        entry = {"time": at, "kind": kind, **detail}
        self.events.append(entry)
        return entry

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RolloutState:
        values = dict(record)
        values["champion"], values["challenger"] = (
            Version(**record["champion"]),
            Version(**record["challenger"]),
        )
        return cls(**values)


class StateStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def rollback_request_path(self) -> Path:
        """Written by `python -m asteroid.rollout rollback` for a running controller to act on."""
        return self.path.with_name(self.path.name + ".rollback")

    def load(self) -> RolloutState | None:
        if not self.path.exists():
            return None
        return RolloutState.from_record(json.loads(self.path.read_text(encoding="utf-8")))

    def save(self, state: RolloutState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as stream:
            json.dump(state.record(), stream, indent=1)
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(self.path)

    def begin(self, state: RolloutState) -> None:
        """Record a new rollout; refused while another is active."""
        current = self.load()
        if current is not None and current.active:
            raise RolloutBusy(busy_message(current))
        self.save(state)

    @contextlib.contextmanager
    def controller_lock(self) -> Iterator[None]:
        """Held while a controller runs (released by the kernel when its process dies, even by kill -9)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RolloutBusy(
                    f"another controller is running this rollout (lock {self.lock_path}); "
                    "`python -m asteroid.rollout status` shows its rollout"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def controller_running(self) -> bool:
        try:
            with self.controller_lock():
                return False
        except RolloutBusy:
            return True


def busy_message(state: RolloutState) -> str:
    return (
        f"a rollout is already {state.phase}: model {state.challenger.model_id} as "
        f"/serve/{state.challenger.url} at {state.weight} % against {state.champion.url}; "
        "wait for it to finish "
        "(`python -m asteroid.rollout status`) or roll it back (`python -m asteroid.rollout rollback`)"
    )
