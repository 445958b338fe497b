"""The ClearML pipeline: get data → preprocessing → training (one model per seed) → select and publish."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import global_config
import third_party_patches
from asteroid import run_guard
from asteroid.rollout import faults
from asteroid.step_zygote import StepZygote, start_for_local_steps, step_launcher
from asteroid.steps.parameters import GET_DATA_DEFAULTS, PREPROCESSING_DEFAULTS, TRAINING_DEFAULTS
from asteroid.steps.select_best import select_best
from asteroid.tracking import PEAK_RSS_VALUE, STEP_FRAMEWORKS, peak_rss_mb

STEP_SCRIPTS = {
    "get_data": ("get_data.py", global_config.GET_DATA_TASK, "data_processing", GET_DATA_DEFAULTS),
    "preprocessing": (
        "preprocessing.py",
        global_config.PREPROCESS_TASK,
        "data_processing",
        PREPROCESSING_DEFAULTS,
    ),
    "model_training": ("model_training.py", global_config.TRAINING_TASK, "training", TRAINING_DEFAULTS),
}
TEMPLATE_TAG = "step-template"
# One training task trains every seed (one model each): cheaper than a process per seed on two cores.
TRAINING_STEP = "training"
ACTIVE_RUNS_DIR = global_config.RUNS_DIR / "active"  # one record per run in progress (run_guard)
# How often the controller polls step status, in minutes: it sees a step end up to this long after (the SDK
# default of 0.2 added ~12 s per step, 0.002 about 0.1 s). A poll reads a running step's status from the
# server at most once a second whatever this is (`BaseJob.status`): a NASA-size run made 496 API requests
# at 0.002 and at 0.0005 alike.
POLL_MINUTES = 0.0005


class PipelineFailed(RuntimeError):
    pass


@dataclass
class PipelineOptions:
    seeds: int = TRAINING_DEFAULTS["seeds"]
    queue: str | None = None
    query_date: str = GET_DATA_DEFAULTS["query_date"]
    split_seed: int = PREPROCESSING_DEFAULTS["split_seed"]
    # training hyperparameters over the defaults (pipeline.py --params-from), and the task they came from
    training_params: dict[str, Any] = field(default_factory=dict)
    params_from: str = ""
    fault: str = ""  # drills only: a deliberately broken model (asteroid/rollout/faults.py)

    def validate(self) -> None:
        if not 1 <= self.seeds <= 32:
            raise ValueError(f"seeds must be between 1 and 32, got {self.seeds}")
        faults.parse(self.fault)


def has_git_remote(path: Path) -> bool:
    """Whether agents could clone this checkout (a repository with a remote)."""
    try:
        remotes = subprocess.run(["git", "remote"], cwd=path, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return remotes.returncode == 0 and bool(remotes.stdout.strip())


def uses_standalone_code(mode: str | None = None) -> bool:
    mode = mode or global_config.STEP_CODE
    if mode not in ("auto", "standalone", "repository"):
        raise ValueError(f"ASTEROID_STEP_CODE must be auto, standalone or repository, got {mode!r}")
    return mode == "standalone" or (mode == "auto" and not has_git_remote(global_config.ROOT))


def register_templates() -> dict[str, str]:
    """Draft tasks the pipeline clones, one per step script, for the current code.

    With a git remote, agents clone the repository at the recorded commit (plus the uncommitted diff).
    Without one, a task carries its whole script and agents import the installed ``asteroid`` package; such a
    template is reused while its script is unchanged.
    """
    standalone = uses_standalone_code()
    ids = {}
    for step, (script, task_name, task_type, defaults) in STEP_SCRIPTS.items():
        path = global_config.ROOT / script
        template = _reusable_template(f"{task_name} (template)", path) if standalone else None
        if template is None:
            template = _create_template(f"{task_name} (template)", task_type, path, standalone)
        template.set_parameters({f"General/{key}": value for key, value in defaults.items()})
        ids[step] = str(template.id)
    return ids


def _reusable_template(name: str, script: Path) -> Any:
    from clearml import Task

    candidates = Task.get_tasks(
        project_name=global_config.PROJECT_NAME,
        task_name=f"^{re.escape(name)}$",
        task_filter={"system_tags": [TEMPLATE_TAG], "status": ["created"], "order_by": ["-last_update"]},
    )
    source = script.read_text()
    for candidate in candidates:
        if candidate.data.script and candidate.data.script.diff == source:
            return candidate
    return None


def _create_template(name: str, task_type: str, script: Path, standalone: bool) -> Any:
    from clearml import Task

    template = Task.create(
        project_name=global_config.PROJECT_NAME,
        task_name=name,
        task_type=task_type,
        script=str(script),
        working_directory=str(global_config.ROOT),
        add_task_init_call=False,
        packages=False,
        force_single_script_file=standalone,
    )
    template.set_system_tags([*template.get_system_tags(), TEMPLATE_TAG])
    return template


def build(options: PipelineOptions) -> Any:
    from clearml import PipelineController

    templates = register_templates()
    pipe = PipelineController(
        name=global_config.PIPELINE_NAME,
        project=global_config.PROJECT_NAME,
        version="1.0.0",
        pool_frequency=POLL_MINUTES,
        add_pipeline_tags=True,
        abort_on_failure=True,
    )
    if options.queue:
        pipe.set_default_execution_queue(options.queue)
    # Pipeline parameters: visible on the pipeline task, and editable when it is cloned and re-run.
    pipe.add_parameter("query_date", options.query_date, "last close-approach date of the ingested rows")
    pipe.add_parameter("split_seed", options.split_seed, "seed of the group-aware train/val/test split")
    pipe.add_parameter("seeds", options.seeds, "number of training seeds (one model each)")
    pipe.add_parameter("params_from", options.params_from, "task the training parameters came from")
    pipe.add_step(
        name="get_data",
        base_task_id=templates["get_data"],
        parameter_override={"General/query_date": "${pipeline.query_date}"},
    )
    pipe.add_step(
        name="preprocessing",
        parents=["get_data"],
        base_task_id=templates["preprocessing"],
        parameter_override={
            "General/raw_dataset_id": "${get_data.parameters.Outputs/raw_dataset_id}",
            "General/split_seed": "${pipeline.split_seed}",
        },
    )
    pipe.add_step(
        name=TRAINING_STEP,
        parents=["preprocessing"],
        base_task_id=templates["model_training"],
        parameter_override={
            "General/preprocessed_dataset_id": "${preprocessing.parameters.Outputs/preprocessed_dataset_id}",
            "General/seeds": "${pipeline.seeds}",
            "General/fault": options.fault,
            **{f"xgboost/{key}": value for key, value in options.training_params.items()},
        },
    )
    pipe.add_function_step(
        name="select_best",
        function=select_best,
        function_kwargs={"training_step": TRAINING_STEP},
        function_return=["summary"],
        parents=[TRAINING_STEP],
        cache_executed_step=False,
        auto_connect_frameworks=STEP_FRAMEWORKS,
    )
    return pipe


def run(options: PipelineOptions, zygote: StepZygote | None = None) -> dict[str, Any]:
    """Run the pipeline (steps locally, or on agents when a queue is given); returns the run summary.

    Local steps are forked from ``zygote`` (``step_zygote.start_for_local_steps``; when none is given, one
    is started and ended here).
    """
    options.validate()
    os.chdir(global_config.ROOT)  # local steps run their scripts relative to the project root
    started = time.monotonic()
    own_zygote = zygote is None
    zygote = start_for_local_steps(options.queue, str(global_config.ROOT)) if own_zygote else zygote
    try:
        pipe = build(options)
        if not options.queue:
            third_party_patches.refresh_status_when_a_local_step_ends()
        if zygote is not None:
            third_party_patches.launch_local_steps_with(step_launcher(zygote))
        # Recorded while it runs: a next run marks it failed if this process dies without ending it.
        running = run_guard.record_run(pipe.id, ACTIVE_RUNS_DIR)
        try:
            # The controller always runs here; its steps run here too unless a queue hands them to agents.
            pipe.start_locally(run_pipeline_steps_locally=not options.queue)
        finally:
            run_guard.forget_run(running)
    finally:
        if zygote is not None:
            third_party_patches.launch_local_steps_with(None)
            if own_zygote:
                zygote.close()
    nodes = pipe.get_pipeline_dag()
    failed = {name: node.status for name, node in nodes.items() if node.status not in ("completed", "cached")}
    if failed:
        raise PipelineFailed(_failure_message(failed, nodes))
    summary = collect_summary(pipe, nodes, time.monotonic() - started)
    summary["params_from"] = options.params_from or "defaults"
    write_summary(summary)
    return summary


def _failure_message(failed: dict[str, str], nodes: dict[str, Any]) -> str:
    lines = ["pipeline failed:"]
    for name, status in failed.items():
        task_id = nodes[name].executed or (nodes[name].job.task_id() if nodes[name].job else None)
        lines.append(
            f"  step {name!r}: {status}" + (f" (task {task_id}; see its console log)" if task_id else "")
        )
    return "\n".join(lines)


def step_timing(task_id: str, origin: dt.datetime) -> dict[str, float | None]:
    """When a step's task was created, started and completed (seconds after ``origin``), and how much of
    its run was the step's own compute (the rest is process start, ClearML reporting and uploads), and the
    step process's peak resident memory."""
    from clearml import Task

    task = Task.get_task(task_id=task_id)
    data = task.data

    def offset(moment: dt.datetime | None) -> float | None:
        return round((moment - origin).total_seconds(), 2) if moment else None

    summary_values = task.get_last_scalar_metrics().get("Summary", {})
    compute = summary_values.get("compute_seconds", {}).get("last")
    run_seconds = (data.completed - data.started).total_seconds() if data.started and data.completed else None
    return {
        "created": offset(data.created),
        "started": offset(data.started),
        "completed": offset(data.completed),
        "run_seconds": round(run_seconds, 2) if run_seconds is not None else None,
        "compute_seconds": compute,
        "peak_rss_mb": summary_values.get(PEAK_RSS_VALUE, {}).get("last"),
    }


def collect_summary(pipe: Any, nodes: dict[str, Any], wall_seconds: float) -> dict[str, Any]:
    from clearml import Task

    selection_task = Task.get_task(task_id=nodes["select_best"].executed)
    selection = selection_task.artifacts["summary"].get()
    preprocessing_task = Task.get_task(task_id=nodes["preprocessing"].executed)
    split_rows = {
        part: int(value["last"])
        for key, value in preprocessing_task.get_last_scalar_metrics().get("Summary", {}).items()
        if key.startswith("rows_") and (part := key[len("rows_") :])
    }
    origin = Task.get_task(task_id=pipe.id).data.created
    timeline = {name: step_timing(node.executed, origin) for name, node in nodes.items() if node.executed}
    return {
        "pipeline_id": pipe.id,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(wall_seconds, 2),
        # this process: the controller, and the CSV's ingestion before it when pipeline.py loaded one
        "controller_peak_rss_mb": peak_rss_mb(),
        "winner": selection["winner"],
        "selection_metric": selection["selection_metric"],
        "validation": selection["validation"],
        "test": selection["test"],
        "baseline_validation": selection["baseline_validation"],
        "baseline_test": selection["baseline_test"],
        "candidates": selection["candidates"],
        "serving": selection.get("serving"),
        "rows_per_split": split_rows,
        "step_seconds": {name: timing["run_seconds"] for name, timing in timeline.items()},
        "timeline": timeline,
        "step_tasks": {name: node.executed for name, node in nodes.items()},
    }


def write_summary(summary: dict[str, Any], runs_dir: Path | None = None) -> Path:
    """runs/latest/summary.json (written atomically) plus a timestamped copy."""
    runs_dir = runs_dir or global_config.RUNS_DIR
    latest = runs_dir / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2, default=str) + "\n"
    temp = latest / "summary.json.tmp"
    temp.write_text(text)
    os.replace(temp, latest / "summary.json")
    (runs_dir / f"summary-{summary['pipeline_id']}.json").write_text(text)
    return latest / "summary.json"
