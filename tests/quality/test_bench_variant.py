"""The serving benchmark's hook without the prediction log (benchmarks/hooks/nolog_init.py) loads through
clearml-serving's real engine, answers as the project's hook does, and publishes nothing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import global_config
from asteroid.serving.hook_package import build_hook_folder
from tests.serving.conftest import FakeArtifact, serve


def nolog_engine(tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from clearml_serving.serving.endpoints import ModelEndpoint
    from clearml_serving.serving.preprocess_service import BasePreprocessRequest

    monkeypatch.setattr(BasePreprocessRequest, "_get_local_model_file", lambda self: str(model_file))
    folder = build_hook_folder(tmp_path / "py_code_nolog_1")
    (folder / "__init__.py").rename(folder / "hook.py")
    shutil.copyfile(global_config.ROOT / "benchmarks" / "hooks" / "nolog_init.py", folder / "__init__.py")
    task = SimpleNamespace(id="service", artifacts={"py_code_nolog_1": FakeArtifact(folder)})
    endpoint = ModelEndpoint(
        engine_type="xgboost",
        serving_url="nolog",
        version="1",
        model_id="m",
        preprocess_artifact="py_code_nolog_1",
    )
    return BasePreprocessRequest.get_engine_cls("xgboost")(model_endpoint=endpoint, task=task)


def test_the_variant_answers_alike_and_publishes_nothing(
    tmp_path: Path,
    trained_model: Path,
    engine: Any,
    sample_records: list[dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLEARML_DEFAULT_KAFKA_SERVE_URL", "127.0.0.1:1")  # a broker it must not use
    variant = nolog_engine(tmp_path, trained_model, monkeypatch)
    module = sys.modules[type(variant._preprocess).__module__]  # the folder's hook.py
    assert not module.PREDICTION_LOG.enabled
    reply, _ = serve(variant, {"rows": sample_records[:20]})
    expected, _ = serve(engine, {"rows": sample_records[:20]})
    probabilities = [row["probability"] for row in reply["predictions"]]
    assert probabilities == [row["probability"] for row in expected["predictions"]]
    assert module.PREDICTION_LOG._forwarder is None  # no forwarder process was started
