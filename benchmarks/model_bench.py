"""The model against the CNEOS rule over many group splits — what a pipeline run would publish on each.

For each split seed: the project's group split (no asteroid on two sides), one model per training seed with
the default parameters, the winner chosen on validation as ``select_best`` does, then model and rule on that
split's test rows. Prints mean ± sd per metric, the model's wins / ties / losses on test accuracy, and every
split's disagreement rows. NASA's table when ../shared/data/nasa.csv exists, else generated sample data.

    python benchmarks/model_bench.py [--splits 20] [--models 3] [--sample] [--params JSON]

``--params`` overrides training defaults (``asteroid/train.py``), e.g. a variant measured beside the defaults:
``--params '{"split_features": "est_dia_km_avg,minimum_orbit_intersection", "monotone_increasing":
"est_dia_km_avg"}'``. Besides test, it prints the winners' validation accuracy minus the rule's — the figure
defaults are chosen on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import pandas as pd
from bench_common import machine

import global_config
from asteroid import comparison, evaluate, sample_data


def load_table(sample: bool) -> tuple[pd.DataFrame, str]:
    if not sample and global_config.SHARED_NASA_CSV.exists():
        frame = pd.read_csv(global_config.SHARED_NASA_CSV)
        return frame, f"NASA table ({len(frame):,} rows)"
    frame = sample_data.generate_sample(global_config.SAMPLE_ROWS, global_config.SAMPLE_SEED)
    return frame, f"generated sample data ({len(frame):,} rows, seed {global_config.SAMPLE_SEED})"


def summary_table(summary: dict) -> str:
    """Markdown: one row per metric, model and rule as mean ± sd."""
    lines = ["| test metric | model | CNEOS rule |", "| --- | --- | --- |"]
    for name, values in summary["metrics"].items():
        (model_mean, model_sd), (rule_mean, rule_sd) = values["model"], values["rule"]
        lines.append(f"| {name} | {model_mean:.4f} ± {model_sd:.4f} | {rule_mean:.4f} ± {rule_sd:.4f} |")
    outcomes = summary["outcomes"]
    lines.append(
        f"| model vs rule on accuracy, {summary['splits']} splits | "
        f"{outcomes['win']} wins / {outcomes['tie']} ties / {outcomes['loss']} losses | |"
    )
    return "\n".join(lines)


def split_lines(comparisons: list[comparison.SplitComparison]) -> list[str]:
    lines = [
        f"{'split':>5} {'winner':>6} {'model acc':>9} {'rule acc':>9} {'model+':>6} {'rule+':>6}  outcome"
    ]
    for item in comparisons:
        lines.append(
            f"{item.split_seed:>5} {item.winner_seed:>6} {item.model['accuracy']:>9.4f} "
            f"{item.rule['accuracy']:>9.4f} {item.disagreements[evaluate.MODEL_ONLY_RIGHT]:>6} "
            f"{item.disagreements[evaluate.RULE_ONLY_RIGHT]:>6}  {item.outcome}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--splits", type=int, default=20, help="split seeds 0..N-1")
    parser.add_argument(
        "--models", type=int, default=3, help="training seeds per split (as pipeline --seeds)"
    )
    parser.add_argument("--sample", action="store_true", help="generated sample data even if NASA's is here")
    parser.add_argument("--params", type=json.loads, default=None, help="training parameters (JSON object)")
    args = parser.parse_args()
    frame, description = load_table(args.sample)
    print(f"model benchmark — {description}, {args.splits} splits × {args.models} models — {machine()}")
    if args.params:
        print(f"parameters overridden: {json.dumps(args.params)}")
    began = time.perf_counter()
    comparisons = comparison.compare_over_splits(frame, range(args.splits), args.models, args.params)
    elapsed = time.perf_counter() - began
    print("\n".join(split_lines(comparisons)))
    print("(model+: test rows only the model gets right; rule+: test rows only the rule gets right)\n")
    print(summary_table(comparison.summarize(comparisons)))
    margin = statistics.fmean(item.val_accuracy_margin for item in comparisons)
    print(f"\nvalidation: winner's accuracy minus the rule's, mean over the splits: {margin * 1e4:+.1f}e-4")
    print(f"\n{len(comparisons) * args.models} trainings in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
