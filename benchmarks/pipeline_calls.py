"""ClearML API calls during one pipeline run (NASA's table when present, else sample data), by step.

An observer on a fresh embedded backend timestamps every call; the run's timeline (task started → completed)
puts each call in the window of the step running then. The controller's status polls fall in every window.

    python benchmarks/pipeline_calls.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline_bench import child_env, run_pipeline, source_csv

from clearml_local.config import BackendConfig
from clearml_local.server import EmbeddedBackend

MARGIN_S = 0.3  # the timeline's times are rounded; a call this close to a window counts in it


def calls_by_step(calls: list[tuple[float, str]], summary: dict[str, Any]) -> dict[str, collections.Counter]:
    """Per step, the endpoints called while it ran, counted."""
    origin = min(moment for moment, endpoint in calls if endpoint.endswith("tasks.create"))
    windows = {}
    for name, step in summary["timeline"].items():
        low, high = origin + step["started"] - MARGIN_S, origin + step["completed"] + MARGIN_S
        windows[name] = collections.Counter(
            endpoint.rsplit("/", 1)[-1] for moment, endpoint in calls if low <= moment <= high
        )
    return windows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    calls: list[tuple[float, str]] = []

    def observe(endpoint: str, body: dict, data: dict | None, status: int) -> None:
        calls.append((time.time(), endpoint))

    csv, description = source_csv()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backend = EmbeddedBackend(BackendConfig(work / "backend", api_port=0, files_port=0), observer=observe)
        backend.start()
        try:
            wall, _, summary = run_pipeline(child_env(backend, work / "run", csv), args.seeds)
        finally:
            backend.stop()
    print(f"{description}, {args.seeds} seeds: {len(calls)} API calls in {wall:.1f} s")
    for name, counted in calls_by_step(calls, summary).items():
        top = ", ".join(f"{endpoint} {count}" for endpoint, count in counted.most_common(6))
        print(f"  {name:<14}{sum(counted.values()):>5}  {top}")


if __name__ == "__main__":
    main()
