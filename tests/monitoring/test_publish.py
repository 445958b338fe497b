"""Publishing a version's rules: a reload Prometheus does not confirm stops a deployment, but not a rollout
whose traffic has already moved (the rules stay on disk and are still attached to the training task)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

import global_config
import serving_local.api
from asteroid import features, split_files, splitting
from asteroid.monitoring import publish
from asteroid.serving import contract


@pytest.fixture
def release(sample_frame: pd.DataFrame, tmp_path: Path) -> contract.ReleaseContract:
    split = splitting.group_split(*features.build_features(sample_frame), seed=3)
    return contract.from_feature_spec(split_files.load_feature_spec(split_files.save_split(split, tmp_path)))


@pytest.fixture
def attached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    paths: list[Path] = []
    monkeypatch.setattr(publish, "rules_dir", lambda: tmp_path / "rules")
    monkeypatch.setattr(publish, "attach_to_training_task", lambda model, path: paths.append(path))

    def slow_prometheus() -> str:
        raise serving_local.api.StackError("Prometheus did not reload within 10 s: ")

    monkeypatch.setattr(publish, "reload_prometheus", slow_prometheus)
    return paths


def model_without_test_metrics() -> Any:
    return SimpleNamespace(id="m1", task="t1", get_metadata=lambda key: None)


def served() -> Any:
    return SimpleNamespace(endpoint=global_config.SERVING_ENDPOINT, version=2, url="asteroid/2")


def test_an_unconfirmed_reload_stops_a_deployment(release: contract.ReleaseContract, attached: list) -> None:
    with pytest.raises(serving_local.api.StackError, match="did not reload"):
        publish.publish_rules(served(), model_without_test_metrics(), release)
    assert attached == []


def test_an_unconfirmed_reload_is_a_warning_when_not_required(
    release: contract.ReleaseContract, attached: list, capsys: pytest.CaptureFixture[str]
) -> None:
    path = publish.publish_rules(served(), model_without_test_metrics(), release, reload_required=False)
    assert "asteroid_2" in path.read_text()
    assert attached == [path]
    assert "warning: rules written but Prometheus' reload was not confirmed" in capsys.readouterr().out
