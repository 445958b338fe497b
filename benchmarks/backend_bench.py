"""Throughput of the embedded ClearML backend: ``tasks.get_by_id`` requests/s, ``events.add_batch``
events/s for several batch sizes, and ``tasks.get_all`` requests/s once the backend holds many tasks, over
one keep-alive HTTP connection to a backend server process on free ports.

Usage: python benchmarks/backend_bench.py [--seconds S] [--batch-sizes 1,100,1000] [--tasks 10000]
       python benchmarks/backend_bench.py --compare /tmp/before [--runs 3]

``events.add_batch`` is measured with scalar events (each updates its task's ``last_metrics``) and with as
many log lines (stored alike, no metric upkeep): their ratio is what the ``last_metrics`` upkeep costs.
With ``--compare DIR`` (other code, e.g. ``git archive main | tar -x -C DIR``) the rounds alternate between a
server of that code ("before") and of this checkout ("after"), and the medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from clearml_local.auth_tokens import Credentials
from clearml_local.config import BackendConfig, load_or_create_credentials
from clearml_local.process import read_state

API_PREFIX = "/v2.23/"
MAX_CALLS = 1_000_000  # the loops stop at the time budget or here, whichever comes first


@dataclass(frozen=True)
class Result:
    name: str
    calls: int
    seconds: float
    items_per_call: int

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds

    @property
    def items_per_s(self) -> float:
        return self.calls * self.items_per_call / self.seconds


class Client:
    """One keep-alive session with a token, failing loudly on any non-200 reply."""

    def __init__(self, api_url: str, creds: Credentials) -> None:
        self.url = api_url + API_PREFIX
        self.session = requests.Session()
        login = self.session.post(
            self.url + "auth.login", auth=(creds.access_key, creds.secret_key), timeout=10
        )
        self.session.headers["Authorization"] = f"Bearer {login.json()['data']['token']}"

    def post(self, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        reply = self.session.post(self.url + endpoint, timeout=30, **kwargs)
        if reply.status_code != 200:
            raise RuntimeError(f"{endpoint} -> {reply.status_code}: {reply.text[:300]}")
        data: dict[str, Any] = reply.json()["data"]
        return data


def measure(name: str, call: Callable[[], None], seconds: float, items_per_call: int = 1) -> Result:
    for _ in range(min(50, MAX_CALLS)):  # warm-up
        call()
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    while calls < MAX_CALLS and time.perf_counter() < deadline:
        call()
        calls += 1
    return Result(name, calls, time.perf_counter() - start, items_per_call)


def scalar_events(task_id: str, batch_size: int, first_iteration: int) -> list[dict[str, Any]]:
    """``batch_size`` scalars over 10 series of one metric."""
    return [
        {
            "type": "training_stats_scalar",
            "task": task_id,
            "metric": "loss",
            "variant": f"v{i % 10}",
            "iter": first_iteration + i,
            "value": 1.0 / (first_iteration + i + 1),
        }
        for i in range(batch_size)
    ]


def event_lines(task_id: str, batch_size: int, first_iteration: int) -> bytes:
    return "\n".join(json.dumps(e) for e in scalar_events(task_id, batch_size, first_iteration)).encode()


def add_batch_call(client: Client, task_id: str, batch_size: int) -> Callable[[], None]:
    counter = {"iteration": 0}

    def call() -> None:
        body = event_lines(task_id, batch_size, counter["iteration"])
        counter["iteration"] += batch_size
        client.post("events.add_batch", data=body)

    return call


@contextmanager
def server_process(data_dir: Path, code: Path | None = None) -> Iterator[tuple[str, Credentials]]:
    """The backend in its own process (as users run it), so the client does not share its interpreter;
    ``code`` is the checkout it runs from (this one by default)."""
    config = BackendConfig(data_dir, api_port=0, files_port=0)
    argv = [sys.executable, "-m", "clearml_local", "serve", "--data-dir", str(data_dir), "--api-port", "0"]
    root = (code or Path(__file__).resolve().parent.parent).resolve()
    process = subprocess.Popen(
        [*argv, "--files-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        deadline = time.monotonic() + 30
        state = None
        while state is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the backend did not start")
            state = read_state(config)
            time.sleep(0.05)  # start-up polling, bounded by the deadline
        yield state["api_url"], load_or_create_credentials(config)
    finally:
        process.terminate()
        process.wait(timeout=10)


def get_all_calls(client: Client, task_ids: list[str]) -> dict[str, Callable[[], None]]:
    """The get_all queries clients send most: the SDK's status poll of a few tasks by id, a name lookup
    (regular expression), and the newest page of a project, as the pipeline's run-number lookup does."""
    project = client.post("tasks.get_by_id", json={"task": task_ids[0]})["task"]["project"]
    queries = {
        "status poll (3 ids)": {"id": task_ids[-3:], "only_fields": ["status", "status_message", "id"]},
        "name regex": {"name": f"^bench-{len(task_ids) // 2}$", "only_fields": ["id", "name"]},
        "newest page of 100": {
            "project": [project],
            "order_by": ["-created"],
            "page": 0,
            "page_size": 100,
            "only_fields": ["id", "name", "last_update", "system_tags"],
        },
    }
    return {
        name: (lambda body=body: client.post("tasks.get_all", json=body)) for name, body in queries.items()
    }


def run(seconds: float, batch_sizes: list[int], tasks: int, code: Path | None = None) -> list[Result]:
    with tempfile.TemporaryDirectory() as data_dir, server_process(Path(data_dir), code) as (api_url, creds):
        client = Client(api_url, creds)
        task_id = client.post("tasks.create", json={"name": "bench", "type": "training"})["id"]
        results = [
            measure(
                "tasks.get_by_id", lambda: client.post("tasks.get_by_id", json={"task": task_id}), seconds
            )
        ]
        for size in batch_sizes:
            call = add_batch_call(client, task_id, size)
            results.append(measure(f"events.add_batch x{size}", call, seconds, items_per_call=size))

        if tasks:
            project = client.post("projects.create", json={"name": "bench"})["id"]
            body = {"type": "training", "project": project}
            task_ids = [
                client.post("tasks.create", json={**body, "name": f"bench-{i}"})["id"] for i in range(tasks)
            ]
            for name, call in get_all_calls(client, task_ids).items():
                results.append(measure(f"get_all {tasks}: {name}", call, seconds))
        client.session.close()
    return results


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def header(seconds: float) -> str:
    return "\n".join(
        [
            f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"machine: nproc={os.cpu_count()}  cpu={cpu_model()}",
            f"python: {platform.python_version()}  budget: {seconds:g}s per row, one keep-alive connection",
        ]
    )


def report(results: list[Result], seconds: float) -> str:
    lines = [
        header(seconds),
        "",
        f"{'benchmark':<42}{'calls':>9}{'seconds':>9}{'requests/s':>12}{'items/s':>12}",
    ]
    for r in results:
        lines.append(f"{r.name:<42}{r.calls:>9}{r.seconds:>9.2f}{r.calls_per_s:>12.0f}{r.items_per_s:>12.0f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Upkeep:
    """What keeping ``last_metrics`` costs one ``add_batch`` call of ``batch_size`` scalars, in process."""

    batch_size: int
    seconds_per_call: float  # in the upkeep method
    share: float  # of the rest of add_batch's own work (no HTTP, no validation)


def upkeep(batch_size: int, seconds: float) -> Upkeep:
    """Time ``EventBackend.add_batch`` in this process, and separately its ``last_metrics`` upkeep method."""
    from clearml_local.auth_tokens import Identity
    from clearml_local.state import State
    from clearml_local.storage import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite")
        state = State(store, Identity("bench", "bench", "bench", "bench"))
        task_id = state.tasks.create({"name": "bench", "type": "training"})
        spent = {"seconds": 0.0}
        # the upkeep's method (named _update_task_metrics before model events had it too)
        name = next(n for n in ("_update_metrics", "_update_task_metrics") if hasattr(state.events, n))
        keep_metrics = getattr(state.events, name)

        def timed(*args: Any) -> None:
            began = time.perf_counter()
            keep_metrics(*args)
            spent["seconds"] += time.perf_counter() - began

        setattr(state.events, name, timed)
        calls, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            state.events.add_batch(scalar_events(task_id, batch_size, calls * batch_size))
            calls += 1
        total = time.perf_counter() - began
        store.close()
    return Upkeep(batch_size, spent["seconds"] / calls, spent["seconds"] / (total - spent["seconds"]))


def upkeep_of(code: Path | None, batch_size: int, seconds: float) -> Upkeep:
    """``upkeep`` measured with the backend code of another checkout, in a process of its own."""
    root = (code or Path(__file__).resolve().parent.parent).resolve()
    argv = [
        sys.executable,
        __file__,
        "--upkeep-only",
        "--batch-sizes",
        str(batch_size),
        "--seconds",
        str(seconds),
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=True)
    return Upkeep(**json.loads(done.stdout.strip().splitlines()[-1]))


def upkeep_lines(name: str, measured: list[Upkeep], calls_per_s: float | None) -> str:
    """The medians of a side's upkeep measurements, and their share of an HTTP call's time if known."""
    share = statistics.median(u.share for u in measured)
    per_call = statistics.median(u.seconds_per_call for u in measured)
    line = (
        f"{name}: last_metrics upkeep of add_batch x{measured[0].batch_size}: {per_call * 1e6:.0f} µs a call,"
    )
    line += f" {share:.1%} of add_batch's other in-process work"
    if calls_per_s:
        line += f", {per_call * calls_per_s:.1%} of an HTTP call"
    return line


def median_rates(rounds: list[list[Result]]) -> dict[str, float]:
    """benchmark → the median of its items/s over the rounds."""
    rates: dict[str, list[float]] = {}
    for results in rounds:
        for result in results:
            rates.setdefault(result.name, []).append(result.items_per_s)
    return {name: statistics.median(values) for name, values in rates.items()}


def compare(other: Path, runs: int, seconds: float, batch_sizes: list[int], tasks: int) -> None:
    """Alternate rounds of a server of ``other`` ("before") and of this checkout ("after"); print medians."""
    variants = {"before": other, "after": None}
    rounds: dict[str, list[list[Result]]] = {name: [] for name in variants}
    for number in range(runs):
        for name, code in variants.items():
            rounds[name].append(run(seconds, batch_sizes, tasks, code))
            print(f"round {number + 1} {name}: done", flush=True)
    medians = {name: median_rates(found) for name, found in rounds.items()}
    print(header(seconds))
    print(f"rounds: {runs}, alternating; medians of items/s (requests/s where one item per call)\n")
    print(f"{'benchmark':<42}{'before':>12}{'after':>12}{'after/before':>14}")
    for name, before in medians["before"].items():
        after = medians["after"].get(name)
        if after is not None:
            print(f"{name:<42}{before:>12.0f}{after:>12.0f}{after / before:>14.3f}")
    for size in batch_sizes:
        for name, code in variants.items():
            measured = [upkeep_of(code, size, seconds) for _ in range(runs)]
            rate = medians[name].get(f"events.add_batch x{size}")
            print(upkeep_lines(name, measured, rate / size if rate else None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget of each measurement")
    parser.add_argument("--batch-sizes", default="1,100,1000", help="events per events.add_batch call")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks stored before measuring get_all")
    parser.add_argument("--compare", type=Path, help="other code to alternate rounds with (the 'before')")
    parser.add_argument("--runs", type=int, default=3, help="rounds of each side with --compare")
    parser.add_argument(
        "--upkeep-only", action="store_true", help="print only the last_metrics upkeep (JSON)"
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.batch_sizes.split(",") if size.strip()]
    if args.upkeep_only:
        print(json.dumps(upkeep(max(sizes), args.seconds).__dict__))
        return
    if args.compare:
        compare(args.compare, args.runs, args.seconds, sizes, args.tasks)
        return
    results = run(args.seconds, sizes, args.tasks)
    print(report(results, args.seconds))
    rates = {r.name: r.calls_per_s for r in results}
    for size in sizes:
        print(upkeep_lines("this code", [upkeep(size, args.seconds)], rates.get(f"events.add_batch x{size}")))


if __name__ == "__main__":
    main()
