"""A winner is released at once only when no progressive rollout owns the route of that service."""

from __future__ import annotations

from pathlib import Path

import pytest

from asteroid.rollout import state as states
from asteroid.serving import release
from asteroid.serving.deploy import DeployError


def write_rollout(path: Path, phase: str, service_id: str = "svc") -> None:
    champion = states.Version("m1", 1, "asteroid/1")
    challenger = states.Version("m2", 2, "asteroid/2")
    rollout = states.RolloutState(service_id, "asteroid", champion, challenger, "drill", [10, 50, 100], 0.0)
    rollout.phase = phase
    states.StateStore(path).save(rollout)


@pytest.fixture
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rollout.json"
    monkeypatch.setenv(states.STATE_ENV, str(path))
    return path


@pytest.mark.parametrize("phase", states.ACTIVE_PHASES)
def test_an_active_rollout_refuses_a_release_naming_what_it_does(state_file: Path, phase: str) -> None:
    write_rollout(state_file, phase)
    with pytest.raises(DeployError, match=rf"^not released: a rollout is already {phase}: model m2"):
        release.release("svc", model=object())


@pytest.mark.parametrize("phase", [states.COMPLETED, states.ROLLED_BACK])
def test_a_finished_rollout_or_another_service_leaves_releases_free(state_file: Path, phase: str) -> None:
    assert release.active_rollout("svc") is None  # no rollout recorded
    write_rollout(state_file, phase)
    assert release.active_rollout("svc") is None
    write_rollout(state_file, states.PROGRESSING, service_id="other")
    assert release.active_rollout("svc") is None
