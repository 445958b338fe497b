"""Thin helpers around the clearml SDK shared by the pipeline steps."""

from __future__ import annotations

import atexit
import fcntl
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import global_config
from asteroid.clearml_server import ensure_server

OUTPUT_SECTION = "Outputs"
_VALIDATORS: dict[int, tuple[dict[str, Any], Any]] = {}


def skip_request_schema_checks() -> None:
    """Make the SDK validate each API request against its schema without first re-validating the schema.

    The clearml SDK validates every request with ``jsonschema.validate``, which checks the (fixed, shipped)
    schema against the JSON-Schema meta-schema each time before checking the request: ~9 ms of CPU per
    request, seconds per pipeline step on this 2-core machine. This keeps the request validation — same
    validator class, same errors — and builds each schema's validator once. Idempotent.
    """
    from clearml.backend_api.session import datamodel

    validator_class = getattr(datamodel, "_CustomValidator", None)
    if validator_class is None or getattr(datamodel.DataModel.validate, "schema_checks_skipped", False):
        return
    from jsonschema.exceptions import best_match

    def validate(self: Any, schema: dict[str, Any] | None = None) -> None:
        schema = schema or self._schema
        cached = _VALIDATORS.get(id(schema))
        if cached is None or cached[0] is not schema:
            cached = _VALIDATORS[id(schema)] = (schema, validator_class(schema))
        error = best_match(cached[1].iter_errors(self.to_dict()))
        if error is not None:
            raise error

    validate.schema_checks_skipped = True  # type: ignore[attr-defined]
    datamodel.DataModel.validate = validate


def start_task(task_name: str, task_type: str) -> Any:
    """Connect to the ClearML server (embedded default when none is configured) and init the step's task."""
    from asteroid import sdk_config_cache

    sdk_config_cache.install()
    ensure_server(verbose=False)
    skip_request_schema_checks()
    from clearml import Task

    return Task.init(
        project_name=global_config.PROJECT_NAME,
        task_name=task_name,
        task_type=task_type,
        reuse_last_task_id=False,
        output_uri=True,
        # models and plots are reported explicitly, with names and metadata of our choosing
        auto_connect_frameworks={"xgboost": False, "matplotlib": False, "scikit": False, "joblib": False},
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


def dataset_local_copy(dataset_id: str) -> Path:
    """A read-only local copy of a dataset version.

    Parallel steps calling ``get_local_copy()`` on the same dataset race in the SDK's shared cache
    (``FileExistsError``); a per-dataset lock serialises them and later callers hit the cache.
    """
    from clearml import Dataset

    with machine_lock(f"dataset-{dataset_id}"):
        return Path(Dataset.get(dataset_id=dataset_id).get_local_copy())


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


class ComputeClock:
    """Adds up the time a step spends on its own work, as opposed to ClearML bookkeeping.

    Reported as the single value ``compute_seconds``; the pipeline summary and benchmark put it beside the
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
        task.get_logger().report_single_value("compute_seconds", round(self.seconds, 3))


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
    if task is None or os.environ.get("CLEARML_TASK_ID") != str(task.id):
        return

    def finish() -> None:
        hook = getattr(Task, "_Task__exit_hook", None)  # the SDK's record of how the script ended
        failed = hook is None or hook.exception is not None or bool(hook.exit_code) or hook.signal is not None
        if not failed and getattr(sys, "last_value", None) is None:
            end_process()

    atexit.register(finish)
