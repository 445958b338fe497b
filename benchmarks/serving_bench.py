"""Serving benchmark (issue 21, item 4): in one run, one model, one local stack (`serving_local`: Tansu
broker, stock statistics controller, stock inference app behind the project's wrapper) against a fresh
embedded ClearML backend, all on free ports, statistics travelling the Kafka path as in production:

(a) single rows (NASA's 40 columns, as the original example's client posts them): req/s flat out and p50/p99
    at 100 and 500 req/s offered, for the project's hook (`preprocess_serving.py`, deployed as `make serve`
    deploys it) and a hook built like the original example's (benchmarks/hooks/pandas_hook.py), with one
    inference worker and with the stack's default workers;
(b) batches of 100, 1,000, 10,000 and 100,000 rows (the model's feature names) as JSON and as an Arrow IPC
    stream answered in Arrow, in rows/s, against `Booster.inplace_predict` on the same rows in this process
    (the limit);
(c) answers per second over a minute at a steady 500 req/s, with the project's statistics sender and with
    clearml-serving's own (`STOCK_STATISTICS_SENDER_ENV=1`);
(d) the cost of the prediction log (`contract.PREDICTION_LOG_ENV=off` against on) and of explanations
    (`"explain": true` against none): single rows flat out and at 500 req/s offered, 1,000-row JSON and
    Arrow batches flat out, and Arrow batches at `ARROW_RATE` req/s offered (the request path's latency with
    cores to spare; with `--consumer apart`, in proportion to the cores left to the workers), with the CPU
    of every process; then, with the log on, whether the consumer stored every row answered and how long it
    took;

then the ratios against the aims of item 5. Every endpoint reports statistics for the fraction of requests
`make serve` configures (`global_config.SERVING_METRIC_LOG_FREQ`). The load generator is open loop
(asteroid/serving/load.py): at an offered rate a request's latency counts from when it was due. The stack is
restarted for each setting that only a process environment can change (workers, sender, prediction log).

    python benchmarks/serving_bench.py [--seconds 8] [--steady-seconds 60] [--json out.json]
    python benchmarks/serving_bench.py --quick      # seconds: a smoke run of every part, figures meaningless
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_common import machine
from serving_local.api import STOCK_STATISTICS_SENDER_ENV

HOOKS = Path(__file__).resolve().parent / "hooks"
PROJECT, PANDAS = "asteroid", "pandas"
RATES = (100, 500)
BATCH_SIZES = (100, 1_000, 10_000, 100_000)
STEADY_RATE = 500
# (d): 1,000-row Arrow batches offered at this rate (250,000 rows/s, about a third of what the stack answers
# flat out with the log off): their latency with the log on and off is the request path's, the cores not full
ARROW_RATE = 250
# (d): how long the consumer may take, after a stack's last measurement, to store every row it answered
CATCH_UP_S = 600.0
# A JSON batch of 100,000 rows is about 25 MB; the stack's default body limit is 16 MB.
BENCH_MAX_BODY_BYTES = 256 << 20
SINGLE_ROW_BODIES = 2_000
WARM_UP_S = 2.0
# A 100,000-row JSON batch takes seconds to parse (far more on a busy machine): no client timeout cuts it off.
BATCH_TIMEOUT_S = 600.0
# Aims of issue 21, item 5.
AIM_SINGLE_ROW_RATIO = 10.0
AIM_P99_MS = 10.0
AIM_WORST_SECOND = 0.8
AIM_ARROW_OF_LIMIT = 0.2
AIM_ARROW_OVER_JSON = 10.0
AIM_BATCH = 10_000
PARTS = "abcd"
FORWARDER_SCRIPT = "prediction_forwarder.py"  # its processes' CPU is counted apart from the workers'
FORWARDER = "forwarder"


@dataclass(frozen=True)
class Settings:
    seconds: float
    steady_seconds: int
    batch_sizes: tuple[int, ...]
    workers: int = 0  # the "default workers" setting; 0: the stack's default
    parts: str = PARTS
    rounds: int = 1  # of (d)'s prediction log on and off, each in a fresh stack, the order alternating
    consumer: str = "beside"  # (d): where the log's consumer (and broker) run: one of CONSUMER_PLACES


FULL = Settings(seconds=8.0, steady_seconds=60, batch_sizes=BATCH_SIZES)
QUICK = Settings(seconds=1.0, steady_seconds=3, batch_sizes=(100, 1_000))


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


def default_workers() -> int:
    """The stack's default number of inference workers (`StackConfig.workers`)."""
    from serving_local.api import StackConfig

    return StackConfig(data_dir=Path(".")).workers


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


def deploy(model_path: Path, work: Path, edges: dict[str, list[float]]) -> str:
    """A clearml-serving service with one static endpoint per hook, both serving the same model, each with
    the feature and probability histograms `make serve` configures."""
    from clearml import OutputModel, Task
    from clearml_serving.serving.endpoints import ModelEndpoint
    from clearml_serving.serving.model_request_processor import ModelRequestProcessor

    from asteroid.serving.contract import from_feature_spec
    from asteroid.serving.deploy import metric_logging
    from asteroid.serving.hook_package import build_hook_folder

    hooks = {PROJECT: build_hook_folder(work / "hook"), PANDAS: HOOKS / "pandas_hook.py"}
    release = from_feature_spec({"bucket_edges": edges})
    processor = ModelRequestProcessor(force_create=True, name="serving bench", project="benchmarks")
    service = Task.get_task(task_id=processor.get_id())
    model = OutputModel(task=service, name="bench-xgboost", framework="XGBoost")
    model.update_weights(weights_filename=str(model_path), auto_delete_file=False)
    service.flush(wait_for_uploads=True)
    for name, hook in hooks.items():
        endpoint = ModelEndpoint(engine_type="xgboost", serving_url=name, model_id=model.id)
        processor.add_endpoint(endpoint, preprocess_code=str(hook))
        processor.add_metric_logging(metric_logging(name, release))
    processor.serialize()
    return str(processor.get_id())


@contextmanager
def stack(
    service_id: str, work: Path, env: dict[str, str], workers: int, consumer: bool = False, **extra_env: str
) -> Iterator[str]:
    """The local stack with this many inference workers and these variables, with the prediction log's
    consumer as `make serve` runs it when `consumer` (its database a fresh SQLite file); yields its /serve
    URL."""
    data = ["--data-dir", str(work / "stack")]
    if consumer:
        from asteroid.quality.config import DATABASE_URL_ENV
        from asteroid.quality.consumer import stack_part

        database = work / "quality.db"
        database.unlink(missing_ok=True)
        data += ["--extra-part", stack_part().to_json()]
        extra_env = {DATABASE_URL_ENV: f"sqlite:///{database}", **extra_env}
    port = free_port()
    ports = ["--port", str(port), "--metrics-port", str(free_port()), "--broker-port", str(free_port())]
    stack_env = {**env, "SERVING_LOCAL_MAX_BODY_BYTES": str(BENCH_MAX_BODY_BYTES), **extra_env}
    run(
        sys.executable,
        "-m",
        "serving_local",
        "start",
        "--service-id",
        service_id,
        *data,
        *ports,
        "--workers",
        str(workers),
        "--monitoring",
        "off",
        env=stack_env,
    )
    STACK_PIDS.clear()
    STACK_PIDS.update(running_stack_pids(work))
    try:
        serve_url = f"http://127.0.0.1:{port}/serve"
        for name in (PROJECT, PANDAS):  # the first request loads code and model (in every worker)
            load(f"{serve_url}/{name}", [json.dumps(WARM_UP_ROW).encode()], count=20 * workers, concurrency=2)
        yield serve_url
    finally:
        subprocess.run(
            [sys.executable, "-m", "serving_local", "stop", *data],
            env=stack_env,
            capture_output=True,
            check=False,
        )
        STACK_PIDS.clear()


WARM_UP_ROW: dict[str, Any] = {}
ANSWERED_ROWS: Counter[str] = Counter()  # URL -> rows answered 200 there by `load`
STACK_PIDS: dict[str, int] = {}  # part of the running stack -> its pid (its workers are its children)
CLIENT = "client"
HOOK_STAGES = ("parse JSON", "preprocess", "predict", "postprocess", "encode JSON")


def running_stack_pids(work: Path) -> dict[str, int]:
    from serving_local.api import StackConfig

    return dict(json.loads(StackConfig(data_dir=work / "stack").state_path.read_text())["pids"])


def _process_table() -> dict[int, tuple[int, float, bool]]:
    """pid -> (parent pid, CPU seconds so far, whether it is a prediction log forwarder) of every process."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            forwarder = FORWARDER_SCRIPT.encode() in (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        table[int(stat.parent.name)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / ticks,
            forwarder,
        )
    return table


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of each part of the stack (with its children, but the prediction log's forwarders,
    counted on their own) and of this process (the load generator): where a measurement's time went."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)

    def tree(pid: int) -> tuple[float, float]:
        """CPU seconds of the process and its descendants: (not forwarders, forwarders)."""
        _, seconds, forwarder = table.get(pid, (0, 0.0, False))
        below = [tree(child) for child in children.get(pid, [])]
        own = (0.0, seconds) if forwarder else (seconds, 0.0)
        return own[0] + sum(part for part, _ in below), own[1] + sum(part for _, part in below)

    parts = {name: tree(pid) for name, pid in STACK_PIDS.items()}
    times = os.times()
    return {
        **{name: own for name, (own, _) in parts.items()},
        FORWARDER: sum(forwarders for _, forwarders in parts.values()),
        CLIENT: times.user + times.system,
    }


def load(url: str, payloads: list[bytes], **options: Any) -> dict[str, Any]:
    """One measurement; every request must succeed. The answers per second and the CPU milliseconds per
    request of each part of the stack and of the load generator come along."""
    from asteroid.serving.load import run_load

    before = cpu_seconds()
    result = run_load(url, payloads, **options)
    after = cpu_seconds()
    ANSWERED_ROWS[url] += result.statuses.get(200, 0) * options.get("rows_per_request", 1)
    cpu = {
        name: round((after[name] - before.get(name, 0.0)) * 1000 / max(result.requests, 1), 3)
        for name in after
    }
    measured = {
        **result.as_dict(),
        "answers_per_second": result.answers_per_second(),
        "cpu_ms_per_request": cpu,
        "load_average": os.getloadavg()[0],
    }
    if result.statuses.get(200, 0) != result.requests:  # kept, and listed under the tables
        measured["failed"] = f"{url}: {dict(result.statuses)} {result.first_error}"
        print(f"    not every request succeeded: {measured['failed']}", file=sys.stderr, flush=True)
    return measured


def failures(results: Any) -> list[str]:
    """The `failed` notes of every measurement in the results."""
    if isinstance(results, dict):
        own = [results["failed"]] if "failed" in results else []
        return own + [note for value in results.values() for note in failures(value)]
    return []


# --- request bodies ----------------------------------------------------------------------------------


def single_rows(records: list[dict[str, Any]], count: int, explain: bool = False) -> list[bytes]:
    rng = np.random.default_rng(1)
    extra = {"explain": True} if explain else {}
    return [json.dumps({**records[i], **extra}).encode() for i in rng.integers(0, len(records), size=count)]


def feature_matrix(records: list[dict[str, Any]], rows: int, seed: int) -> np.ndarray:
    """`rows` rows drawn from the records as the model's feature matrix (schema.FEATURES order)."""
    from asteroid import feature_rows

    rng = np.random.default_rng(seed)
    picked = [records[i] for i in rng.integers(0, len(records), size=rows)]
    return feature_rows.feature_matrix(feature_rows.validate_rows(picked))


def json_batch(matrix: np.ndarray, explain: bool = False) -> bytes:
    """The rows under the model's input feature names, as `{"rows": [...]}`."""
    from asteroid import schema

    names = [schema.FEATURES.index(name) for name in schema.INPUT_FEATURES]
    rows = [dict(zip(schema.INPUT_FEATURES, row, strict=True)) for row in matrix[:, names].tolist()]
    return json.dumps({"rows": rows, **({"explain": True} if explain else {})}).encode()


def arrow_batch(matrix: np.ndarray, explain: bool = False) -> bytes:
    """The same rows as an Arrow IPC stream, one float64 column per input feature."""
    import pyarrow as pa

    from asteroid import schema
    from asteroid.serving.traffic import arrow_ipc

    columns = {name: matrix[:, schema.FEATURES.index(name)] for name in schema.INPUT_FEATURES}
    return arrow_ipc(pa.table(columns, metadata={"explain": "true"} if explain else None))


def batch_matrices(records: list[dict[str, Any]], sizes: tuple[int, ...]) -> dict[int, list[np.ndarray]]:
    """Per batch size, a few distinct batches (fewer for the large ones: each is megabytes of JSON)."""
    return {
        size: [feature_matrix(records, size, seed) for seed in range(max(2, min(8, 20_000 // size)))]
        for size in sizes
    }


# --- measurements ------------------------------------------------------------------------------------


def measure_single_rows(serve_url: str, singles: list[bytes], seconds: float) -> dict[str, Any]:
    """Flat out and at each offered rate, each hook in turn before the next measurement (side by side)."""
    measurements = {
        "flat_out": {"concurrency": 4},
        **{f"rate_{rate}": {"rate": rate, "concurrency": 16} for rate in RATES},
    }
    results: dict[str, Any] = {PROJECT: {}, PANDAS: {}}
    for key, options in measurements.items():
        for hook in (PROJECT, PANDAS):
            results[hook][key] = load(f"{serve_url}/{hook}", singles, duration=seconds, **options)
        print(
            f"    {key}: "
            + ", ".join(
                f"{hook} {results[hook][key]['requests_per_second']} req/s, p99 "
                f"{results[hook][key]['latency_ms']['p99']} ms"
                for hook in (PROJECT, PANDAS)
            ),
            flush=True,
        )
    return results


def measure_batches(serve_url: str, matrices: dict[int, list[np.ndarray]], seconds: float) -> dict[str, Any]:
    from asteroid.serving import contract

    url = f"{serve_url}/{PROJECT}"
    results: dict[str, Any] = {}
    for size, batches in matrices.items():
        options = {
            "rows_per_request": size,
            "concurrency": 2,
            "duration": seconds,
            "timeout": BATCH_TIMEOUT_S,
        }
        json_result = load(url, [json_batch(m) for m in batches], **options)
        arrow_result = load(
            url,
            [arrow_batch(m) for m in batches],
            content_type=contract.ARROW_STREAM,
            accept=contract.ARROW_STREAM,
            **options,
        )
        results[str(size)] = {"json": json_result, "arrow": arrow_result}
        print(
            f"    {size} rows: JSON {json_result['rows_per_second']:,.0f} rows/s, "
            f"Arrow {arrow_result['rows_per_second']:,.0f} rows/s",
            flush=True,
        )
    return results


def inplace_predict_limit(model_path: Path, matrices: dict[int, list[np.ndarray]]) -> dict[str, float]:
    """Rows/s of `Booster.inplace_predict` on the same rows in this process, one thread as the hook."""
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(model_path))
    booster.set_param({"nthread": 1})
    limits = {}
    for size, batches in matrices.items():
        inputs = [m.astype(np.float32) for m in batches]
        rows, began = 0, time.perf_counter()
        while time.perf_counter() - began < 0.5 or rows < 3 * size:
            booster.inplace_predict(inputs[rows // size % len(inputs)])
            rows += size
        limits[str(size)] = rows / (time.perf_counter() - began)
    return limits


def measure_steady(serve_url: str, singles: list[bytes], seconds: int) -> dict[str, Any]:
    result = load(f"{serve_url}/{PROJECT}", singles, rate=STEADY_RATE, concurrency=32, duration=seconds)
    per_second = result["answers_per_second"]
    mean = float(np.mean(per_second)) if per_second else 0.0
    worst = min(per_second) if per_second else 0
    print(f"    {STEADY_RATE} req/s for {seconds} s: mean {mean:.0f}/s, worst second {worst}", flush=True)
    return {**result, "mean_per_second": mean, "worst_second": worst}


def measure_costs(
    serve_url: str,
    records: list[dict[str, Any]],
    seconds: float,
    explain_too: bool = True,
    arrow_rate: int = ARROW_RATE,
) -> dict[str, Any]:
    """Single rows flat out and at 500 req/s offered, and 1,000-row JSON and Arrow batches flat out and at
    `arrow_rate` req/s offered, without explanations and, with `explain_too`, with them (the prediction log's
    setting is the stack's)."""
    from asteroid.serving import contract

    url = f"{serve_url}/{PROJECT}"
    batch = [feature_matrix(records, 1_000, seed) for seed in range(4)]
    # unmeasured: whatever starts on the first answers (the log's forwarders and their Kafka clients) has
    # started before the first measurement
    load(url, single_rows(records, SINGLE_ROW_BODIES), concurrency=4, duration=min(seconds, WARM_UP_S))
    results = {}
    for explain in (False, True) if explain_too else (False,):
        singles = single_rows(records, SINGLE_ROW_BODIES, explain)
        results["explain" if explain else "plain"] = {
            "flat_out": load(url, singles, concurrency=4, duration=seconds),
            "rate_500": load(url, singles, rate=500, concurrency=16, duration=seconds),
            "batch_1000": load(
                url,
                [json_batch(m, explain) for m in batch],
                rows_per_request=1_000,
                concurrency=2,
                duration=seconds,
            ),
            "arrow_1000": load(
                url,
                [arrow_batch(m, explain) for m in batch],
                rows_per_request=1_000,
                concurrency=2,
                duration=seconds,
                content_type=contract.ARROW_STREAM,
                accept=contract.ARROW_STREAM,
            ),
            "arrow_rate": load(
                url,
                [arrow_batch(m, explain) for m in batch],
                rows_per_request=1_000,
                rate=arrow_rate,
                concurrency=16,
                duration=seconds,
                content_type=contract.ARROW_STREAM,
                accept=contract.ARROW_STREAM,
            ),
        }
    return results


@contextmanager
def consumer_placed(place: str) -> Iterator[None]:
    """Until the block ends, the log's consumer where `place` (one of `CONSUMER_PLACES`) says: beside the
    workers as `make serve` runs it; elsewhere: stopped (SIGSTOP), its CPU off these cores as in production
    where it runs on other machines, the broker keeping what it has not read; apart: the broker and the
    consumer on the first core, every other process of the stack and the load generator on the others."""
    from asteroid.quality.consumer import SCRAPE_TARGET

    paused = STACK_PIDS[SCRAPE_TARGET] if place == "elsewhere" else None
    if paused is not None:
        os.kill(paused, signal.SIGSTOP)
    everywhere = os.sched_getaffinity(0)
    if place == "apart":
        far = {min(everywhere)}
        if far == everywhere:
            raise SystemExit("--consumer apart needs at least 2 CPUs")
        near = everywhere - far
        table = _process_table()
        for name, pid in STACK_PIDS.items():
            pin_tree(pid, far if name in ("broker", SCRAPE_TARGET) else near, table)
        os.sched_setaffinity(0, near)  # the load generator's threads, started later, inherit it
    try:
        yield
    finally:
        os.sched_setaffinity(0, everywhere)
        if paused is not None:
            os.kill(paused, signal.SIGCONT)


def arrow_rate(place: str) -> int:
    """(d)'s offered rate of Arrow batches: `ARROW_RATE` on all cores; with the broker and the consumer
    `apart`, in proportion to the cores left to the rest, so that the workers have as many cores to spare."""
    cores = len(os.sched_getaffinity(0))
    return round(ARROW_RATE * (cores - 1) / cores) if place == "apart" else ARROW_RATE


def pin_tree(pid: int, cpus: set[int], table: dict[int, tuple[int, float, bool]]) -> None:
    """Every thread of the process and of its descendants (found in `table`, `_process_table`) onto `cpus`
    (an affinity is a thread's: each one's is set; threads and processes they start later inherit it)."""
    pids = [pid]
    for current in pids:
        pids += [child for child, (parent, _, _) in table.items() if parent == current]
    for process in pids:
        for thread in Path(f"/proc/{process}/task").glob("[0-9]*"):
            try:
                os.sched_setaffinity(int(thread.name), cpus)
            except OSError:  # ended meanwhile
                continue


def consumer_catch_up(work: Path, url: str) -> dict[str, Any]:
    """Once the measurements of a stack with the log on are over: the rows its consumer stored against the
    rows the endpoint answered (every one, unless the log dropped some), and how long it took to store them
    all (it falls behind under bulk traffic on shared cores and catches up from the broker)."""
    import sqlalchemy.exc

    from asteroid.quality import store

    database = f"sqlite:///{work / 'quality.db'}"
    answered, started = ANSWERED_ROWS[url], time.monotonic()

    def stored_rows() -> int:
        try:
            return store.count_predictions(database)
        except sqlalchemy.exc.OperationalError:  # the consumer's transaction held the lock too long
            return -1

    stored = stored_rows()
    while stored < answered and time.monotonic() - started < CATCH_UP_S:
        time.sleep(1.0)  # polling the consumer's progress, with a deadline
        stored = stored_rows()
    caught_up = round(time.monotonic() - started, 1) if stored >= answered else None
    print(
        f"    the consumer stored {stored:,} of {answered:,} rows answered ({caught_up} s after)", flush=True
    )
    return {"answered_rows": answered, "stored_rows": stored, "catch_up_s": caught_up}


# --- the run -----------------------------------------------------------------------------------------


def measure(
    service_id: str,
    work: Path,
    env: dict[str, str],
    records: list[dict[str, Any]],
    model_path: Path,
    settings: Settings,
) -> dict[str, Any]:

    singles = single_rows(records, SINGLE_ROW_BODIES)
    WARM_UP_ROW.update(records[0])
    workers = settings.workers or default_workers()
    results: dict[str, Any] = {"default_workers": workers}
    if "a" in settings.parts or "b" in settings.parts or "c" in settings.parts:
        results["single_row"] = {}
        matrices = batch_matrices(records, settings.batch_sizes)
        results["limit"] = inplace_predict_limit(model_path, matrices)
        for count in sorted({1, workers}):
            print(f"  (a) single rows, {count} worker(s)", flush=True)
            with stack(service_id, work, env, count) as serve_url:
                if count == workers:  # first: no statistics backlog of larger requests yet
                    print("  (c) steady rate, the project's statistics sender", flush=True)
                    results["steady_project_sender"] = measure_steady(
                        serve_url, singles, settings.steady_seconds
                    )
                results["single_row"][str(count)] = measure_single_rows(serve_url, singles, settings.seconds)
                if count == workers:
                    print(f"  (b) batches, {count} worker(s)", flush=True)
                    results["batches"] = measure_batches(serve_url, matrices, settings.seconds)
        print("  (c) steady rate, clearml-serving's statistics sender", flush=True)
        with stack(service_id, work, env, workers, **{STOCK_STATISTICS_SENDER_ENV: "1"}) as serve_url:
            results["steady_stock_sender"] = measure_steady(serve_url, singles, settings.steady_seconds)
    if "d" in settings.parts:
        results["log_rounds"] = measure_log_rounds(service_id, work, env, records, workers, settings)
        results["log_consumer"] = settings.consumer
        results["log_arrow_rate"] = arrow_rate(settings.consumer)
        results["log_on"], results["log_off"] = (
            results["log_rounds"][0]["on"],
            results["log_rounds"][0]["off"],
        )
    return results


def measure_log_rounds(
    service_id: str,
    work: Path,
    env: dict[str, str],
    records: list[dict[str, Any]],
    workers: int,
    settings: Settings,
) -> list[dict[str, Any]]:
    """(d): per round, the costs with the prediction log on and off, each in a fresh stack with the log's
    consumer running as `make serve` runs it (so neither finds a backlog of the other's or of earlier parts),
    the order alternating between rounds, after one stack started and stopped unmeasured; explanations in the
    first round."""
    from asteroid.serving import contract

    # unmeasured, so that neither setting is the first stack after the deployment (in 2 of 5 runs that first
    # stack's flat out was half the next ones', for a reason not found)
    with stack(service_id, work, env, workers, consumer=True) as serve_url:
        load(
            f"{serve_url}/{PROJECT}",
            single_rows(records, SINGLE_ROW_BODIES),
            concurrency=4,
            duration=WARM_UP_S,
        )
    rate = arrow_rate(settings.consumer)
    rounds = []
    for number in range(settings.rounds):
        measured: dict[str, Any] = {}
        for log in ("on", "off") if number % 2 == 0 else ("off", "on"):
            print(f"  (d) round {number + 1}: the prediction log {log}", flush=True)
            switch = {} if log == "on" else {contract.PREDICTION_LOG_ENV: "off"}
            ANSWERED_ROWS.clear()  # from the stack's warm-up on: its consumer stores those too
            with stack(service_id, work, env, workers, consumer=True, **switch) as serve_url:
                with consumer_placed(settings.consumer):
                    measured[log] = measure_costs(serve_url, records, settings.seconds, number == 0, rate)
                if log == "on":
                    measured["stored"] = consumer_catch_up(work, f"{serve_url}/{PROJECT}")
            plain = measured[log]["plain"]
            print(
                f"    flat out {plain['flat_out']['requests_per_second']:,.0f} req/s, p99 at 500 req/s "
                f"{_p(plain['rate_500']):.1f} ms, load average {plain['flat_out']['load_average']:.2f}",
                flush=True,
            )
        rounds.append(measured)
    return rounds


def hook_stages(model_path: Path, records: list[dict[str, Any]], sizes: tuple[int, ...]) -> dict[str, Any]:
    """Where a request's time goes inside the process, the hook run in this process as the stock app runs it
    (preprocess, the engine's predict, postprocess), beside the JSON parse FastAPI does before the hook and
    the encoding of its answer after: milliseconds per request, median of repeats."""
    import preprocess_serving

    hook = preprocess_serving.Preprocess()
    predictor = hook.load(str(model_path))
    cases = {"1 row, JSON": (json.dumps(records[0]).encode(), False)}
    for size in sizes:
        matrix = feature_matrix(records, size, 99)
        cases[f"{size:,} rows, JSON"] = (json_batch(matrix), False)
        cases[f"{size:,} rows, Arrow"] = (arrow_batch(matrix), True)
    stages: dict[str, Any] = {}
    for name, (body, arrow) in cases.items():
        timings: dict[str, list[float]] = {stage: [] for stage in HOOK_STAGES}
        for _ in range(max(3, min(50, 20_000 // max(1, len(body) // 200)))):
            state: dict[str, Any] = {}
            began = time.perf_counter()
            parsed = body if arrow else json.loads(body)
            parsed_at = time.perf_counter()
            features = hook.preprocess(parsed, state, None)
            preprocessed_at = time.perf_counter()
            probabilities = predictor.predict(features)
            predicted_at = time.perf_counter()
            answer = hook.postprocess(probabilities, state, None)
            answered_at = time.perf_counter()
            if not arrow:
                json.dumps(answer)
            for stage, seconds in zip(
                timings,
                np.diff([began, parsed_at, preprocessed_at, predicted_at, answered_at, time.perf_counter()]),
                strict=True,
            ):
                timings[stage].append(seconds * 1000)
        stages[name] = {stage: round(float(np.median(values)), 3) for stage, values in timings.items()}
    return stages


def _p(result: dict[str, Any], q: str = "p99") -> float:
    return float(result["latency_ms"][q] or 0.0)


def _cpu(result: dict[str, Any]) -> str:
    """CPU ms per request of inference / statistics / broker / client."""
    cpu = result.get("cpu_ms_per_request", {})
    return " / ".join(f"{cpu.get(name, 0.0):.2f}" for name in ("inference", "statistics", "broker", CLIENT))


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(results: dict[str, Any], what: str, settings: Settings) -> None:
    workers = results["default_workers"]
    print(
        f"\nServing benchmark — {machine()}; {what}; {settings.seconds:g} s per measurement; "
        f"default inference workers: {workers}\n"
    )
    if "single_row" in results:
        report_speed(results, settings)
    if "log_rounds" in results:
        report_costs(results)
    for note in failures(results):
        print(f"\nFAILED requests in a measurement (its figures count the answered ones): {note}")
    if "single_row" in results:
        report_aims(results)


def report_speed(results: dict[str, Any], settings: Settings) -> None:
    print(
        "(a) single rows (NASA's 40 columns); CPU ms per request flat out: inference / statistics / broker / "
        "client\n| hook | workers | flat out | 100 req/s offered: p50 / p99 | 500 req/s offered: p50 / p99 | "
        "CPU |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for count, hooks in results["single_row"].items():
        for hook, measured in hooks.items():
            rates = " | ".join(
                f"{_p(measured[f'rate_{r}'], 'p50'):.2f} / {_p(measured[f'rate_{r}']):.2f} ms" for r in RATES
            )
            flat = measured["flat_out"]
            print(f"| {hook} | {count} | {flat['requests_per_second']:,.0f} req/s | {rates} | {_cpu(flat)} |")
    print(
        "\n(b) batches (the model's feature names); CPU ms per request as in (a)\n| rows per request | JSON "
        "rows/s | Arrow rows/s | inplace_predict rows/s (limit) | Arrow / limit | Arrow / JSON | CPU, JSON | "
        "CPU, Arrow |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size, measured in results["batches"].items():
        json_rows, arrow_rows = measured["json"]["rows_per_second"], measured["arrow"]["rows_per_second"]
        limit = results["limit"][size]
        print(
            f"| {int(size):,} | {json_rows:,.0f} | {arrow_rows:,.0f} | {limit:,.0f} | "
            f"{arrow_rows / limit:.1%} | {arrow_rows / max(json_rows, 1):.1f}x | {_cpu(measured['json'])} | "
            f"{_cpu(measured['arrow'])} |"
        )
    print(
        f"\n(c) steady {STEADY_RATE} req/s offered for {settings.steady_seconds} s\n| statistics sender | "
        "mean answers/s | worst second | worst / mean | p99 | answers in each second |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for key, label in (
        ("steady_stock_sender", "clearml-serving's sender"),
        ("steady_project_sender", "the project's sender"),
    ):
        steady = results[key]
        ratio = steady["worst_second"] / steady["mean_per_second"] if steady["mean_per_second"] else 0.0
        print(
            f"| {label} | {steady['mean_per_second']:.0f} | {steady['worst_second']} | {ratio:.0%} | "
            f"{_p(steady):.1f} ms | {' '.join(map(str, steady['answers_per_second']))} |"
        )
    print(
        "\nwhere the time goes: the hook in this process, as the stock app runs it (ms per request, median)"
    )
    print("| request | " + " | ".join(HOOK_STAGES) + " |")
    print("| --- |" + " --- |" * len(HOOK_STAGES))
    for case, stages in results["hook_stages"].items():
        print(f"| {case} | " + " | ".join(f"{stages[stage]:.3f}" for stage in HOOK_STAGES) + " |")


COST_MEASURES: tuple[tuple[str, Callable[[dict[str, Any]], float]], ...] = (
    ("single row flat out, req/s", lambda r: r["flat_out"]["requests_per_second"]),
    ("p99 at 500 req/s, ms", lambda r: _p(r["rate_500"])),
    ("1,000-row JSON batches, rows/s", lambda r: r["batch_1000"]["rows_per_second"]),
    ("1,000-row Arrow batches, rows/s", lambda r: r["arrow_1000"]["rows_per_second"]),
    (
        "1,000-row Arrow batches, inference CPU ms",
        lambda r: r["arrow_1000"]["cpu_ms_per_request"]["inference"],
    ),
    ("1,000-row Arrow batches at {rate} req/s, p50 ms", lambda r: _p(r["arrow_rate"], "p50")),
    ("1,000-row Arrow batches at {rate} req/s, p99 ms", lambda r: _p(r["arrow_rate"])),
)
CPU_PARTS = ("inference", FORWARDER, "broker", "statistics", "asteroid-quality", CLIENT)
CONSUMER_PLACES = {  # --consumer -> how the report says it
    "beside": "the log's consumer beside the workers",
    "elsewhere": "the log's consumer elsewhere (paused during the measurements)",
    "apart": "the broker and the log's consumer on a core of their own, the rest of the stack and the load "
    "generator on the other(s)",
}


def report_costs(results: dict[str, Any]) -> None:
    """(d): the prediction log off and on, median over the rounds (each round's figures after it), and
    explanations against none in the first round's log-on stack."""
    rounds = results["log_rounds"]
    rate = results.get("log_arrow_rate", ARROW_RATE)
    print(
        f"\n(d) costs; the prediction log: median of {len(rounds)} round(s) (each round's figures after it); "
        + CONSUMER_PLACES[results.get("log_consumer", "beside")]
    )
    print("| | without | with | with / without | rounds: without / with |")
    print("| --- | --- | --- | --- | --- |")
    for label, value in COST_MEASURES:
        without = [value(measured["off"]["plain"]) for measured in rounds]
        with_ = [value(measured["on"]["plain"]) for measured in rounds]
        before, after = float(np.median(without)), float(np.median(with_))
        each = ", ".join(f"{b:,.1f} / {a:,.1f}" for b, a in zip(without, with_, strict=True))
        print(
            f"| prediction log: {label.format(rate=rate)} | {before:,.2f} | {after:,.2f} | "
            f"{after / before if before else 0:.2f} | {each} |"
        )
    on = results["log_on"]
    for label, value in COST_MEASURES:
        before, after = value(on["plain"]), value(on["explain"])
        print(
            f"| explanations: {label.format(rate=rate)} | {before:,.2f} | {after:,.2f} | "
            f"{after / before if before else 0:.2f} | |"
        )
    print(
        "\nthe prediction log's CPU, ms per request (median of the rounds) of each process: "
        + " / ".join(CPU_PARTS)
    )
    print("| requests | log off | log on |")
    print("| --- | --- | --- |")
    for key, label in (
        ("flat_out", "single rows flat out"),
        ("rate_500", "single rows at 500 req/s offered"),
        ("arrow_1000", "1,000-row Arrow batches flat out"),
        ("arrow_rate", f"1,000-row Arrow batches at {rate} req/s offered"),
    ):
        cells = []
        for log in ("off", "on"):
            cpu = [measured[log]["plain"][key]["cpu_ms_per_request"] for measured in rounds]
            cells.append(
                " / ".join(f"{np.median([c.get(part, 0.0) for c in cpu]):.3f}" for part in CPU_PARTS)
            )
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    loads = [
        measured[log]["plain"]["flat_out"]["load_average"] for measured in rounds for log in ("off", "on")
    ]
    print(f"load average (1 min) at the flat-out measurements: {min(loads):.2f}-{max(loads):.2f}")
    stored = [measured["stored"] for measured in rounds if "stored" in measured]
    print(
        "rows the consumer stored / rows answered with the log on, per round (seconds after the last "
        "measurement it had stored them all): "
        + ", ".join(f"{s['stored_rows']:,} / {s['answered_rows']:,} ({s['catch_up_s']} s)" for s in stored)
    )


def report_aims(results: dict[str, Any]) -> None:
    workers = results["default_workers"]
    print("\nAims (issue 21, item 5):")
    for count, hooks in results["single_row"].items():
        ratio = (
            hooks[PROJECT]["flat_out"]["requests_per_second"]
            / hooks[PANDAS]["flat_out"]["requests_per_second"]
        )
        print(
            f"  single-row req/s, project / pandas hook, {count} worker(s): {ratio:.1f}x "
            f"(aim >= {AIM_SINGLE_ROW_RATIO:g}x: {_verdict(ratio >= AIM_SINGLE_ROW_RATIO)})"
        )
    p99 = _p(results["single_row"][str(workers)][PROJECT]["rate_500"])
    print(
        f"  p99 at 500 req/s offered, {workers} worker(s): {p99:.1f} ms "
        f"(aim <= {AIM_P99_MS:g} ms: {_verdict(p99 <= AIM_P99_MS)})"
    )
    steady = results["steady_project_sender"]
    worst = steady["worst_second"] / steady["mean_per_second"] if steady["mean_per_second"] else 0.0
    print(
        f"  steady {STEADY_RATE} req/s: worst second {worst:.0%} of the mean "
        f"(aim >= {AIM_WORST_SECOND:.0%}: {_verdict(worst >= AIM_WORST_SECOND)})"
    )
    size = str(AIM_BATCH) if str(AIM_BATCH) in results["batches"] else max(results["batches"], key=int)
    arrow = results["batches"][size]["arrow"]["rows_per_second"]
    of_limit = arrow / results["limit"][size]
    over_json = arrow / max(results["batches"][size]["json"]["rows_per_second"], 1)
    print(
        f"  Arrow batches of {int(size):,} rows: {of_limit:.1%} of inplace_predict "
        f"(aim >= {AIM_ARROW_OF_LIMIT:.0%}: {_verdict(of_limit >= AIM_ARROW_OF_LIMIT)}), "
        f"{over_json:.1f}x JSON "
        f"(aim >= {AIM_ARROW_OVER_JSON:g}x: {_verdict(over_json >= AIM_ARROW_OVER_JSON)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: every part, for a second each")
    parser.add_argument("--seconds", type=float, help=f"duration of each measurement ({FULL.seconds:g})")
    parser.add_argument("--steady-seconds", type=int, help=f"the steady-rate run ({FULL.steady_seconds})")
    parser.add_argument(
        "--batch-sizes",
        type=lambda text: tuple(int(size) for size in text.split(",")),
        help="rows per batch request, comma-separated (" + ",".join(map(str, FULL.batch_sizes)) + ")",
    )
    parser.add_argument(
        "--workers", type=int, help="inference workers of the default setting (the stack's default)"
    )
    parser.add_argument(
        "--parts",
        default=PARTS,
        help=f"which parts to run, e.g. d: (d) alone ({PARTS}; a, b and c run together)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of (d)'s log on and off, the order alternating (1)"
    )
    parser.add_argument(
        "--consumer",
        choices=tuple(CONSUMER_PLACES),
        default="beside",
        help="(d): the log's consumer running beside the workers as `make serve` runs it (beside), "
        "paused during the measurements, as if on another machine, and resumed after (elsewhere), or the "
        "broker and the consumer on the first core and the rest on the others during them (apart), as if the "
        "broker and the consumer ran on machines of their own",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if not args.parts or set(args.parts) - set(PARTS) or args.rounds < 1:
        parser.error(f"--parts takes letters of {PARTS!r}; --rounds at least 1")
    base = QUICK if args.quick else FULL
    settings = Settings(
        args.seconds or base.seconds,
        args.steady_seconds or base.steady_seconds,
        args.batch_sizes or base.batch_sizes,
        args.workers or 0,
        args.parts,
        args.rounds,
        args.consumer,
    )
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "SERVING_LOCAL_"))}
    env["CLEARML_CACHE_DIR"] = str(work / "cache")
    env = start_backend(work, env)
    try:
        os.environ.update(env)  # this process's clearml SDK talks to the bench's backend
        model_path, records, what, edges = train_model(work)
        service_id = deploy(model_path, work, edges)
        print(f"deployed; measuring ({what})", flush=True)
        results = measure(service_id, work, env, records, model_path, settings)
        if "single_row" in results:
            results["hook_stages"] = hook_stages(model_path, records, settings.batch_sizes[-2:])
    finally:
        subprocess.run(
            [sys.executable, "-m", "clearml_local", "stop", "--data-dir", str(work / "backend")],
            env=env,
            capture_output=True,
            check=False,
        )
    report(results, what, settings)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
