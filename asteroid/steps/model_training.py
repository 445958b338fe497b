"""Step 3 — train one XGBoost classifier per seed in one task, evaluate each beside the CNEOS rule, register
one model per seed.

One process trains every seed: on two cores, three step processes spent most of their time importing
clearml, pandas and xgboost side by side, while training one seed takes a fraction of a second.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import global_config
from asteroid import evaluate, split_files, splitting, train
from asteroid.quality import config as quality_config
from asteroid.rollout import faults
from asteroid.serving import contract
from asteroid.steps.parameters import (
    MODELS_OUTPUT,
    OBJECTIVE_SERIES,
    OBJECTIVE_TITLE,
    SPLIT_DIR,
    TRAINING_DEFAULTS,
    seed_prefix,
)
from asteroid.tracking import (
    ComputeClock,
    connect_params,
    dataset_local_copy,
    latest_dataset_id,
    set_output,
    start_task,
)

# Hyperparameters are connected one by one so that the UI and pipeline overrides can change each.
HYPERPARAMS = {
    k: v for k, v in train.DEFAULT_PARAMS.items() if k not in ("objective", "eval_metric", "tree_method")
}
DEFAULTS = TRAINING_DEFAULTS
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")


def part_probabilities(result: train.TrainResult, split: splitting.Split) -> dict[str, np.ndarray]:
    """The model's probabilities on validation and test, computed once for every use of them."""
    return {
        name: train.predict_proba(result.booster, getattr(split, name).features) for name in ("val", "test")
    }


def evaluate_split(
    probabilities: dict[str, np.ndarray], split: splitting.Split, threshold: float
) -> dict[str, dict[str, Any]]:
    """Model and baseline metrics on validation and test."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("val", "test"):
        part = getattr(split, name)
        out[name] = evaluate.classification_metrics(part.labels, probabilities[name], threshold)
        out[f"baseline_{name}"] = evaluate.baseline_metrics(part.features, part.labels)
    return out


def rule_comparison(
    probabilities: dict[str, np.ndarray], split: splitting.Split, threshold: float
) -> pd.DataFrame:
    """Per split part (val, test): the rows only the model or only the rule gets right, and who wins."""
    rows = {}
    for name in ("val", "test"):
        part = getattr(split, name)
        predicted = train.labels_at(probabilities[name], threshold)
        counts = evaluate.rule_disagreements(part.labels, predicted, evaluate.cneos_baseline(part.features))
        rows[name] = {"rows": len(part), **counts, "model vs rule": evaluate.outcome(counts)}
    return pd.DataFrame(rows).T


def model_metadata(
    seed: int, result: train.TrainResult, metrics: dict[str, Any]
) -> dict[str, dict[str, str]]:
    """A registered model's metadata, key: {value, type}, as the SDK's ``set_all_metadata`` takes it."""
    values = {
        "feature_names": (json.dumps(result.feature_names), "json"),
        "seed": (str(seed), "int"),
        "val_pr_auc": (str(metrics["val"]["pr_auc"]), "float"),
        "val_logloss": (str(result.best_score), "float"),
        # the live-quality alerts fire below these (asteroid/quality/rules.py)
        quality_config.TEST_ACCURACY_KEY: (str(metrics["test"]["accuracy"]), "float"),
        quality_config.TEST_RECALL_KEY: (str(metrics["test"]["recall"]), "float"),
    }
    return {key: {"value": value, "type": kind} for key, (value, kind) in values.items()}


def register_model(
    task: Any, seed: int, result: train.TrainResult, metrics: dict[str, Any], work_dir: Path
) -> str:
    """Register one seed's model; its file (in work_dir, which must outlive the upload) uploads in the
    background."""
    from clearml import OutputModel

    model = OutputModel(
        task=task,
        name=global_config.MODEL_NAME,
        framework="XGBoost",
        tags=[f"seed-{seed}"],
        comment="XGBoost binary:logistic; input: features in feature_names order; output: P(hazardous)",
    )
    model.set_all_metadata(model_metadata(seed, result, metrics), replace=False)  # one request, not six
    # one file name per seed: the models of one task are uploaded into the same folder
    path = train.save_model(result.booster, work_dir / f"asteroid_xgb_seed{seed}.json")
    model.update_weights(weights_filename=str(path), auto_delete_file=False, iteration=result.best_iteration)
    return str(model.id)


def upload_feature_spec(task: Any, spec: dict[str, Any], work_dir: Path) -> None:
    path = work_dir / "feature_spec.json"
    path.write_text(json.dumps(spec))
    task.upload_artifact(contract.FEATURE_SPEC_ARTIFACT, artifact_object=str(path), wait_on_upload=True)


def report(
    logger: Any,
    seed: int,
    result: train.TrainResult,
    metrics: dict[str, Any],
    comparison: pd.DataFrame,
    split: splitting.Split,
    test_probabilities: np.ndarray,
) -> None:
    """One seed's learning curves, metrics beside the rule's, rule comparison and plots (series: the seed)."""
    for dataset_name, history in result.evals_result.items():
        for metric_name, values in history.items():
            for iteration, value in enumerate(values):
                logger.report_scalar(
                    metric_name, f"{dataset_name} seed {seed}", value=float(value), iteration=iteration
                )
    for split_name in ("val", "test"):
        for metric in METRICS:
            logger.report_single_value(
                f"{seed_prefix(seed)}{split_name}/{metric}", float(metrics[split_name][metric])
            )
    table = pd.DataFrame({name: {m: values[m] for m in METRICS} for name, values in metrics.items()}).round(5)
    logger.report_table(
        "metrics",
        f"seed {seed}: model vs CNEOS rule",
        iteration=0,
        table_plot=table.reset_index(names="metric"),
    )
    report_rule_comparison(logger, seed, comparison)
    test = split.test
    report_plots(logger, seed, result, metrics["test"], test.labels, test_probabilities)


def report_baseline(logger: Any, metrics: dict[str, Any]) -> None:
    """The CNEOS rule's metrics: the same rows for every seed, so reported once."""
    for split_name in ("baseline_val", "baseline_test"):
        for metric in METRICS:
            logger.report_single_value(f"{split_name}/{metric}", float(metrics[split_name][metric]))


def report_rule_comparison(logger: Any, seed: int, comparison: pd.DataFrame) -> None:
    """The model against the rule per split part: a table, and the rows each one alone gets right as bars."""
    logger.report_table(
        "model vs CNEOS rule",
        f"seed {seed}: rows only one of them gets right",
        iteration=0,
        table_plot=comparison.reset_index(names="split"),
    )
    for series in (evaluate.MODEL_ONLY_RIGHT, evaluate.RULE_ONLY_RIGHT):
        logger.report_histogram(
            f"model vs CNEOS rule per split, seed {seed}",
            series,
            values=[int(value) for value in comparison[series]],
            iteration=0,
            xlabels=list(comparison.index),
            xaxis="split",
            yaxis="rows",
        )


def report_plots(
    logger: Any, seed: int, result: train.TrainResult, test_metrics: dict[str, Any], labels: Any, scores: Any
) -> None:
    """Feature importance, confusion matrix, ROC and PR curves as native (interactive) ClearML plots."""
    importance = evaluate.feature_importance(result.booster)
    logger.report_histogram(
        "feature importance",
        f"total gain, seed {seed}",
        values=list(importance.values()),
        iteration=0,
        xlabels=list(importance),
        xaxis="feature",
        yaxis="total gain",
    )
    matrix = [[test_metrics["tn"], test_metrics["fp"]], [test_metrics["fn"], test_metrics["tp"]]]
    logger.report_confusion_matrix(
        "confusion matrix",
        f"test, seed {seed}",
        matrix=matrix,
        iteration=0,
        xaxis="predicted",
        yaxis="actual",
        xlabels=["not hazardous", "hazardous"],
        ylabels=["not hazardous", "hazardous"],
    )
    for title, (x, y), (xaxis, yaxis) in (
        ("ROC curve", evaluate.roc_points(labels, scores), ("false positive rate", "true positive rate")),
        ("precision-recall curve", evaluate.pr_points(labels, scores), ("recall", "precision")),
    ):
        logger.report_scatter2d(
            title,
            f"test, seed {seed}",
            scatter=list(zip(x, y, strict=True)),
            iteration=0,
            xaxis=xaxis,
            yaxis=yaxis,
            mode="lines",
        )


def train_seed(
    task: Any,
    split: splitting.Split,
    seed: int,
    params: dict[str, Any],
    hyperparams: dict[str, Any],
    clock: ComputeClock,
    work_dir: Path,
    data: train.TrainingData,
) -> dict[str, Any]:
    """Train (on `data`, the split's matrices every seed shares), evaluate, report and register one seed's
    model; returns what selection needs to know of it."""
    with clock.measure():
        result = train.train_classifier(split, hyperparams, seed=seed, data=data)
        # the serving hook answers "hazardous" at the threshold the model was evaluated with
        contract.stamp_model(result.booster, params["threshold"])
        faults.stamp(result.booster, params.get("fault", ""))  # drills only: a serving fault, if asked for
        probabilities = part_probabilities(result, split)
        metrics = evaluate_split(probabilities, split, params["threshold"])
        comparison = rule_comparison(probabilities, split, params["threshold"])
    logger = task.get_logger()
    report(logger, seed, result, metrics, comparison, split, probabilities["test"])
    if seed == 0:
        report_baseline(logger, metrics)
    model_id = register_model(task, seed, result, metrics, work_dir)
    val, test = metrics["val"], metrics["test"]
    print(
        f"seed {seed}: best iteration {result.best_iteration}, "
        f"val pr_auc {val['pr_auc']:.4f} f1 {val['f1']:.4f}; test accuracy {test['accuracy']:.4f} "
        f"recall {test['recall']:.4f}; model {model_id}"
    )
    return {"seed": seed, "model_id": model_id, "val_pr_auc": val["pr_auc"], "val_logloss": result.best_score}


def run(task: Any, params: dict[str, Any], hyperparams: dict[str, Any]) -> list[dict[str, Any]]:
    if params["seeds"] < 1:
        raise ValueError(f"seeds must be at least 1, got {params['seeds']}")
    dataset_id = params["preprocessed_dataset_id"] or latest_dataset_id(
        global_config.PREPROCESSED_DATASET_NAME
    )
    split_dir = dataset_local_copy(dataset_id, SPLIT_DIR) / SPLIT_DIR
    clock = ComputeClock()
    with clock.measure():
        split = split_files.load_split(split_dir)
        spec = split_files.load_feature_spec(split_dir)
        if faults.parse(params.get("fault", "")).shuffled_labels:  # drills only: a model the gate must refuse
            split = faults.with_shuffled_training_labels(split)
        data = train.training_data(split, hyperparams)
    with tempfile.TemporaryDirectory() as work_dir:
        models: list[dict[str, Any]] = []
        for seed in range(params["seeds"]):
            models.append(train_seed(task, split, seed, params, hyperparams, clock, Path(work_dir), data))
            best = max(model["val_pr_auc"] for model in models)
            task.get_logger().report_scalar(OBJECTIVE_TITLE, OBJECTIVE_SERIES, value=best, iteration=seed)
        # the rollout and the monitoring rules read the served threshold from it
        upload_feature_spec(task, contract.spec_with_threshold(spec, params["threshold"]), Path(work_dir))
        task.flush(wait_for_uploads=True)  # the model files upload in the background from work_dir
    clock.report(task)
    set_output(task, MODELS_OUTPUT, json.dumps(models))
    return models


def main() -> None:
    task = start_task(global_config.TRAINING_TASK, "training")
    params = connect_params(task, DEFAULTS)
    hyperparams = connect_params(task, HYPERPARAMS, section="xgboost")
    run(task, params, hyperparams)
