"""The inference image's xgboost override, checked where it matters: a model trained by this pipeline's code,
loaded in a throw-away environment with the inference image's own pins plus the override, through the hook
the service deploys and through the stock xgboost engine's own load, predicts the training probabilities.
With the image's own xgboost (1.7) it answers too, without an error, with other probabilities.

The image's pins are facts read from clearml-serving 1.3.5's `clearml_serving/serving/requirements.txt`
(commit 5c70775); the image installs them on Python 3.11. Only the pins on the model's path are installed:
numpy, and the two packages that hold numpy below 2 (pandas, scikit-learn); the other 17 (FastAPI, Triton's
client, LightGBM, vLLM with PyTorch, ...) are not imported when an xgboost model predicts, and vLLM alone is
gigabytes. xgboost is installed without `nvidia-nccl-cu12`, its multi-GPU communication library, which
prediction on CPU never loads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asteroid import features, schema, splitting, train
from asteroid.serving import contract
from asteroid.serving.hook_package import build_hook_folder
from tests.deploy import compose

IMAGE_PYTHON = "3.11"
IMAGE_PINS = ("numpy>=1.24,<1.27", "pandas>=1.5.3,<1.6", "scikit-learn>=1.2.2,<1.3", "scipy")
IMAGE_XGBOOST = "xgboost>=1.7.5,<1.8"  # the image's own pin, which the override replaces
DOCKERFILE = compose.DEPLOY / "serving" / "Dockerfile"
UNREACHABLE = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
               "Max retries exceeded", "Could not fetch URL", "ConnectTimeout", "ReadTimeout")  # fmt: skip
PIP_TIMEOUT_S = 1200

pytestmark = pytest.mark.slow

# Runs in the throw-away environment: the hook as clearml-serving loads it (a package from the hook folder,
# `Preprocess.load`, `preprocess`, the predictor's `predict`, `postprocess`) and the stock engine's own load
# (`Booster.load_model`, `predict` on a DMatrix of the same features).
LOADER = """
import importlib, json, sys
import numpy, xgboost
hook_dir, model, rows_file = sys.argv[1:4]
sys.path.insert(0, hook_dir.rsplit("/", 1)[0])
hook = importlib.import_module(hook_dir.rsplit("/", 1)[1])
rows = json.load(open(rows_file))
preprocess = hook.Preprocess()
predictor = preprocess.load(model)
state = {}
matrix = preprocess.preprocess({"rows": rows}, state, None)
answer = preprocess.postprocess(predictor.predict(matrix), state, None)
booster = xgboost.Booster()
booster.load_model(model)
stock = booster.predict(xgboost.DMatrix(matrix.astype(numpy.float32), feature_names=booster.feature_names))
print(json.dumps({
    "xgboost": xgboost.__version__, "numpy": numpy.__version__,
    "hook": [p["probability"] for p in answer["predictions"]], "stock": [float(v) for v in stock],
}))
"""


def override_version() -> str:
    match = re.search(r"^ARG XGBOOST_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"{DOCKERFILE} has no ARG XGBOOST_VERSION"
    return match.group(1)


def pip(python: Path, *args: str) -> None:
    run = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        output = run.stdout + run.stderr
        if any(sign in output for sign in UNREACHABLE):
            pytest.skip(f"PyPI is unreachable: {output.strip()[-300:]}")
        raise AssertionError(f"pip install {' '.join(args)} failed:\n{output[-3000:]}")


@pytest.fixture(scope="module")
def image_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the image's pins but no xgboost yet (the image's Python version)."""
    interpreter = shutil.which(f"python{IMAGE_PYTHON}")
    if interpreter is None:
        pytest.skip(f"no python{IMAGE_PYTHON} here, the inference image's Python")
    venv = tmp_path_factory.mktemp("image-venv") / "base"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=120)
    pip(venv / "bin" / "python", *IMAGE_PINS)
    return venv


def with_xgboost(base: Path, requirement: str) -> Path:
    """A copy of the base environment with one xgboost requirement installed; its Python."""
    venv = base.with_name(re.sub(r"[^A-Za-z0-9.]+", "_", requirement))
    shutil.copytree(base, venv, symlinks=True)
    python = venv / "bin" / "python"
    pip(python, "--no-deps", requirement)
    return python


@pytest.fixture(scope="module")
def image_python(image_base: Path) -> Path:
    """The image's environment with the override."""
    return with_xgboost(image_base, f"xgboost=={override_version()}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> tuple[Path, np.ndarray]:
    """A model trained by the pipeline's training code and saved as the pipeline saves it, and the
    probabilities training computes for the sample rows."""
    split = splitting.group_split(*features.build_features(sample_frame), seed=3)
    result = train.train_classifier(split, seed=0)
    contract.stamp_model(result.booster, schema.HAZARD_THRESHOLD)
    path = train.save_model(result.booster, tmp_path_factory.mktemp("model") / "asteroid_xgb.json")
    frame, _labels, _groups = features.build_features(sample_frame)
    return path, train.predict_proba(result.booster, frame)


def test_the_override_is_not_the_images_own_pin() -> None:
    """Without it the image would load the model with xgboost 1.7 (`IMAGE_XGBOOST`)."""
    major = int(override_version().split(".")[0])
    assert major >= 2 and not IMAGE_XGBOOST.startswith(f"xgboost=={override_version()}")


def serve(python: Path, model: Path, sample_frame: pd.DataFrame, work: Path) -> dict:
    """The loader's answer in the environment of `python`: versions, hook and stock-engine probabilities."""
    rows = work / "rows.json"
    rows.write_text(json.dumps(sample_frame.to_dict(orient="records")))  # exact floats
    hook = build_hook_folder(work / "asteroid_hook")
    run = subprocess.run(
        [str(python), "-c", LOADER, str(hook), str(model), str(rows)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_the_image_with_the_override_predicts_the_training_probabilities(
    image_python: Path, trained: tuple[Path, np.ndarray], sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    model, expected = trained
    served = serve(image_python, model, sample_frame, tmp_path)
    assert served["xgboost"] == override_version()
    assert served["numpy"].startswith("1.26.")  # the image's numpy, not this project's
    assert len(served["hook"]) == len(expected) == len(sample_frame)
    np.testing.assert_allclose(served["hook"], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(served["stock"], expected, rtol=0, atol=1e-6)
    assert (
        0 < (expected >= schema.HAZARD_THRESHOLD).mean() < 1
    )  # both classes: the comparison means something


def test_without_the_override_the_image_predicts_other_probabilities_silently(
    image_base: Path, trained: tuple[Path, np.ndarray], sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """Why the override exists: the image's own xgboost loads the model without an error and answers."""
    model, expected = trained
    served = serve(with_xgboost(image_base, IMAGE_XGBOOST), model, sample_frame, tmp_path)
    assert served["xgboost"].startswith("1.7.")
    difference = np.abs(np.asarray(served["hook"]) - expected)
    assert difference.max() > 0.01, "xgboost 1.7 now predicts like training: the override may be unneeded"
