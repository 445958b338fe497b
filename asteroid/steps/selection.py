"""Step 4, the selection step's work (its ClearML function-step entry is `select_best.py`): read the models
the training task registered, choose one on the VALIDATION metric (`asteroid.ranking`), publish and tag it,
and report it beside the CNEOS rule.

The test split is only reported, never used to choose: choosing on test would make the reported test
metrics optimistic.
"""

from __future__ import annotations

import json
from typing import Any

import global_config
from asteroid.ranking import SELECTION_METRIC, Candidate, choose
from asteroid.steps.parameters import MODELS_OUTPUT, seed_prefix
from asteroid.tracking import get_output


def load_candidates(task_id: str) -> list[Candidate]:
    """The models a training task registered, one per seed, with their validation metrics."""
    from clearml import Task

    task = Task.get_task(task_id=task_id)
    listed = get_output(task, MODELS_OUTPUT)
    if not listed:
        raise RuntimeError(f"training task {task_id} ({task.name}) registered no model")
    return [
        Candidate(
            task_id=task_id,
            seed=int(entry["seed"]),
            model_id=str(entry["model_id"]),
            val_pr_auc=float(entry["val_pr_auc"]),
            val_logloss=float(entry["val_logloss"]),
        )
        for entry in json.loads(listed)
    ]


def step_task_id(pipeline_id: str, step_name: str) -> str:
    """The completed task the pipeline ran for this step (the newest one)."""
    from clearml import Task

    tasks = Task.query_tasks(
        task_filter={"parent": pipeline_id, "status": ["completed"], "order_by": ["-last_update"]},
        additional_return_fields=["name"],
    )
    for task in tasks:
        if task["name"] == step_name:
            return str(task["id"])
    raise RuntimeError(f"pipeline {pipeline_id} has no completed task for step {step_name!r}")


def single_values(task_id: str) -> dict[str, float]:
    """The "Summary" single values a training task reported (e.g. ``test/accuracy``)."""
    from clearml import Task

    scalars = Task.get_task(task_id=task_id).get_last_scalar_metrics()
    return {variant: values["last"] for variant, values in scalars.get("Summary", {}).items()}


def publish_winner(winner: Candidate) -> None:
    """Publish the winner's model, move it to the main project and move the winner tag to it.

    Training runs register their models in the pipeline's own (hidden) project; the published winner goes to
    the main project, where serving looks for it (``--project <project> --name <model> --tags <tag>``).
    """
    from clearml import Model, Task

    for previous in Model.query_models(
        model_name=global_config.MODEL_NAME, tags=[global_config.WINNER_TAG], include_archived=True
    ):
        if previous.id != winner.model_id:
            previous.tags = [t for t in previous.tags if t != global_config.WINNER_TAG]
    model = Model(model_id=winner.model_id)
    model.tags = sorted({*model.tags, global_config.WINNER_TAG})
    model.project = Task.get_project_id(global_config.PROJECT_NAME)
    model.publish()


def select_and_publish(training_task_id: str) -> dict[str, Any]:
    candidates = load_candidates(training_task_id)
    winner = choose(candidates)
    publish_winner(winner)
    values = single_values(training_task_id)
    summary = {
        "selection_metric": SELECTION_METRIC,
        "winner": {"task_id": winner.task_id, "model_id": winner.model_id, "seed": winner.seed},
        "candidates": [c.__dict__ for c in sorted(candidates, key=Candidate.rank_key)],
        "validation": _section(values, f"{seed_prefix(winner.seed)}val/"),
        "test": _section(values, f"{seed_prefix(winner.seed)}test/"),
        "baseline_validation": _section(values, "baseline_val/"),
        "baseline_test": _section(values, "baseline_test/"),
    }
    report(summary)
    return summary


def _section(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {name[len(prefix) :]: value for name, value in values.items() if name.startswith(prefix)}


def report(summary: dict[str, Any]) -> None:
    """Report the winner beside the baseline on the step's own task (and so in the pipeline UI)."""
    import pandas as pd
    from clearml import Task

    task = Task.current_task()
    if task is None:
        return
    logger = task.get_logger()
    table = pd.DataFrame(
        {
            "model (test)": summary["test"],
            "CNEOS rule (test)": summary["baseline_test"],
            "model (validation)": summary["validation"],
            "CNEOS rule (validation)": summary["baseline_validation"],
        }
    ).round(5)
    logger.report_table(
        "winner", "model vs CNEOS rule", iteration=0, table_plot=table.reset_index(names="metric")
    )
    for name, value in summary["test"].items():
        logger.report_single_value(f"winner_test/{name}", value)
    for name, value in summary["baseline_test"].items():
        logger.report_single_value(f"baseline_test/{name}", value)
