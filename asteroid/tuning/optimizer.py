"""A hyperparameter search over the training step, ClearML's HyperParameterOptimizer with OptimizerOptuna.

Each trial is a clone of the training step's task (the pipeline's template, pinned to one preprocessed dataset
version) with some of its ``xgboost`` parameters changed. The objective is what selection picks on: the best
validation PR-AUC of the trial's seeds (``interface.OBJECTIVE_TITLE``), reported after every seed, so that
hopeless trials can be pruned after their first seeds. The best trials are then checked against the CNEOS rule
over many group splits (``rule_check``); the recommendation is the best trial that passes and beats the
defaults on the objective, else the defaults.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

import global_config
from asteroid import comparison, dataset_files, split_files, train
from asteroid.steps.parameters import (
    OBJECTIVE_SERIES,
    OBJECTIVE_TITLE,
    SPLIT_DIR,
    TRAINING_DEFAULTS,
)
from asteroid.steps.preprocessing import raw_file
from asteroid.tracking import dataset_local_copy, latest_dataset_id, set_output
from asteroid.tuning import rule_check
from asteroid.tuning.params_source import RECOMMENDED_PARAMS, RECOMMENDED_SOURCE
from asteroid.tuning.space import DEFAULT_SPACE, SECTION, Domain, clearml_parameters, describe, typed_params

TUNING_TASK = "hyperparameter tuning"
# How often the optimizer polls its trials and reports progress (seconds). Optuna's loop sleeps whole seconds.
POLL_SECONDS = 1.0
REPORT_SECONDS = 5.0
# A trial is hopeless, and stopped, when its best-so-far objective after a seed is in the lowest quarter of
# the earlier trials' at that seed, once this many trials are complete: Optuna's percentile pruner keeping the
# top 75 %. The median pruner stopped 24 of 30 trials on NASA's table, where the objectives differ in the
# fourth decimal.
PRUNE_KEEP_PERCENT = 75.0
PRUNER_STARTUP_TRIALS = 5
# How long a pruned local trial gets to end after SIGTERM before it is killed (seconds).
STOP_GRACE_SECONDS = 10.0
RESULT_FILE = "tuning.json"  # in runs/latest/


@dataclass
class TuningOptions:
    trials: int = 20
    time_limit_minutes: float | None = None
    concurrency: int = 1
    sampler_seed: int = 0
    keep_top: int = 5
    check_top: int = 3
    queue: str | None = None
    dataset_id: str = ""
    seeds: int = TRAINING_DEFAULTS["seeds"]
    check_splits: int = rule_check.SPLITS
    prune: bool = True
    space: dict[str, Domain] = field(default_factory=lambda: dict(DEFAULT_SPACE))

    def validate(self) -> None:
        """Raise ValueError naming the first option out of range."""
        positive = {
            "trials": self.trials,
            "concurrency": self.concurrency,
            "keep-top": self.keep_top,
            "check-top": self.check_top,
            "seeds": self.seeds,
            "check-splits": self.check_splits,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"--{name} must be at least 1, got {value}")
        if self.time_limit_minutes is not None and not self.time_limit_minutes > 0:
            raise ValueError(f"--time-limit must be above 0 minutes, got {self.time_limit_minutes:g}")
        if self.check_top > self.keep_top:
            raise ValueError(f"--check-top ({self.check_top}) cannot exceed --keep-top ({self.keep_top})")

    def record(self, dataset_id: str, base_task_id: str) -> dict[str, Any]:
        """What the optimizer task records of the run (besides the search space)."""
        return {
            "objective": f"{OBJECTIVE_TITLE}/{OBJECTIVE_SERIES} (max, validation)",
            "trials": self.trials,
            "time_limit_minutes": self.time_limit_minutes if self.time_limit_minutes else "none",
            "concurrency": self.concurrency,
            "sampler": f"optuna TPESampler(seed={self.sampler_seed})",
            "pruner": (
                f"optuna PercentilePruner({PRUNE_KEEP_PERCENT:g}, n_startup_trials={PRUNER_STARTUP_TRIALS})"
                if self.prune
                else "none"
            ),
            "save_top_k_tasks_only": self.keep_top,
            "checked_against_rule": f"top {self.check_top} over {self.check_splits} group splits",
            "queue": self.queue or "local",
            "seeds_per_trial": self.seeds,
            "preprocessed_dataset_id": dataset_id,
            "base_task_id": base_task_id,
        }


@dataclass
class Progress:
    """Prints one line per finished trial: how many are done, and the best objective so far."""

    trials: int
    print_line: Callable[[str], None] = print
    done: int = 0
    best: float = -math.inf
    best_id: str = ""

    def __call__(self, job_id: str, value: Any, iteration: Any, params: dict, top_id: str) -> None:
        value = value[0] if isinstance(value, list | tuple) else value
        self.done += 1
        if value is None:
            self.print_line(f"trial {self.done}/{self.trials} done: {job_id} reported no objective")
            return
        if value > self.best:
            self.best, self.best_id = float(value), job_id
        self.print_line(
            f"trial {self.done}/{self.trials} done: {job_id} objective {value:.5f} — "
            f"best so far {self.best:.5f} ({self.best_id})"
        )


def dataset_to_tune_on(dataset_id: str) -> str:
    """The given preprocessed dataset version, else the latest one."""
    if dataset_id:
        return dataset_id
    try:
        return latest_dataset_id(global_config.PREPROCESSED_DATASET_NAME)
    except ValueError as exc:
        raise ValueError(f"{exc}: run pipeline.py first, or pass --dataset-id") from None


def base_task(dataset_id: str, seeds: int) -> Any:
    """A draft clone of the pipeline's training template, pinned to one dataset version and seed count."""
    from clearml import Task

    from asteroid.pipeline import register_templates

    template = register_templates()["model_training"]
    base = Task.clone(source_task=template, name=f"{global_config.TRAINING_TASK} (tuning base)")
    base.set_parameters({"General/preprocessed_dataset_id": dataset_id, "General/seeds": seeds})
    return base


def raw_table(preprocessed_id: str) -> pd.DataFrame:
    """The raw table the preprocessed dataset version was split from (its parent version)."""
    from clearml import Dataset

    graph = Dataset.get(dataset_id=preprocessed_id).get_dependency_graph()
    parents = graph.get(preprocessed_id) or []
    if not parents:
        raise ValueError(f"preprocessed dataset {preprocessed_id} has no parent raw dataset")
    return dataset_files.read_observations(raw_file(dataset_local_copy(parents[0])))


def defaults_objective(preprocessed_id: str, seeds: int) -> float:
    """The objective the training defaults reach on the same split: selection's pick among the seeds."""
    split = split_files.load_split(dataset_local_copy(preprocessed_id) / SPLIT_DIR)
    return float(comparison.pipeline_winner(split, seeds).val_metrics["pr_auc"])


def local_job_class() -> type:
    """ClearML's local trial job, whose abort also ends the trial's process.

    ``LocalClearmlJob.abort`` only marks the task stopped; the process trains on, then fails on its next write
    to the stopped task, and the trial ends ``failed``. An agent ends the process of a stopped task itself.
    """
    from clearml.automation.job import LocalClearmlJob

    class StoppableLocalJob(LocalClearmlJob):
        def abort(self) -> None:
            process = self._job_process
            if process is None or process.poll() is not None:
                super().abort()
                return
            # the process first: stopped while it runs, it would fail on its next write and mark itself failed
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
            # the SDK's own mark of a stop on request, which keeps the ended trial stopped rather than failed
            self.task.stopped(force=True, status_reason="user aborted: pruned by the optimizer")
            self.wait_for_process()

    return StoppableLocalJob


def make_optimizer(options: TuningOptions, base_id: str, task: Any) -> Any:
    import optuna
    from clearml.automation import HyperParameterOptimizer
    from clearml.automation.optuna import OptimizerOptuna

    pruner = (
        optuna.pruners.PercentilePruner(PRUNE_KEEP_PERCENT, n_startup_trials=PRUNER_STARTUP_TRIALS)
        if options.prune
        else optuna.pruners.NopPruner()
    )
    optimizer = HyperParameterOptimizer(
        base_task_id=base_id,
        hyper_parameters=clearml_parameters(options.space),
        objective_metric_title=OBJECTIVE_TITLE,
        objective_metric_series=OBJECTIVE_SERIES,
        objective_metric_sign="max",
        optimizer_class=OptimizerOptuna,
        max_number_of_concurrent_tasks=options.concurrency,
        execution_queue=options.queue or "default",
        optimization_time_limit=options.time_limit_minutes,
        auto_connect_task=task,
        save_top_k_tasks_only=options.keep_top,
        total_max_jobs=options.trials,
        max_iteration_per_job=None,
        pool_period_min=POLL_SECONDS / 60,
        optuna_sampler=optuna.samplers.TPESampler(seed=options.sampler_seed),
        optuna_pruner=pruner,
    )
    optimizer.set_report_period(REPORT_SECONDS / 60)
    if not options.queue:  # what start_locally() does, with trials that end when pruned
        optimizer.get_optimizer().set_job_class(local_job_class())
    return optimizer


def trial_params(task_id: str) -> dict[str, Any]:
    """A trial's full training configuration, as it trained (its connected ``xgboost`` section)."""
    from clearml import Task

    return typed_params(Task.get_task(task_id=task_id).get_parameters_as_dict().get(SECTION, {}))


def recommend(
    top: list[dict[str, Any]],
    table: pd.DataFrame,
    options: TuningOptions,
    baseline: float,
    print_line: Callable[[str], None],
) -> dict[str, Any]:
    """Check the best trials against the rule in objective order; the first that passes and beats the
    defaults' objective is recommended, else the defaults are."""
    checks = {"defaults": rule_check.check_configuration(table, None, options.check_splits, options.seeds)}
    print_line(f"defaults: objective {baseline:.5f}, {_verdict(checks['defaults'])}")
    for entry in top[: options.check_top]:
        trial_id, objective = entry["task_id"], entry["objective"]
        if objective <= baseline:
            print_line(f"trial {trial_id}: objective {objective:.5f} does not beat the defaults; not checked")
            break
        checks[trial_id] = check = rule_check.check_configuration(
            table, trial_params(trial_id), options.check_splits, options.seeds
        )
        print_line(f"trial {trial_id}: objective {objective:.5f}, {_verdict(check)}")
        if check.passed:
            return _recommendation(trial_id, objective, trial_params(trial_id), checks, baseline)
    return _recommendation("", baseline, dict(train.DEFAULT_PARAMS), checks, baseline)


def _verdict(check: rule_check.RuleCheck) -> str:
    outcomes = check.val_outcomes
    figures = (
        f"validation vs rule over {check.splits} splits: {outcomes['win']} wins / {outcomes['tie']} ties / "
        f"{outcomes['loss']} losses, recall {check.val_recall:.4f} (rule {check.rule_val_recall:.4f})"
    )
    return f"{figures} — {'passes' if check.passed else 'fails: ' + '; '.join(check.failures)}"


def _recommendation(
    trial_id: str,
    objective: float,
    params: dict[str, Any],
    checks: dict[str, rule_check.RuleCheck],
    baseline: float,
) -> dict[str, Any]:
    source = (
        f"trial {trial_id}"
        if trial_id
        else "the training defaults: no better trial passed the CNEOS rule check"
    )
    return {
        "trial_id": trial_id,
        "source": source,
        "objective": objective,
        "defaults_objective": baseline,
        "params": {key: params[key] for key in typed_params(params)},
        "rule_checks": {name: check.as_dict() for name, check in checks.items()},
    }


def report_result(task: Any, result: dict[str, Any]) -> None:
    """The rule checks as a table, the recommendation as output parameters and an artifact."""
    rows = {
        name: {
            "passed": check["passed"],
            "val wins/ties/losses": "/".join(str(check["val_outcomes"][k]) for k in comparison.OUTCOMES),
            "val recall": round(check["val_recall"], 5),
            "rule val recall": round(check["rule_val_recall"], 5),
            "val accuracy margin": round(check["val_accuracy_margin"], 5),
            "test wins/ties/losses": "/".join(str(check["test_outcomes"][k]) for k in comparison.OUTCOMES),
            "test recall": round(check["test_recall"], 5),
            "rule test recall": round(check["rule_test_recall"], 5),
        }
        for name, check in result["recommendation"]["rule_checks"].items()
    }
    task.get_logger().report_table(
        "CNEOS rule check",
        "configurations over group splits",
        iteration=0,
        table_plot=pd.DataFrame(rows).T.reset_index(names="configuration"),
    )
    recommendation = result["recommendation"]
    set_output(task, RECOMMENDED_PARAMS, json.dumps(recommendation["params"]))
    set_output(task, RECOMMENDED_SOURCE, recommendation["source"])
    set_output(task, "recommended_trial", recommendation["trial_id"])
    task.upload_artifact("tuning_result", artifact_object=result, wait_on_upload=True)


def top_trials(optimizer: Any, k: int) -> list[dict[str, Any]]:
    """The best completed trials, best first, with their objective (as the server orders them)."""
    details = optimizer.get_top_experiments_details(top_k=k, only_completed=True)
    key = f"{OBJECTIVE_TITLE}/{OBJECTIVE_SERIES}"
    return [
        {"task_id": entry["task_id"], "objective": float(entry["metrics"][key]["value"])} for entry in details
    ]


def write_result(result: dict[str, Any]) -> str:
    latest = global_config.RUNS_DIR / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    path = latest / RESULT_FILE
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return str(path)


def run(options: TuningOptions, print_line: Callable[[str], None] = print) -> dict[str, Any]:
    """Search, check the best trials against the rule, record everything on the optimizer task."""
    from clearml import Task

    options.validate()
    os.chdir(global_config.ROOT)  # local trials run the training script relative to the project root
    started = time.monotonic()
    dataset_id = dataset_to_tune_on(options.dataset_id)
    task = Task.init(
        project_name=global_config.PROJECT_NAME,
        task_name=TUNING_TASK,
        task_type=Task.TaskTypes.optimizer,
        reuse_last_task_id=False,
        auto_connect_frameworks=False,
        auto_resource_monitoring=False,
    )
    base = base_task(dataset_id, options.seeds)
    task.connect(options.record(dataset_id, base.id), name="tuning")
    task.connect_configuration(describe(options.space), name="search space")
    optimizer = make_optimizer(options, base.id, task)
    progress = Progress(options.trials, print_line)
    print_line(f"tuning {len(options.space)} parameters, {options.trials} trials — optimizer task {task.id}")
    if not optimizer.start(job_complete_callback=progress):
        raise RuntimeError("the optimizer did not start")
    optimizer.wait()
    optimizer.stop(wait_for_reporter=True)
    search_seconds = time.monotonic() - started
    top = top_trials(optimizer, options.keep_top)
    if not top:
        raise RuntimeError(f"no trial completed (optimizer task {task.id}; see the trials' console logs)")
    baseline = defaults_objective(dataset_id, options.seeds)
    recommendation = recommend(top, raw_table(dataset_id), options, baseline, print_line)
    result = {
        "optimizer_task_id": task.id,
        "trials": sorted(optimizer.get_optimizer().get_created_jobs_ids()),
        "top": top,
        "recommendation": recommendation,
        "search_seconds": round(search_seconds, 1),
        "wall_seconds": round(time.monotonic() - started, 1),
        "options": {**asdict(options), "space": describe(options.space)},
    }
    report_result(task, result)
    result["result_file"] = write_result(result)
    return result
