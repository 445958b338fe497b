"""The prediction log's cost on the request path: the project's hook with the log (`numpy`) and without it
(`numpy_nolog`, benchmarks/hooks/nolog_init.py) side by side in one local stack (one inference worker), in
rounds that alternate which goes first: single rows at 100 requests/s offered (open loop: p50/p99) and flat
out (requests/s), with the CPU time per request of the inference worker and of its forwarder process
(asteroid/serving/prediction_forwarder.py), read from /proc. On a shared machine the latencies move with the
neighbours' load; CPU time per request moves much less, so it is reported too.

With `--in-process`, no stack and no HTTP: single-row requests handed to the log at a paced rate (sleeping
between them), the CPU time per request of this process with the log on (a real broker) minus with it off —
what the log costs the worker, independent of the neighbours' load — and of the forwarder.

With `--consumer`, the consumer's side alone, no broker: the messages a forwarder would publish for `--rows`
single-row requests (a message per flush of `--requests-per-flush`), decoded and stored into SQLite in a
temporary file, a transaction per `--messages-per-commit` messages, by the former store
(tests/quality/store_reference.py) and by the consumer's (`store.prediction_rows`, `store.store_rows`):
CPU and wall µs a row, decoding apart.

    python benchmarks/prediction_log_bench.py [--seconds 8] [--rounds 4]
    python benchmarks/prediction_log_bench.py --in-process
    python benchmarks/prediction_log_bench.py --consumer [--rows 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import serving_bench as bench

HOOKS = ("numpy", "numpy_nolog")
MEASUREMENTS = {"rate_100": {"rate": 100, "concurrency": 8}, "flat_out": {"concurrency": 4}}
FORWARDER = "prediction_forwarder.py"


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def cpu_seconds(inference_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the inference processes and of the forwarders among them."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals = {"worker": 0.0, "forwarder": 0.0}
    for pid in descendants(inference_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        kind = "forwarder" if FORWARDER.encode() in command else "worker"
        totals[kind] += (int(fields[11]) + int(fields[12])) / ticks
    return totals


def measure(serve_url: str, inference_pid: int, records: list[dict], seconds: float, rounds: int) -> dict:
    singles = bench.bodies(records, 1, 2000)
    for name in HOOKS:
        bench.load(f"{serve_url}/{name}", singles[:300], concurrency=2, count=300)  # loads code and model
    results: dict[str, list[dict[str, Any]]] = {}
    for round_number in range(rounds):
        for key, options in MEASUREMENTS.items():
            for name in HOOKS if round_number % 2 == 0 else reversed(HOOKS):
                before = cpu_seconds(inference_pid)
                result = bench.load(f"{serve_url}/{name}", singles, duration=seconds, **options)
                after = cpu_seconds(inference_pid)
                for kind in before:
                    result[f"{kind}_us_per_request"] = (after[kind] - before[kind]) / result["requests"] * 1e6
                results.setdefault(f"{key} {name}", []).append(result)
                print(f"  round {round_number + 1} {key} {name}: {result['requests_per_second']:.0f} req/s, "
                      f"p99 {result['latency_ms']['p99']:.1f} ms, worker "
                      f"{result['worker_us_per_request']:.0f} µs/request", flush=True)  # fmt: skip
    return results


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    def median(key: str, pick: Any) -> float:
        return statistics.median(pick(result) for result in results[key])

    print("\n| median of rounds | log on (numpy) | log off (numpy_nolog) |\n| --- | --- | --- |")
    rows = (
        ("p99 at 100 req/s offered (ms)", "rate_100", lambda r: r["latency_ms"]["p99"]),
        ("p50 at 100 req/s offered (ms)", "rate_100", lambda r: r["latency_ms"]["p50"]),
        ("flat out (req/s)", "flat_out", lambda r: r["requests_per_second"]),
        ("worker CPU per request, flat out (µs)", "flat_out", lambda r: r["worker_us_per_request"]),
        ("forwarder CPU per request, flat out (µs)", "flat_out", lambda r: r["forwarder_us_per_request"]),
    )
    for label, key, pick in rows:
        print(f"| {label} | {median(f'{key} numpy', pick):.1f} | {median(f'{key} numpy_nolog', pick):.1f} |")


def paced_cpu_us(log: Any, requests: list[Any], count: int, rate: float) -> float:
    """This process's CPU time per request while handing `count` requests to `log` at `rate` per second."""
    import time

    before = os.times()
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        log.record(requests[index % len(requests)])
    time.sleep(0.2)  # the flusher's last flush
    after = os.times()
    return (after.user + after.system - before.user - before.system) / count * 1e6


def in_process(rounds: int) -> None:
    import socket
    import time

    import numpy as np

    from asteroid import schema
    from asteroid.serving import prediction_log
    from process_supervisor import accepts_connections
    from serving_local.stack import broker_binary

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    listener = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([broker_binary(), "broker", "--listener-url", listener,
                               "--advertised-listener-url", listener], stdout=subprocess.DEVNULL)  # fmt: skip
    names = list(schema.FEATURES)
    model = {"endpoint": "asteroid/1", "id": "0" * 32, "version": "1"}
    rows = np.random.default_rng(7).random((500, 1, len(names)))
    requests = [
        prediction_log.Answered(time.time(), model, names, row, [0.3], [False],
                                prediction_log.new_request_ids(1), [3_000_000 + index], [None])
        for index, row in enumerate(rows)
    ]  # fmt: skip
    try:
        while not accepts_connections("127.0.0.1", port):
            time.sleep(0.05)
        on = prediction_log.PredictionLog(f"127.0.0.1:{port}", "prediction_log_bench")
        off = prediction_log.PredictionLog(None, "prediction_log_bench")
        paced_cpu_us(on, requests, 500, 1000)  # starts the flusher and the forwarder
        print("| offered req/s | worker CPU per request, log on − off (µs) | forwarder's (µs) |")
        print("| --- | --- | --- |")
        for rate, count in ((100, 600), (1000, 3000)):
            for _ in range(rounds):
                forwarder_before = cpu_seconds(os.getpid())["forwarder"]
                logged = paced_cpu_us(on, requests, count, rate)
                forwarder = (cpu_seconds(os.getpid())["forwarder"] - forwarder_before) / count * 1e6
                unlogged = paced_cpu_us(off, requests, count, rate)
                print(f"| {rate} | {logged - unlogged:.0f} | {forwarder:.0f} |")
        on.close()
        print(f"dropped: {on.dropped}")
    finally:
        broker.kill()
        broker.wait(timeout=10)


def forwarded_messages(rows: int, requests_per_flush: int) -> list[bytes]:
    """The forwarder's messages for `rows` single-row requests, one message per flush of the worker."""
    import numpy as np

    from asteroid import schema
    from asteroid.serving import prediction_forwarder, prediction_log

    names = list(schema.FEATURES)
    model = {"endpoint": "asteroid/1", "id": "0" * 32, "version": "1"}
    matrix = np.random.default_rng(7).normal(0.0, 100.0, (rows, 1, len(names)))
    requests = [
        prediction_log.Answered(1_900_000_000.0 + index / 500, model, names, row, [0.3], [index % 7 == 0],
                                prediction_log.new_request_ids(1), [3_000_000 + index], [None])
        for index, row in enumerate(matrix)
    ]  # fmt: skip
    return [
        prediction_forwarder.pack_message(
            [
                block
                for block, _ in prediction_log.encode_requests(requests[start : start + requests_per_flush])
            ]
        )
        for start in range(0, rows, requests_per_flush)
    ]


def consumer_store(messages: list[bytes], per_commit: int, former: bool) -> dict[str, float]:
    """Seconds of CPU and wall to decode and store the messages into a fresh SQLite file, and of decoding."""
    import time

    from asteroid.quality import store
    from tests.quality import store_reference

    work = Path(tempfile.mkdtemp(prefix="consumer-bench-"))
    engine = store.engine(f"sqlite:///{work / 'quality.db'}")
    decode_cpu = inserted = 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(messages), per_commit):
        decode_start = time.process_time()
        if former:
            predictions = [p for value in messages[start : start + per_commit]
                           for p in store_reference.old_predictions(value)]  # fmt: skip
        else:
            rows = [
                row for value in messages[start : start + per_commit] for row in store.prediction_rows(value)
            ]
        decode_cpu += time.process_time() - decode_start
        with engine.begin() as connection:
            if former:
                inserted += store_reference.old_store_batch(connection, predictions)
                store.store_rows(connection, [], {("topic", 0): start + per_commit})
            else:
                inserted += store.store_rows(connection, rows, {("topic", 0): start + per_commit})
    result = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "decode": decode_cpu}
    engine.dispose()
    shutil.rmtree(work, ignore_errors=True)
    return {**result, "inserted": inserted}


def consumer(rows: int, requests_per_flush: int, per_commit: int, rounds: int) -> None:
    messages = forwarded_messages(rows, requests_per_flush)
    print(f"{rows} single-row requests, {len(messages)} messages, a commit per {per_commit} messages")
    print("| store | round | CPU µs a row | of which decoding | wall µs a row |")
    print("| --- | --- | --- | --- | --- |")
    results: dict[str, list[dict[str, float]]] = {"former": [], "column-wise": []}
    for round_number in range(rounds):
        for name in list(results) if round_number % 2 == 0 else reversed(list(results)):
            result = consumer_store(messages, per_commit, former=name == "former")
            assert result["inserted"] == rows, result
            results[name].append(result)
            per_row = {key: value / rows * 1e6 for key, value in result.items()}
            print(f"| {name} | {round_number + 1} | {per_row['cpu']:.1f} | {per_row['decode']:.1f} | "
                  f"{per_row['wall']:.1f} |", flush=True)  # fmt: skip
    medians = {
        name: statistics.median(r["cpu"] for r in found) / rows * 1e6 for name, found in results.items()
    }
    print(f"median CPU µs a row: former {medians['former']:.1f}, column-wise {medians['column-wise']:.1f} "
          f"({medians['former'] / medians['column-wise']:.1f}x)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each measurement")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--in-process", action="store_true", help="the log alone, no stack, no HTTP")
    parser.add_argument("--consumer", action="store_true", help="the consumer's store alone, no broker")
    parser.add_argument("--rows", type=int, default=50_000, help="with --consumer: single-row requests")
    parser.add_argument("--requests-per-flush", type=int, default=100, help="with --consumer")
    parser.add_argument("--messages-per-commit", type=int, default=5, help="with --consumer")
    args = parser.parse_args()
    if args.consumer:
        consumer(args.rows, args.requests_per_flush, args.messages_per_commit, args.rounds)
        return 0
    if args.in_process:
        in_process(args.rounds)
        return 0
    work = Path(tempfile.mkdtemp(prefix="prediction-log-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env["CLEARML_CACHE_DIR"] = str(work / "cache")
    stack = ["--data-dir", str(work / "stack")]
    env = bench.start_backend(work, env)
    try:
        os.environ.update(env)
        model_path, records, what, edges = bench.train_model(work)
        hooks = {name: folder for name, folder in bench.hook_folders(work).items() if name in HOOKS}
        service_id = bench.deploy(model_path, hooks, edges)
        port = bench.free_port()
        ports = ["--port", str(port), "--metrics-port", str(bench.free_port())]
        ports += ["--broker-port", str(bench.free_port()), "--monitoring", "off"]
        bench.run(sys.executable, "-m", "serving_local", "start", "--service-id", service_id, *stack, *ports,
                  env=env)  # fmt: skip
        state = json.loads((work / "stack" / "state.json").read_text())
        print(f"stack up; {args.rounds} rounds of {args.seconds:g} s per measurement ({what})", flush=True)
        results = measure(f"http://127.0.0.1:{port}/serve", state["pids"]["inference"], records,
                          args.seconds, args.rounds)  # fmt: skip
    finally:
        subprocess.run([sys.executable, "-m", "serving_local", "stop", *stack], env=env, capture_output=True,
                       check=False)  # fmt: skip
        subprocess.run([sys.executable, "-m", "clearml_local", "stop", "--data-dir", str(work / "backend")],
                       env=env, capture_output=True, check=False)  # fmt: skip
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
