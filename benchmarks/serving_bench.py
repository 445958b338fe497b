"""Serving benchmark: the same load, in one run, on the same local stack, against hooks of one model:

- `numpy`  — the project's hook (`preprocess_serving.py`, deployed as `make serve` deploys it): validation,
  the shared feature code, `Booster.inplace_predict` through the hook's `load()`;
- `dmatrix` — the same hook returning a `DMatrix` to the `xgboost` engine's stock `Booster.predict`;
- `numpy_nolog` — the project's hook without the prediction log (every answered row published to the broker by
  a background thread in the others: asteroid/serving/prediction_log.py), its cost side by side;
- `pandas` — a hook built like the original example's: a pandas DataFrame per request, no validation;
- `numpy_full` — the project's hook with statistics for every request, measured last and at the single-row
  rates only.

The first three collect statistics for 10 % of the requests (`metrics add --log-freq 0.1`): clearml-serving's
sender serializes everything queued in the last 10 s in one go, and with every request reported it falls
behind above a few hundred requests/s and stalls the worker it shares — a backlog that would spill into
whatever is measured next, so `numpy_full` goes last.

Single-row requests at fixed offered rates and flat out (p50/p99 latency), then batches of 1–1,000 rows
(rows/s). The stack is the local one (`serving_local`: Tansu broker, stock statistics controller, stock
inference app with one worker) against a fresh embedded ClearML backend, all on free ports; statistics travel
the Kafka path as in production.

    python benchmarks/serving_bench.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOOKS = Path(__file__).resolve().parent / "hooks"
RATES = (100, 500)
BATCHES = (1, 10, 100, 1000)
ENDPOINTS = ("numpy", "numpy_nolog", "dmatrix", "pandas")
FULL = "numpy_full"  # the project's hook with statistics for every request
BENCH_LOG_FREQ = 0.1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(*command: str, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def start_backend(work: Path, env: dict[str, str]) -> dict[str, str]:
    data = work / "backend"
    ports = ["--api-port", str(free_port()), "--files-port", str(free_port())]
    run(sys.executable, "-m", "clearml_local", "start", "--data-dir", str(data), *ports, env=env)
    return {**env, "CLEARML_CONFIG_FILE": str(data / "clearml.conf")}


def train_model(work: Path) -> tuple[Path, list[dict[str, Any]], str, dict[str, list[float]]]:
    """A model trained as the pipeline trains it, on NASA's table when present, else sample data."""
    import pandas as pd

    import global_config
    from asteroid import feature_stats, features, sample_data, schema, splitting, train
    from asteroid.serving import contract

    if global_config.SHARED_NASA_CSV.exists():
        frame, what = pd.read_csv(global_config.SHARED_NASA_CSV, dtype=schema.dtypes()), "NASA table"
    else:
        frame, what = sample_data.generate_sample(4687, 7), "generated sample data"
    split = splitting.group_split(*features.build_features(frame), seed=42)
    booster = train.train_classifier(split, seed=0).booster
    contract.stamp_model(booster, schema.HAZARD_THRESHOLD)
    path = train.save_model(booster, work / "asteroid_xgb.json")
    records = json.loads(json.dumps(frame.to_dict(orient="records")))
    return path, records, what, feature_stats.bucket_edges(split.train.features)


def hook_folders(work: Path) -> dict[str, Path]:
    from asteroid.serving.hook_package import build_hook_folder

    numpy_hook = build_hook_folder(work / "hook_numpy")
    dmatrix_hook = build_hook_folder(work / "hook_dmatrix")
    (dmatrix_hook / "__init__.py").rename(dmatrix_hook / "hook.py")
    shutil.copyfile(HOOKS / "dmatrix_init.py", dmatrix_hook / "__init__.py")
    nolog_hook = build_hook_folder(work / "hook_nolog")
    (nolog_hook / "__init__.py").rename(nolog_hook / "hook.py")
    shutil.copyfile(HOOKS / "nolog_init.py", nolog_hook / "__init__.py")
    return {
        "numpy": numpy_hook,
        "numpy_nolog": nolog_hook,
        "dmatrix": dmatrix_hook,
        "pandas": HOOKS / "pandas_hook.py",
        FULL: numpy_hook,
    }


def deploy(model_path: Path, hooks: dict[str, Path], edges: dict[str, list[float]]) -> str:
    """A clearml-serving service with one static endpoint per hook, all serving the same model, each with the
    feature and probability histograms `make serve` configures."""
    from clearml import OutputModel, Task
    from clearml_serving.serving.endpoints import ModelEndpoint
    from clearml_serving.serving.model_request_processor import ModelRequestProcessor

    from asteroid.serving.contract import from_feature_spec
    from asteroid.serving.deploy import metric_logging

    release = from_feature_spec({"bucket_edges": edges})
    processor = ModelRequestProcessor(force_create=True, name="serving bench", project="benchmarks")
    service = Task.get_task(task_id=processor.get_id())
    model = OutputModel(task=service, name="bench-xgboost", framework="XGBoost")
    model.update_weights(weights_filename=str(model_path), auto_delete_file=False)
    service.flush(wait_for_uploads=True)
    for name, hook in hooks.items():
        endpoint = ModelEndpoint(engine_type="xgboost", serving_url=name, model_id=model.id)
        processor.add_endpoint(endpoint, preprocess_code=str(hook))
        frequency = 1.0 if name == FULL else BENCH_LOG_FREQ
        processor.add_metric_logging(metric_logging(name, release, frequency))
    processor.serialize()
    return str(processor.get_id())


def bodies(records: list[dict[str, Any]], batch: int, count: int) -> list[bytes]:
    from asteroid.serving.traffic import request_bodies

    return request_bodies(records, batch, count, seed=batch)


def load(url: str, payloads: list[bytes], **options: Any) -> dict[str, Any]:
    from asteroid.serving.load import run_load

    result = run_load(url, payloads, **options)
    if result.statuses.get(200, 0) != result.requests:
        raise SystemExit(f"{url}: not every request succeeded: {dict(result.statuses)} {result.first_error}")
    return result.as_dict()


def measure(serve_url: str, records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Each measurement runs for every hook in turn before the next one starts (side by side, same minute)."""
    singles = bodies(records, 1, 2000)
    urls = {name: f"{serve_url}/{name}" for name in (*ENDPOINTS, FULL)}
    for url in urls.values():
        load(url, singles[:200], concurrency=2, count=200)  # warm-up: the first request loads code and model
    measurements: dict[str, tuple[list[bytes], dict[str, Any]]] = {
        **{f"rate_{rate}": (singles, {"rate": rate, "concurrency": 8}) for rate in RATES},
        "flat_out": (singles, {"concurrency": 4}),
        **{
            f"batch_{batch}": (
                bodies(records, batch, max(20, 2000 // batch)),
                {"rows_per_request": batch, "concurrency": 2},
            )
            for batch in BATCHES
        },
    }
    results: dict[str, Any] = {name: {} for name in urls}
    for key, (payloads, options) in measurements.items():
        for name in ENDPOINTS:
            results[name][key] = load(urls[name], payloads, duration=seconds, **options)
        print(
            f"  {key}: "
            + ", ".join(f"{n} {results[n][key]['requests_per_second']} req/s" for n in ENDPOINTS),
            flush=True,
        )
    for key in (*(f"rate_{rate}" for rate in RATES), "flat_out"):
        payloads, options = measurements[key]
        results[FULL][key] = load(urls[FULL], payloads, duration=seconds, **options)
    return results


def report(results: dict[str, Any], what: str, seconds: float) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\nServing benchmark — {machine}, {time.strftime('%Y-%m-%d')}; {what}; "
          f"{seconds:g} s per measurement; one inference worker\n")  # fmt: skip
    singles = (*ENDPOINTS, FULL)
    print("| single row | " + " | ".join(singles) + " |")
    print("| --- |" + " --- |" * len(singles))
    for key in (*(f"rate_{rate}" for rate in RATES), "flat_out"):
        label = "flat out" if key == "flat_out" else f"{key[5:]} req/s offered"
        cells = []
        for name in singles:
            r = results[name][key]
            cells.append(f"{r['requests_per_second']:.0f} req/s, p50 {r['latency_ms']['p50']:.2f} ms, "
                         f"p99 {r['latency_ms']['p99']:.2f} ms")  # fmt: skip
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n| rows per request | " + " | ".join(f"{name} rows/s" for name in ENDPOINTS) + " |")
    print("| --- |" + " --- |" * len(ENDPOINTS))
    for batch in BATCHES:
        cells = [f"{results[name][f'batch_{batch}']['rows_per_second']:,.0f}" for name in ENDPOINTS]
        print(f"| {batch} | " + " | ".join(cells) + " |")
    flat = {name: results[name]["flat_out"]["requests_per_second"] for name in ENDPOINTS}
    best_rows = max(results["numpy"][f"batch_{b}"]["rows_per_second"] for b in BATCHES)
    print(f"\nsingle-row req/s: numpy / pandas = {flat['numpy'] / flat['pandas']:.2f}x (aim >= 3x), "
          f"dmatrix / pandas = {flat['dmatrix'] / flat['pandas']:.2f}x")  # fmt: skip
    p99 = results["numpy"]["rate_500"]["latency_ms"]["p99"]
    full = results[FULL]["rate_500"]["latency_ms"]["p99"]
    print(f"p99 at 500 req/s offered with statistics for every request: {full:.2f} ms")
    print(f"numpy hook p99 at 500 req/s offered: {p99:.2f} ms (aim <= 10 ms); "
          f"best batch throughput {best_rows:,.0f} rows/s (aim >= 100,000)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each measurement")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env["CLEARML_CACHE_DIR"] = str(work / "cache")
    stack = ["--data-dir", str(work / "stack")]
    env = start_backend(work, env)
    try:
        os.environ.update(env)  # this process's clearml SDK talks to the bench's backend
        model_path, records, what, edges = train_model(work)
        service_id = deploy(model_path, hook_folders(work), edges)
        port = free_port()
        ports = ["--port", str(port), "--metrics-port", str(free_port()), "--broker-port", str(free_port())]
        run(
            sys.executable,
            "-m",
            "serving_local",
            "start",
            "--service-id",
            service_id,
            *stack,
            *ports,
            env=env,
        )
        print(f"stack up; measuring {len(ENDPOINTS)} hooks ({what})", flush=True)
        results = measure(f"http://127.0.0.1:{port}/serve", records, args.seconds)
    finally:
        subprocess.run(
            [sys.executable, "-m", "serving_local", "stop", *stack], env=env, capture_output=True, check=False
        )
        subprocess.run([sys.executable, "-m", "clearml_local", "stop", "--data-dir", str(work / "backend")],
                       env=env, capture_output=True, check=False)  # fmt: skip
    report(results, what, args.seconds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
