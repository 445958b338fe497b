"""End-to-end pipeline wall time, and how much of it is ClearML orchestration versus the job's own compute.

Runs ``pipeline.py --seeds 3`` (NASA's table when ../shared/data/nasa.csv exists, else generated sample data)
against a fresh embedded backend on free ports, then breaks the wall time down with the step timeline the
pipeline writes to summary.json (task created → started → completed, and each step's measured compute).
For reference it also times the same job with no ClearML at all, in one process.

    python benchmarks/pipeline_bench.py [--runs 2] [--seeds 3]
    python benchmarks/pipeline_bench.py --compare /tmp/before --runs 4   # alternate with another checkout

With ``--compare DIR`` (a copy of other code, e.g. ``git archive <commit> | tar -x -C DIR``) the runs
alternate between that code and this checkout against the same backend — on a shared machine, the only fair
comparison — and the medians and their ratio are printed. Each side runs with its own code on ``PYTHONPATH``
(the SDK writes step scripts to a temporary folder, so a step imports ``asteroid`` from there) and in its own
ClearML project (step templates are reused by script text, and hold their working directory).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import machine

import global_config
from asteroid import sample_data
from clearml_local.config import BackendConfig
from clearml_local.server import EmbeddedBackend


def source_csv() -> tuple[str, str]:
    if global_config.SHARED_NASA_CSV.exists():
        return str(global_config.SHARED_NASA_CSV), "NASA table (4,687 rows)"
    return "", f"generated sample data ({global_config.SAMPLE_ROWS} rows)"


def child_env(backend: EmbeddedBackend, work: Path, csv: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env.update(backend.client_env())
    env.update(
        {
            "ASTEROID_DATA_DIR": str(work / "data"),
            "ASTEROID_RUNS_DIR": str(work / "runs"),
            "NEO_DATABASE_URL": f"sqlite:///{work / 'data' / 'asteroids.db'}",
            "NEO_SOURCE_CSV": csv,
            "CLEARML_CACHE_DIR": str(work / "cache"),
            "MPLBACKEND": "Agg",
        }
    )
    return env


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pipeline(
    env: dict[str, str], seeds: int, root: Path = global_config.ROOT, *args: str
) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds, CPU seconds of pipeline.py and its step processes, summary) of one run of the
    checkout at ``root``; the summary also holds what pipeline.py printed, as ``stdout``."""
    cpu_before = children_cpu_seconds()
    began = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(root / "pipeline.py"), "--seeds", str(seeds), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    wall = time.perf_counter() - began
    cpu = children_cpu_seconds() - cpu_before
    if completed.returncode != 0:
        raise SystemExit(f"pipeline failed:\n{completed.stderr[-3000:]}")
    summary = json.loads((Path(env["ASTEROID_RUNS_DIR"]) / "latest" / "summary.json").read_text())
    summary["stdout"] = completed.stdout
    return wall, cpu, summary


def breakdown(wall: float, cpu: float, summary: dict[str, Any]) -> dict[str, float]:
    """Critical-path compute versus everything else, from the steps' timeline."""
    timeline = summary["timeline"]
    steps = ("get_data", "preprocessing", "training", "select_best")
    compute = sum(timeline[name]["compute_seconds"] or 0 for name in steps)
    launch = sum((timeline[name]["started"] or 0) - (timeline[name]["created"] or 0) for name in steps)
    in_steps = sum(timeline[name]["run_seconds"] or 0 for name in steps)
    return {
        "wall": wall,
        "CPU of all its processes (2 cores)": cpu,
        "compute (critical path)": compute,
        "step start: process + imports + Task.init": launch,
        "inside steps: ClearML reporting, uploads, close": in_steps - compute,
        "controller: templates, polling, summary, start-up": wall - launch - in_steps,
    }


def timeline_lines(summary: dict[str, Any]) -> list[str]:
    """Per step: seconds after the pipeline task's creation when its task was created, started, completed."""
    lines = [f"{'step':<14}{'created':>9}{'started':>9}{'completed':>11}{'compute':>9}"]
    for name, step in summary["timeline"].items():
        compute = step["compute_seconds"]
        lines.append(
            f"{name:<14}{step['created']:>9.1f}{step['started']:>9.1f}{step['completed']:>11.1f}"
            + (f"{compute:>9.2f}" if compute is not None else f"{'-':>9}")
        )
    return lines


def without_clearml(csv: str, seeds: int, work: Path) -> float:
    """The same job with no tracking at all: load, query, features, split, train and evaluate N seeds."""
    code = f"""
import time
began = time.perf_counter()
from asteroid import database, evaluate, features, splitting, train
url = "sqlite:///{work / "plain.db"}"
csv, _ = database.resolve_source_csv({csv!r} or None)
database.load_csv(csv, url)
frame = database.query_observations(url, "2016-09-08")
x, y, g = features.build_features(frame)
split = splitting.group_split(x, y, g, seed=42)
data = train.training_data(split)
for seed in range({seeds}):
    result = train.train_classifier(split, seed=seed, data=data)
    evaluate.classification_metrics(split.val.labels, train.predict_proba(result.booster, split.val.features))
print(time.perf_counter() - began)
"""
    env = {**os.environ, "ASTEROID_DATA_DIR": str(work / "plain-data")}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - began


# --- scale: one run per size, beside the same job in one process ------------------------------------------

STEPS = ("get_data", "preprocessing", "training", "select_best")
NASA_ROWS = 4687
_LOAD_LINE = re.compile(r"read (\d+) rows from .*\(.*, ([\d.]+) s\)")
IN_PROCESS_JOB = """
import json, resource, sys, time
began = time.perf_counter()
import pandas as pd
from asteroid import evaluate, features, splitting, train
frame = pd.read_csv(sys.argv[1], usecols=list(features.INPUT_COLUMNS))
x, y, g = features.build_features(frame)
del frame
split = splitting.group_split(x, y, g, seed=42)
del x, y, g
data = train.training_data(split)  # as the training step: one split's matrices for every seed
for seed in range(int(sys.argv[2])):
    result = train.train_classifier(split, seed=seed, data=data)
    evaluate.classification_metrics(split.val.labels, train.predict_proba(result.booster, split.val.features))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - began, "peak_rss_mb": peak}))
"""


def size_source(rows: int, work: Path) -> tuple[Path, str]:
    """NASA's table at its own size when present, else generated sample rows (same schema)."""
    if rows == NASA_ROWS and global_config.SHARED_NASA_CSV.exists():
        return global_config.SHARED_NASA_CSV, "NASA table"
    path = work / f"sample_{rows}.csv"
    sample_data.write_sample_csv(path, n_rows=rows, seed=rows)
    return path, "generated sample"


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) if root.exists() else 0


def in_process(csv: Path, seeds: int) -> dict[str, float]:
    """The job with no ClearML and no database, in one process: read the CSV (the columns the features need),
    features, split, train and evaluate each seed. Its wall seconds (imports included) and peak RSS."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", IN_PROCESS_JOB, str(csv), str(seeds)],
        cwd=global_config.ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall": time.perf_counter() - began, "peak_rss_mb": result["peak_rss_mb"]}


def scale_run(rows: int, seeds: int, work: Path, backend: EmbeddedBackend) -> dict[str, Any]:
    """One pipeline run from the CSV (load included) on a size, then the in-process job on the same file."""
    csv, origin = size_source(rows, work)
    stored_before = tree_bytes(backend.config.files_root)
    env = child_env(backend, work / f"size{rows}", str(csv))
    wall, cpu, summary = run_pipeline(env, seeds, global_config.ROOT, "--source-csv", str(csv))
    load = _LOAD_LINE.search(summary["stdout"])
    if load is None:
        raise SystemExit(f"no load report in pipeline.py's output:\n{summary['stdout'][-2000:]}")
    floor = in_process(csv, seeds)
    return {
        "rows": int(load.group(1)),
        "origin": origin,
        "load_seconds": float(load.group(2)),
        "wall": wall,
        "cpu": cpu,
        "timeline": summary["timeline"],
        "controller_peak_rss_mb": summary["controller_peak_rss_mb"],
        "stored_mb": (tree_bytes(backend.config.files_root) - stored_before) / 2**20,
        "summary": summary,
        "in_process": floor,
    }


def scale_lines(result: dict[str, Any]) -> list[str]:
    """One size: per step wall, compute and peak RSS; the load; the totals beside the in-process job."""
    rows, floor, load = result["rows"], result["in_process"], result["load_seconds"]
    ratio = result["wall"] / floor["wall"]
    lines = [
        f"\n{rows:,} rows ({result['origin']}): load {load:.1f} s ({rows / max(load, 1e-9):,.0f} rows/s), "
        f"dataset files stored {result['stored_mb']:.1f} MB",
        f"  {'step':<14}{'wall s':>8}{'compute s':>11}{'peak RSS MB':>13}",
    ]
    for name in STEPS:
        step = result["timeline"][name]
        compute, peak = step["compute_seconds"], step.get("peak_rss_mb")
        lines.append(
            f"  {name:<14}{step['run_seconds'] or 0:>8.1f}"
            + (f"{compute:>11.2f}" if compute is not None else f"{'-':>11}")
            + (f"{peak:>13.0f}" if peak is not None else f"{'-':>13}")
        )
    lines.append(f"  {'controller + load':<14}{'':>8}{'':>11}{result['controller_peak_rss_mb']:>13.0f}")
    lines.append(
        f"  CSV to published winner {result['wall']:.1f} s (CPU {result['cpu']:.1f} s); in-process job "
        f"{floor['wall']:.1f} s (peak RSS {floor['peak_rss_mb']:.0f} MB); ratio {ratio:.2f}"
    )
    timeline = "\n".join(f"  {line}" for line in timeline_lines(result["summary"]))
    lines.append(f"  timeline (seconds after the pipeline task was created):\n{timeline}")
    return lines


def scale(sizes: list[int], seeds: int) -> None:
    print(f"pipeline at scale — sizes {', '.join(f'{s:,}' for s in sizes)}, {seeds} seeds — {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backend = EmbeddedBackend(BackendConfig(work / "backend", api_port=0, files_port=0)).start()
        results = []
        try:
            for rows in sizes:
                results.append(scale_run(rows, seeds, work, backend))
                print("\n".join(scale_lines(results[-1])), flush=True)
        finally:
            backend.stop()
    print(
        "\n| rows | load (rows/s) | get_data | preprocessing | training | select_best | CSV → winner | "
        "in-process | ratio | peak RSS (any process) | dataset files |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        timeline = result["timeline"]
        peaks = [timeline[name].get("peak_rss_mb") or 0 for name in STEPS] + [
            result["controller_peak_rss_mb"]
        ]
        steps = " | ".join(
            f"{timeline[name]['run_seconds'] or 0:.1f} s ({timeline[name]['compute_seconds'] or 0:.1f})"
            for name in STEPS
        )
        rate = result["rows"] / max(result["load_seconds"], 1e-9)
        print(
            f"| {result['rows']:,} | {result['load_seconds']:.1f} s ({rate:,.0f}) "
            f"| {steps} | {result['wall']:.1f} s | {result['in_process']['wall']:.1f} s "
            f"| {result['wall'] / result['in_process']['wall']:.2f} | {max(peaks):,.0f} MB "
            f"| {result['stored_mb']:.1f} MB |"
        )


def variant_env(env: dict[str, str], name: str, root: Path) -> dict[str, str]:
    """A run's environment for the checkout at ``root``: its code first, its own ClearML project."""
    return {**env, "PYTHONPATH": str(root), "ASTEROID_PROJECT": f"{global_config.PROJECT_NAME} ({name})"}


def compare(other: Path, runs: int, seeds: int) -> None:
    """Alternate runs of the checkout at ``other`` ("before") and of this one ("after"); print the medians."""
    csv, description = source_csv()
    print(f"pipeline comparison — {description}, {seeds} seeds — {machine()}")
    variants = {"before": other.resolve(), "after": global_config.ROOT}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backend = EmbeddedBackend(BackendConfig(work / "backend", api_port=0, files_port=0)).start()
        try:
            for run in range(runs):
                for name, root in variants.items():
                    env = variant_env(child_env(backend, work / f"{name}{run}", csv), name, root)
                    wall, cpu, _ = run_pipeline(env, seeds, root)
                    results[name].append((wall, cpu))
                    print(f"{name:<7} run {run + 1}: wall {wall:5.1f} s, CPU {cpu:5.1f} s", flush=True)
        finally:
            backend.stop()
    medians = {name: statistics.median(wall for wall, _ in rows) for name, rows in results.items()}
    for name, rows in results.items():
        walls = " / ".join(f"{wall:.1f}" for wall, _ in rows)
        cpus = " / ".join(f"{cpu:.1f}" for _, cpu in rows)
        print(f"{name:<7} wall {walls} (median {medians[name]:.1f}); CPU {cpus}")
    print(f"after / before, median wall: {medians['after'] / medians['before']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="a checkout of other code to alternate runs with")
    parser.add_argument(
        "--sizes",
        help="comma-separated row counts: one run from CSV per size beside the in-process job, e.g. "
        "4687,100000,1000000 (4687 is NASA's table when present)",
    )
    args = parser.parse_args()
    if args.sizes:
        scale([int(size) for size in args.sizes.split(",")], args.seeds)
        return
    if args.compare:
        compare(args.compare, args.runs, args.seeds)
        return
    csv, description = source_csv()
    print(f"pipeline benchmark — {description}, {args.seeds} seeds — {machine()}")
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backend = EmbeddedBackend(BackendConfig(work / "backend", api_port=0, files_port=0)).start()
        try:
            for run in range(args.runs):
                wall, cpu, summary = run_pipeline(child_env(backend, work / f"run{run}", csv), args.seeds)
                rows.append(breakdown(wall, cpu, summary))
        finally:
            backend.stop()
        plain = without_clearml(csv, args.seeds, work)
    print(f"\n{'seconds':<52}" + "".join(f"{f'run {i + 1}':>8}" for i in range(len(rows))))
    for key in rows[0]:
        print(f"{key:<52}" + "".join(f"{row[key]:>8.1f}" for row in rows))
    print(f"{'same job without ClearML (one process)':<52}{plain:>8.1f}")
    print(
        "\ntimeline of the last run (seconds after the pipeline task was created):\n"
        + "\n".join(timeline_lines(summary))
    )


if __name__ == "__main__":
    main()
