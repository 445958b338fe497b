"""XGBoost binary classifier: training with early stopping, and JSON model files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from asteroid import schema
from asteroid.splitting import Split, SplitPart

# Training-loop and data settings in the params dict; everything else goes to xgboost as a booster
# parameter.
_LOOP_KEYS = (
    "num_boost_round",
    "early_stopping_rounds",
    "split_features",
    "monotone_decreasing",
    "monotone_increasing",
    "sample_weighting",
)
SAMPLE_WEIGHTINGS = ("per_asteroid", "per_row")
# Rows of the training set evaluated every round for the training curve. Measured on 200,000 rows: evaluating
# all 140,000 training rows (AUC-PR sorts them each round) took two thirds of the training time.
TRAINING_CURVE_ROWS = 50_000
MOID = "minimum_orbit_intersection"
MAGNITUDE = "absolute_magnitude"
CNEOS_CELL = schema.CNEOS_CELL
# The defaults were chosen on validation over 20 group-split seeds of NASA's table (benchmarks/model_bench.py,
# README "Model quality"). NASA's label is the CNEOS definition (MOID <= 0.05 au and H <= 22.0) with noise at
# H 21.9-22.6 that no column resolves: trees free to split on the other 15 orbital columns, or weighting the
# rows of often-observed asteroids up, only learn that noise and lose to the rule on half of the splits. The
# trees also split on `in_cneos_cell` (the rule's cell as a 0/1 feature), so the split lies at the thresholds
# themselves rather than at whichever training values lie next to them.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": ["aucpr", "logloss"],  # early stopping watches the last one: logloss
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.1,
    "subsample": 0.9,
    "colsample_bytree": 1.0,
    # Leaves need weight behind them and splits need gain: a handful of noisy rows near H = 22 cannot carve
    # out a leaf of their own.
    "min_child_weight": 3.0,
    "gamma": 1.0,
    "lambda": 1.0,
    # Positives weighted up called H = 22.1 hazardous (43 % of its rows are) and lost to the rule.
    "scale_pos_weight": 1.0,
    "nthread": 1,  # measured: 5x faster than 2 threads on 3k rows
    "num_boost_round": 400,
    "early_stopping_rounds": 40,
    # Comma-separated features the trees may split on ("" = all). The model still takes every feature in
    # `feature_names` order as input; the others are hidden from the trees (missing) during training.
    "split_features": f"{MOID},{MAGNITUDE},{CNEOS_CELL}",
    # Comma-separated features in which the predicted risk never increases (MOID and H: closer and larger
    # is never safer).
    "monotone_decreasing": f"{MOID},{MAGNITUDE}",
    # Comma-separated features in which the predicted risk never decreases (inside the CNEOS cell is never
    # safer than outside it).
    "monotone_increasing": CNEOS_CELL,
    # per_asteroid: every asteroid weighs 1 in total, however many close approaches it has in the table
    # (one asteroid with three rows otherwise decides a whole H value); per_row: every row weighs 1.
    "sample_weighting": "per_asteroid",
}


@dataclass
class TrainResult:
    """A trained booster (cut at its best iteration) and its training history."""

    booster: xgb.Booster
    best_iteration: int
    best_score: float
    evals_result: dict[str, dict[str, list[float]]]
    params: dict[str, Any]
    feature_names: list[str]


def make_dmatrix(
    features: pd.DataFrame, labels: pd.Series | None = None, weights: np.ndarray | None = None
) -> xgb.DMatrix:
    """A DMatrix that keeps the feature names (they travel into the saved model)."""
    return xgb.DMatrix(
        features.to_numpy(dtype=np.float32),
        label=None if labels is None else labels.to_numpy(dtype=np.float32),
        weight=weights,
        feature_names=[str(name) for name in features.columns],
    )


def merge_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """DEFAULT_PARAMS overridden by params (unknown keys are passed on to xgboost)."""
    return {**DEFAULT_PARAMS, **(params or {})}


def _feature_list(value: str, feature_names: list[str], key: str) -> list[str]:
    """Parse a comma-separated list of feature names, each of which must be a model feature."""
    names = [name.strip() for name in str(value).split(",") if name.strip()]
    unknown = [name for name in names if name not in feature_names]
    if unknown:
        raise ValueError(f"{key}: not model features: {', '.join(unknown)}")
    return names


def monotone_constraints(decreasing: str, feature_names: list[str], increasing: str = "") -> str:
    """XGBoost's constraint vector, e.g. ``(0,-1,1)``: -1 for the features named in ``decreasing``, 1 for
    those in ``increasing``, 0 for the rest."""
    down = set(_feature_list(decreasing, feature_names, "monotone_decreasing"))
    up = set(_feature_list(increasing, feature_names, "monotone_increasing"))
    if down & up:
        raise ValueError(f"both monotone_decreasing and monotone_increasing: {', '.join(sorted(down & up))}")
    signs = {**dict.fromkeys(down, "-1"), **dict.fromkeys(up, "1")}
    return "(" + ",".join(signs.get(name, "0") for name in feature_names) + ")"


def hidden_from_trees(features: pd.DataFrame, split_features: str) -> pd.DataFrame:
    """The features with every column outside ``split_features`` set to missing, so no tree splits on it."""
    allowed = _feature_list(split_features, list(features.columns), "split_features")
    if not allowed:
        return features
    return features.assign(**{name: np.nan for name in features.columns if name not in allowed})


def sample_weights(groups: pd.Series, weighting: str) -> np.ndarray | None:
    """Row weights: per_asteroid gives each row 1 / (rows of its asteroid); per_row gives none (all 1)."""
    if weighting not in SAMPLE_WEIGHTINGS:
        raise ValueError(f"sample_weighting must be one of {SAMPLE_WEIGHTINGS}, got {weighting!r}")
    if weighting == "per_row":
        return None
    return (1.0 / groups.map(groups.value_counts())).to_numpy(dtype=np.float32)


def training_matrix(part: SplitPart, merged: dict[str, Any]) -> xgb.DMatrix:
    """The DMatrix one split part trains or early-stops on, as the params ask (hidden features, weights)."""
    return make_dmatrix(
        hidden_from_trees(part.features, merged["split_features"]),
        part.labels,
        sample_weights(part.groups, merged["sample_weighting"]),
    )


def training_curve_matrix(dtrain: xgb.DMatrix, rows: int) -> xgb.DMatrix:
    """The training rows the training curve is computed on: all of them up to `rows`, else a fixed sample of
    `rows` of them (labels and weights kept). The curve is only reported; the model does not depend on it."""
    if dtrain.num_row() <= rows:
        return dtrain
    sample = np.sort(np.random.default_rng(0).choice(dtrain.num_row(), size=rows, replace=False))
    return dtrain.slice(sample)


@dataclass(frozen=True)
class TrainingData:
    """The matrices one split trains on, built once for every seed trained on it: XGBoost keeps a matrix's
    histogram bins with it, so a second seed on the same matrices skips binning (measured on a million
    rows: 0.85 s of a seed's 7 s of CPU) and trains the very same model as on fresh ones."""

    train: xgb.DMatrix
    val: xgb.DMatrix
    curve: xgb.DMatrix  # the training rows the training curve is computed on
    # the data settings they were built with (hidden features, weights)
    data_params: tuple[tuple[str, Any], ...]


_DATA_KEYS = ("split_features", "sample_weighting")


def training_data(split: Split, params: dict[str, Any] | None = None) -> TrainingData:
    """The matrices `train_classifier` trains on for these params (only their data settings matter)."""
    merged = merge_params(params)
    dtrain = training_matrix(split.train, merged)
    return TrainingData(
        train=dtrain,
        val=training_matrix(split.val, merged),
        curve=training_curve_matrix(dtrain, TRAINING_CURVE_ROWS),
        data_params=tuple((key, merged[key]) for key in _DATA_KEYS),
    )


def train_classifier(
    split: Split, params: dict[str, Any] | None = None, seed: int = 0, data: TrainingData | None = None
) -> TrainResult:
    """Train on split.train with early stopping on split.val (on `data`, the matrices of the same split and
    data settings built beforehand, when given)."""
    merged = merge_params(params)
    booster_params = {key: value for key, value in merged.items() if key not in _LOOP_KEYS}
    booster_params["seed"] = seed
    names = list(split.train.features.columns)
    booster_params["monotone_constraints"] = monotone_constraints(
        merged["monotone_decreasing"], names, merged["monotone_increasing"]
    )
    if data is None:
        data = training_data(split, merged)
    elif data.data_params != tuple((key, merged[key]) for key in _DATA_KEYS):
        raise ValueError(
            f"training data built with {dict(data.data_params)}, the params ask for other settings"
        )
    history: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(
        booster_params,
        data.train,
        num_boost_round=int(merged["num_boost_round"]),
        # early stopping watches the last set: validation
        evals=[(data.curve, "train"), (data.val, "val")],
        early_stopping_rounds=int(merged["early_stopping_rounds"]),
        evals_result=history,
        verbose_eval=False,
    )
    best_iteration = int(booster.best_iteration)
    best_score = float(booster.best_score)
    # Keep only the trees up to the best iteration, so the saved model is the one early stopping chose.
    best = booster[: best_iteration + 1]
    return TrainResult(best, best_iteration, best_score, history, merged, list(split.feature_names))


def predict_proba(booster: xgb.Booster, features: pd.DataFrame) -> np.ndarray:
    """Probability of being hazardous, one per row (columns are matched by name)."""
    names = booster.feature_names
    if names is not None:
        missing = [name for name in names if name not in features.columns]
        if missing:
            raise ValueError(f"features missing for the model: {', '.join(missing)}")
        features = features[names]
    return booster.predict(make_dmatrix(features)).astype(np.float64)


def predict(
    booster: xgb.Booster, features: pd.DataFrame, threshold: float = schema.HAZARD_THRESHOLD
) -> np.ndarray:
    """0/1 predictions at a probability threshold."""
    return labels_at(predict_proba(booster, features), threshold)


def labels_at(probabilities: np.ndarray, threshold: float = schema.HAZARD_THRESHOLD) -> np.ndarray:
    """0/1 predictions of probabilities already computed: hazardous at or above the threshold."""
    return (probabilities >= threshold).astype(np.int64)


def save_model(booster: xgb.Booster, path: str | Path) -> Path:
    """Save in XGBoost's JSON format (feature names included)."""
    path = Path(path)
    if path.suffix != ".json":
        raise ValueError(f"model path must end in .json (XGBoost JSON format), got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(path)
    return path


def load_model(path: str | Path) -> xgb.Booster:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    booster = xgb.Booster()
    booster.load_model(path)
    return booster
