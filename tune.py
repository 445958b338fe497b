"""Hyperparameter search over the training step (ClearML HyperParameterOptimizer + Optuna), its best trials
checked against the CNEOS rule, the recommendation recorded on the optimizer task.

    python tune.py                               # 20 trials run here, on the latest preprocessed dataset
    python tune.py --trials 40 --time-limit 30   # budget: trials and minutes
    python tune.py --queue default --concurrency 2   # trials on clearml-agent workers
    python tune.py --only eta,max_depth --param max_depth=3:10
    python pipeline.py --params-from OPTIMIZER_TASK_ID   # train with the recommendation

Needs a preprocessed dataset version (run pipeline.py once). Prints one line per finished trial and the
recommendation; writes runs/latest/tuning.json. Bad arguments end with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

import third_party_patches
from asteroid.clearml_server import ServerUnavailable, ensure_server
from asteroid.tracking import end_process
from asteroid.tuning.optimizer import TuningOptions, run
from asteroid.tuning.space import SpaceError, build_space, describe

USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"tune.py: error: {message}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TuningOptions()
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=defaults.trials, help="number of trials")
    parser.add_argument("--time-limit", type=float, help="minutes for the whole search (default: none)")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="trials at a time")
    parser.add_argument("--seed", type=int, default=defaults.sampler_seed, help="Optuna sampler seed")
    parser.add_argument(
        "--keep-top", type=int, default=defaults.keep_top, help="trials kept; the others are archived"
    )
    parser.add_argument(
        "--check-top", type=int, default=defaults.check_top, help="best trials checked against the rule"
    )
    parser.add_argument(
        "--check-splits", type=int, default=defaults.check_splits, help="group splits of the rule check"
    )
    parser.add_argument("--seeds", type=int, default=defaults.seeds, help="models per trial (as pipeline)")
    parser.add_argument("--queue", help="enqueue trials on this queue for clearml-agent workers")
    parser.add_argument("--dataset-id", default="", help="preprocessed dataset version (default: latest)")
    parser.add_argument("--no-prune", action="store_true", help="never stop a trial early")
    parser.add_argument(
        "--param",
        action="append",
        metavar="NAME=LOW:HIGH[:log]|NAME=A|B",
        help="search this range (or these values) for a parameter; repeatable",
    )
    parser.add_argument("--only", help="comma-separated parameters to search (default: the whole space)")
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> TuningOptions:
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    options = TuningOptions(
        trials=args.trials,
        time_limit_minutes=args.time_limit,
        concurrency=args.concurrency,
        sampler_seed=args.seed,
        keep_top=args.keep_top,
        check_top=args.check_top,
        queue=args.queue,
        dataset_id=args.dataset_id,
        seeds=args.seeds,
        check_splits=args.check_splits,
        prune=not args.no_prune,
        space=build_space(args.param, only),
    )
    options.validate()
    return options


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        options = options_from(args)
    except (SpaceError, ValueError) as exc:
        print(f"tune.py: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        third_party_patches.install_clearml_sdk_patches()
        ensure_server()
        print("search space: " + json.dumps(describe(options.space)))
        result = run(options)
    except (ServerUnavailable, RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    recommendation = result["recommendation"]
    print(f"recommended: {recommendation['source']}")
    print(json.dumps(recommendation["params"]))
    print(
        f"{len(result['trials'])} trials in {result['search_seconds']} s; "
        f"optimizer task {result['optimizer_task_id']}; written to {result['result_file']}"
    )
    print(f"train with it: python pipeline.py --params-from {result['optimizer_task_id']}")
    return 0


if __name__ == "__main__":
    exit_code = main()
    if exit_code == 0:
        end_process()  # the run is complete: skip the interpreter's teardown
    sys.exit(exit_code)
