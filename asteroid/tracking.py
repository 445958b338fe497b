"""What the pipeline's steps share around the clearml SDK: starting a task, typed parameters and outputs,
dataset copies under a machine-wide lock, a compute clock, and ending a step's process (the one SDK patch
this needs, reading how the script ended, is ``third_party_patches.skip_teardown_after_clean_script``)."""

from __future__ import annotations

import fcntl
import os
import resource
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import global_config
import third_party_patches
from asteroid import dataset_handoff, run_guard
from asteroid.clearml_server import ensure_server

OUTPUT_SECTION = "Outputs"
PEAK_RSS_VALUE = "peak_rss_mb"
# Models and plots are reported explicitly, with names and metadata of our choosing: no framework binding
# (the matplotlib one alone imports matplotlib, ~0.4 s, in a step that draws nothing).
STEP_FRAMEWORKS = {"xgboost": False, "matplotlib": False, "scikit": False, "joblib": False}


def start_task(task_name: str, task_type: str) -> Any:
    """Connect to the ClearML server (embedded default when none is configured) and init the step's task;
    the step gives up when the server stops answering and ends cleanly on SIGTERM/SIGINT (run_guard)."""
    run_guard.guard(f"step {task_name!r}", ensure_server(verbose=False))
    from clearml import Task

    return Task.init(
        project_name=global_config.PROJECT_NAME,
        task_name=task_name,
        task_type=task_type,
        reuse_last_task_id=False,
        output_uri=True,
        auto_connect_frameworks=STEP_FRAMEWORKS,
        # steps last seconds: a machine-stats thread per step only competes with them for the CPU
        auto_resource_monitoring=False,
    )


def connect_params(task: Any, defaults: dict[str, Any], section: str = "General") -> dict[str, Any]:
    """Connect parameters; values overridden on the server (pipeline, UI, clone) come back typed."""
    params = dict(defaults)
    task.connect(params, name=section)
    return {
        key: type(defaults[key])(value) if defaults[key] is not None else value
        for key, value in params.items()
    }


def set_output(task: Any, name: str, value: Any) -> None:
    """Record a step result as a parameter later steps can reference: ``${step.parameters.Outputs/name}``."""
    task.set_parameter(f"{OUTPUT_SECTION}/{name}", str(value))


def get_output(task: Any, name: str) -> str:
    return str(task.get_parameter(f"{OUTPUT_SECTION}/{name}") or "")


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """An exclusive lock shared by all processes on this machine (parallel steps, one dataset cache)."""
    lock_dir = Path(tempfile.gettempdir()) / "asteroid-locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def dataset_copy(dataset_id: str, folder: str | None = None) -> tuple[Any, Path]:
    """A dataset version and a read-only local copy of it, or of only its files under `folder` (a child
    version's copy otherwise holds its parents' files too: the raw observations, in a preprocessed version).
    The version itself can be handed on, e.g. as the parent of a new one, without fetching it again.

    The files an earlier step on this machine offered for the version (``dataset_handoff``) are used where
    they are; otherwise the version is downloaded. Parallel steps calling ``get_local_copy()`` on the same
    dataset race in the SDK's shared cache (``FileExistsError``); a per-dataset lock serialises them and
    later callers hit the cache.
    """
    from clearml import Dataset

    with machine_lock(f"dataset-{dataset_id}"):
        dataset = Dataset.get(dataset_id=dataset_id)
        files = dataset.list_files()
        if folder is not None:
            files = [name for name in files if name.startswith(f"{folder}/")]
        entries = dataset.file_entries_dict
        handed = dataset_handoff.take(
            dataset_id, {name: getattr(entries.get(name), "size", None) for name in files}
        )
        if handed is not None:
            return dataset, handed
        return dataset, Path(dataset.get_local_copy(files=None if folder is None else files))


def dataset_local_copy(dataset_id: str, folder: str | None = None) -> Path:
    """The local copy of `dataset_copy`."""
    return dataset_copy(dataset_id, folder)[1]


def upload_and_finalize(dataset: Any) -> None:
    """Upload a dataset version's files stored, not deflated, and close the version.

    Measured on NASA's table: deflating the raw CSV and the split costs ~0.3 s of the pipeline's critical path
    for files of 2.4 and 1.2 MB (1.0 and 0.5 MB deflated).
    """
    dataset.upload(show_progress=False, compression=zipfile.ZIP_STORED)
    dataset.finalize()


def latest_dataset_id(dataset_name: str) -> str:
    from clearml import Dataset

    dataset = Dataset.get(
        dataset_name=dataset_name, dataset_project=global_config.PROJECT_NAME, only_completed=True
    )
    return str(dataset.id)


def peak_rss_mb() -> float:
    """The largest resident memory this process's program has had so far, in MiB.

    Linux's VmHWM, which starts afresh when a process execs; `ru_maxrss` does not, and so counts a step's
    parent (the controller that forked it) too. Elsewhere `ru_maxrss`, in KiB as Linux reports it.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class ComputeClock:
    """Adds up the time a step spends on its own work, as opposed to ClearML bookkeeping.

    Reported as the single value ``compute_seconds``, beside ``peak_rss_mb`` (the process's peak resident
    memory so far); the pipeline summary and benchmark put them beside the
    step's wall time to show the orchestration overhead.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def measure(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - began

    def report(self, task: Any) -> None:
        logger = task.get_logger()
        logger.report_single_value("compute_seconds", round(self.seconds, 3))
        logger.report_single_value(PEAK_RSS_VALUE, peak_rss_mb())


def run_step(step: Callable[[], Any]) -> None:
    """Run a step's main; expected failures end the task as failed with one clear line, not a traceback.

    On success the task is closed and the process ends at once (``end_process``).
    """
    try:
        step()
    except (ValueError, FileNotFoundError) as exc:
        from clearml import Task

        message = f"{type(exc).__name__}: {exc}"
        print(f"error: {message}", file=sys.stderr, flush=True)
        task = Task.current_task()
        if task is not None:
            task.mark_failed(status_reason=message[:255], force=True)
        raise SystemExit(1) from None
    end_process()


def end_process(code: int = 0) -> NoReturn:
    """Close the current task (waits for its reports and uploads, marks it completed) and exit with ``code``
    without the interpreter's teardown.

    A step process's teardown (finalising pandas, xgboost, the SDK's threads) took ~0.4 s after the task was
    complete, on the pipeline's critical path once per step and once more for the controller.
    """
    from clearml import Task

    task = Task.current_task()
    if task is not None:
        task.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def end_process_at_exit() -> None:
    """Have this process end like ``end_process`` once its script is done: for function steps, whose script
    the SDK writes, so that the step itself cannot end it.

    Only in a process launched to run the current task (``CLEARML_TASK_ID`` names it, as the pipeline's local
    steps and agents set it), and at exit only when the script ended cleanly — no uncaught exception, no
    non-zero ``sys.exit``, no signal — so that failures keep their exit code and task status.
    """
    from clearml import Task

    task = Task.current_task()
    if task is not None and os.environ.get("CLEARML_TASK_ID") == str(task.id):
        third_party_patches.skip_teardown_after_clean_script(end_process)
