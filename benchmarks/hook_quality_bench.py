"""Request-path cost of the live-quality additions in the serving hook, in process (no HTTP): the prediction
log off vs on (publishing to a real Tansu broker) and explanations off vs on, for single rows and batches.

    .venv/bin/python benchmarks/hook_quality_bench.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import preprocess_serving
from asteroid import features, sample_data, schema, splitting, train
from asteroid.serving import contract, prediction_log
from process_supervisor import accepts_connections
from serving_local.stack import broker_binary

ROWS = 3000


def loaded_hook(work: Path) -> tuple[preprocess_serving.Preprocess, Any, list[dict]]:
    frame = sample_data.generate_sample(ROWS, 7)
    result = train.train_classifier(splitting.group_split(*features.build_features(frame), seed=3), seed=0)
    contract.stamp_model(result.booster, schema.HAZARD_THRESHOLD)
    path = train.save_model(result.booster, work / "model.json")
    hook = preprocess_serving.Preprocess()
    hook.model_endpoint = SimpleNamespace(model_id="bench", version="1", serving_url="asteroid")
    predictor = hook.load(str(path))
    return hook, predictor, json.loads(json.dumps(frame.to_dict(orient="records")))


def timed(hook: preprocess_serving.Preprocess, predictor: Any, bodies: list[dict], repeat: int) -> np.ndarray:
    times = []
    for index in range(repeat):
        began = time.perf_counter()
        state: dict[str, Any] = {}
        matrix = hook.preprocess(bodies[index % len(bodies)], state)
        hook.postprocess(predictor.predict(matrix), state)
        times.append(time.perf_counter() - began)
    return np.array(times) * 1000.0


def report(label: str, times: np.ndarray, rows: int) -> None:
    p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
    print(f"{label:<34} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  p50/row {p50 * 1000 / rows:7.1f} µs")


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        hook, predictor, records = loaded_hook(Path(work))
        port = _free_port()
        listener = f"tcp://127.0.0.1:{port}"
        broker = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while not accepts_connections("127.0.0.1", port):
                if time.monotonic() > deadline:
                    raise RuntimeError("the broker did not start")
                time.sleep(0.05)
            for rows, repeat in ((1, 3000), (100, 300), (1000, 30)):
                batches = [
                    {"rows": records[start : start + rows]} for start in range(0, ROWS - rows + 1, rows)
                ]
                bodies = [records[index] for index in range(500)] if rows == 1 else batches
                for log_on in (False, True):
                    broker_address = f"127.0.0.1:{port}" if log_on else None
                    preprocess_serving.PREDICTION_LOG = prediction_log.PredictionLog(broker_address, "bench")
                    label = f"{rows} row(s), log {'on ' if log_on else 'off'}"
                    report(label, timed(hook, predictor, bodies, repeat), rows)
                preprocess_serving.PREDICTION_LOG = prediction_log.PredictionLog(None, "bench")
                explained = [{**body, "explain": True} for body in bodies]
                report(f"{rows} row(s), explain", timed(hook, predictor, explained, repeat), rows)
        finally:
            broker.kill()
            broker.wait(timeout=10)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
