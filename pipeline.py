"""The asteroid-hazard ClearML pipeline: get data → preprocessing → XGBoost × N seeds → best model published.

    python pipeline.py                     # steps run locally (embedded backend if no server is configured)
    python pipeline.py --queue default     # steps are enqueued for clearml-agent workers
    NEO_SOURCE_CSV=nasa.csv python pipeline.py

Writes runs/latest/summary.json. Exits non-zero, naming the failed step, when any step fails; exits 1 in one
line naming the server when the ClearML server stops answering for ASTEROID_SERVER_GIVE_UP_SECONDS (45 s);
SIGTERM or SIGINT end the run and its steps within seconds, their tasks marked stopped.
"""

from __future__ import annotations

import argparse
import json
import sys

import global_config
import third_party_patches
from asteroid import database, run_guard
from asteroid.clearml_server import ServerUnavailable, ensure_server
from asteroid.pipeline import ACTIVE_RUNS_DIR, PipelineFailed, PipelineOptions, run
from asteroid.step_zygote import StepZygote, start_for_local_steps
from asteroid.steps.parameters import GET_DATA_DEFAULTS, PREPROCESSING_DEFAULTS, TRAINING_DEFAULTS
from asteroid.tracking import end_process


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--queue", help="enqueue the steps on this ClearML queue instead of running them here"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=TRAINING_DEFAULTS["seeds"],
        help="number of training runs (different seeds)",
    )
    parser.add_argument(
        "--source-csv",
        help="CSV to load into the database first (default: NEO_SOURCE_CSV, "
        "data/nasa.csv, else generated sample data)",
    )
    parser.add_argument(
        "--query-date", default=GET_DATA_DEFAULTS["query_date"], help="last close-approach date (YYYY-MM-DD)"
    )
    parser.add_argument("--split-seed", type=int, default=PREPROCESSING_DEFAULTS["split_seed"])
    parser.add_argument(
        "--params-from",
        metavar="TASK_ID",
        help="train with the parameters an optimizer task (tune.py) recommends, or a training task used",
    )
    parser.add_argument(
        "--inject-fault",
        default="",
        metavar="SPEC",
        help="drills only: train a deliberately broken model: shuffled_labels (the gate must refuse it) or "
        "serving:error_rate=0.3,latency_s=0.8,hazardous_rate=0.5 (the canary must roll it back)",
    )
    return parser.parse_args(argv)


def prepared_options(args: argparse.Namespace) -> PipelineOptions:
    """Load the source CSV into the database and read the training parameters: the run's options."""
    source, description = database.resolve_source_csv(args.source_csv)
    print(f"Loading {description}")
    print(database.load_csv(source, global_config.DATABASE_URL, progress=database.print_progress).summary())
    chosen = None
    if args.params_from:
        # imported only when asked for: it imports the training code (xgboost, scikit-learn), ~1 s
        from asteroid.tuning.params_source import params_from_task

        chosen = params_from_task(args.params_from)
        print(f"Training parameters from {chosen.description}: {json.dumps(chosen.params)}")
    return PipelineOptions(
        seeds=args.seeds,
        queue=args.queue,
        query_date=args.query_date,
        split_seed=args.split_seed,
        training_params=chosen.params if chosen else {},
        params_from=chosen.task_id if chosen else "",
        fault=args.inject_fault,
    )


def main(argv: list[str] | None = None, fork_zygote: bool = False) -> int:
    """Run the pipeline; the exit code. With ``fork_zygote`` (this script run as such) the local steps' zygote
    is forked from this process, holding what it has imported, before anything starts a thread here; it
    imports the rest of the steps' modules while this process loads the CSV. Otherwise (``pipeline.main``
    called by another program, whose process may hold anything) the zygote is a new interpreter."""
    args = parse_args(argv)
    zygote = start_for_local_steps(args.queue, str(global_config.ROOT), fork=fork_zygote)
    try:
        return run_controller(args, zygote)
    finally:
        if zygote is not None:
            zygote.close()


def run_controller(args: argparse.Namespace, zygote: StepZygote | None) -> int:
    try:
        database.validate_query_date(args.query_date)
        third_party_patches.install_clearml_sdk_patches()
        run_guard.guard("pipeline controller", ensure_server())
        for task_id in run_guard.fail_abandoned_runs(ACTIVE_RUNS_DIR):
            print(f"marked task {task_id} failed: the run that started it ended without closing it")
        summary = run(prepared_options(args), zygote)
    except (PipelineFailed, ServerUnavailable, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    winner, test, baseline = summary["winner"], summary["test"], summary["baseline_test"]
    print(
        json.dumps(
            {k: summary[k] for k in ("pipeline_id", "winner", "rows_per_split", "wall_seconds")}, indent=2
        )
    )
    print(
        f"winner: seed {winner['seed']} model {winner['model_id']} — test accuracy {test['accuracy']:.4f}, "
        f"recall {test['recall']:.4f}, F1 {test['f1']:.4f} | "
        f"CNEOS rule: accuracy {baseline['accuracy']:.4f}, "
        f"recall {baseline['recall']:.4f}"
    )
    print(f"summary written to {global_config.RUNS_DIR / 'latest' / 'summary.json'}")
    return 0


if __name__ == "__main__":
    exit_code = main(fork_zygote=True)
    if exit_code == 0:
        end_process()  # the run is complete: skip the interpreter's teardown
    sys.exit(exit_code)
