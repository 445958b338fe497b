"""Step 3 — train one XGBoost classifier (one seed), evaluate it beside the CNEOS rule, register the model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

import global_config
from asteroid import evaluate, features, train
from asteroid.steps.interface import SPLIT_DIR, TRAINING_DEFAULTS
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


def evaluate_split(
    result: train.TrainResult, split: features.Split, threshold: float
) -> dict[str, dict[str, Any]]:
    """Model and baseline metrics on validation and test."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("val", "test"):
        part = getattr(split, name)
        probabilities = train.predict_proba(result.booster, part.features)
        out[name] = evaluate.classification_metrics(part.labels, probabilities, threshold)
        out[f"baseline_{name}"] = evaluate.baseline_metrics(part.features, part.labels)
    return out


def rule_comparison(result: train.TrainResult, split: features.Split, threshold: float) -> pd.DataFrame:
    """Per split part (val, test): the rows only the model or only the rule gets right, and who wins."""
    rows = {}
    for name in ("val", "test"):
        part = getattr(split, name)
        predicted = train.predict(result.booster, part.features, threshold)
        counts = evaluate.rule_disagreements(part.labels, predicted, evaluate.cneos_baseline(part.features))
        rows[name] = {"rows": len(part), **counts, "model vs rule": evaluate.outcome(counts)}
    return pd.DataFrame(rows).T


def register_model(
    task: Any, result: train.TrainResult, metrics: dict[str, Any], spec: dict[str, Any]
) -> str:
    from clearml import OutputModel

    model = OutputModel(
        task=task,
        name=global_config.MODEL_NAME,
        framework="XGBoost",
        tags=[f"seed-{task.get_parameter('General/seed')}"],
        comment="XGBoost binary:logistic; input: features in feature_names order; output: P(hazardous)",
    )
    model.set_metadata("feature_names", json.dumps(result.feature_names), "json")
    model.set_metadata("val_pr_auc", str(metrics["val"]["pr_auc"]), "float")
    model.set_metadata("val_logloss", str(result.best_score), "float")
    with tempfile.TemporaryDirectory() as work_dir:
        path = train.save_model(result.booster, Path(work_dir) / "asteroid_xgb.json")
        (Path(work_dir) / "feature_spec.json").write_text(json.dumps(spec))
        model.update_weights(
            weights_filename=str(path), auto_delete_file=False, iteration=result.best_iteration
        )
        task.upload_artifact(
            "feature_spec", artifact_object=str(Path(work_dir) / "feature_spec.json"), wait_on_upload=True
        )
    return str(model.id)


def report(
    task: Any,
    result: train.TrainResult,
    metrics: dict[str, Any],
    comparison: pd.DataFrame,
    split: features.Split,
) -> None:
    logger = task.get_logger()
    for dataset_name, history in result.evals_result.items():
        for metric_name, values in history.items():
            for iteration, value in enumerate(values):
                logger.report_scalar(metric_name, dataset_name, value=float(value), iteration=iteration)
    for split_name, values in metrics.items():
        for metric in METRICS:
            logger.report_single_value(f"{split_name}/{metric}", float(values[metric]))
    table = pd.DataFrame({name: {m: values[m] for m in METRICS} for name, values in metrics.items()}).round(5)
    logger.report_table(
        "metrics", "model vs CNEOS rule", iteration=0, table_plot=table.reset_index(names="metric")
    )
    report_rule_comparison(logger, comparison)
    test = split.test
    report_plots(
        logger, result, metrics["test"], test.labels, train.predict_proba(result.booster, test.features)
    )


def report_rule_comparison(logger: Any, comparison: pd.DataFrame) -> None:
    """The model against the rule per split part: a table, and the rows each one alone gets right as bars."""
    logger.report_table(
        "model vs CNEOS rule",
        "rows only one of them gets right",
        iteration=0,
        table_plot=comparison.reset_index(names="split"),
    )
    for series in (evaluate.MODEL_ONLY_RIGHT, evaluate.RULE_ONLY_RIGHT):
        logger.report_histogram(
            "model vs CNEOS rule per split",
            series,
            values=[int(value) for value in comparison[series]],
            iteration=0,
            xlabels=list(comparison.index),
            xaxis="split",
            yaxis="rows",
        )


def report_plots(
    logger: Any, result: train.TrainResult, test_metrics: dict[str, Any], labels: Any, scores: Any
) -> None:
    """Feature importance, confusion matrix, ROC and PR curves as native (interactive) ClearML plots."""
    importance = evaluate.feature_importance(result.booster)
    logger.report_histogram(
        "feature importance",
        "total gain",
        values=list(importance.values()),
        iteration=0,
        xlabels=list(importance),
        xaxis="feature",
        yaxis="total gain",
    )
    matrix = [[test_metrics["tn"], test_metrics["fp"]], [test_metrics["fn"], test_metrics["tp"]]]
    logger.report_confusion_matrix(
        "confusion matrix",
        "test",
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
            "test",
            scatter=list(zip(x, y, strict=True)),
            iteration=0,
            xaxis=xaxis,
            yaxis=yaxis,
            mode="lines",
        )


def run(task: Any, params: dict[str, Any], hyperparams: dict[str, Any]) -> str:
    dataset_id = params["preprocessed_dataset_id"] or latest_dataset_id(
        global_config.PREPROCESSED_DATASET_NAME
    )
    split_dir = dataset_local_copy(dataset_id) / SPLIT_DIR
    clock = ComputeClock()
    with clock.measure():
        split = features.load_split(split_dir)
        spec = features.load_feature_spec(split_dir)
        result = train.train_classifier(split, hyperparams, seed=params["seed"])
        metrics = evaluate_split(result, split, params["threshold"])
        comparison = rule_comparison(result, split, params["threshold"])
    report(task, result, metrics, comparison, split)
    clock.report(task)
    model_id = register_model(task, result, metrics, spec)
    set_output(task, "model_id", model_id)
    set_output(task, "val_pr_auc", metrics["val"]["pr_auc"])
    set_output(task, "val_logloss", result.best_score)
    val, test = metrics["val"], metrics["test"]
    print(
        f"seed {params['seed']}: best iteration {result.best_iteration}, "
        f"val pr_auc {val['pr_auc']:.4f} f1 {val['f1']:.4f}; test accuracy {test['accuracy']:.4f} "
        f"recall {test['recall']:.4f}; model {model_id}"
    )
    return model_id


def main() -> None:
    task = start_task(global_config.TRAINING_TASK, "training")
    params = connect_params(task, DEFAULTS)
    hyperparams = connect_params(task, HYPERPARAMS, section="xgboost")
    run(task, params, hyperparams)
