"""Fixtures for the serving tests: a model trained offline on sample data, and the hook as deployed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import xgboost as xgb

from asteroid import features, schema, splitting, train
from asteroid.serving import contract
from asteroid.serving.hook_package import build_hook_folder


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Path:
    """A model trained like the pipeline's (one seed), saved as the pipeline saves it."""
    split = splitting.group_split(*features.build_features(sample_frame), seed=3)
    result = train.train_classifier(split, seed=0)
    contract.stamp_model(result.booster, schema.HAZARD_THRESHOLD)
    return train.save_model(result.booster, tmp_path_factory.mktemp("model") / "asteroid_xgb.json")


@pytest.fixture(scope="session")
def offline_booster(trained_model: Path) -> xgb.Booster:
    return train.load_model(trained_model)


@pytest.fixture(scope="session")
def sample_records(sample_frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the example client posts them: every column of a CSV row, as JSON."""
    return json.loads(json.dumps(sample_frame.to_dict(orient="records")))


class FakeArtifact:
    """What clearml-serving reads of a task artifact: a zip, its extracted folder and the zip's hash."""

    def __init__(self, folder: Path) -> None:
        from clearml.storage.util import sha256sum

        self.folder = folder
        self.zip = Path(shutil.make_archive(str(folder), "zip", folder))
        self.hash = sha256sum(str(self.zip), block_size=65536)[0]

    def get_local_copy(self, extract_archive: bool = True, force_download: bool = False) -> str:
        return str(self.folder if extract_archive else self.zip)


@pytest.fixture
def engine(tmp_path: Path, trained_model: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """clearml-serving's real XGBoost engine with the hook folder loaded as its preprocess artifact."""
    return hook_engine(tmp_path, trained_model, monkeypatch)


def hook_engine(tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """clearml-serving's real XGBoost engine serving `model_file` through the hook folder."""
    from clearml_serving.serving.endpoints import ModelEndpoint
    from clearml_serving.serving.preprocess_service import BasePreprocessRequest

    monkeypatch.setattr(BasePreprocessRequest, "_get_local_model_file", lambda self: str(model_file))
    folder = build_hook_folder(tmp_path / "py_code_asteroid_1")
    task = SimpleNamespace(id="service", artifacts={"py_code_asteroid_1": FakeArtifact(folder)})
    endpoint = ModelEndpoint(
        engine_type="xgboost",
        serving_url="asteroid",
        version="1",
        model_id="model-1",
        preprocess_artifact="py_code_asteroid_1",
    )
    engine_class = BasePreprocessRequest.get_engine_cls("xgboost")
    return engine_class(model_endpoint=endpoint, task=task)


def serve(engine: Any, body: Any) -> tuple[Any, dict[str, Any]]:
    """One request through the engine as clearml-serving's processor runs it; (reply, reported statistics)."""
    state: dict[str, Any] = {}
    statistics: dict[str, Any] = {}
    data = engine.preprocess(body, state, statistics.update)
    data = engine.process(data, state, statistics.update)
    return engine.postprocess(data, state, statistics.update), statistics
