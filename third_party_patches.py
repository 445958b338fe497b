"""Every change this project makes to third-party code (the clearml SDK, jsonschema's use by it,
prometheus_client's use by clearml-serving, clearml-serving's statistics sender and its canary draw), each
installed by a function named for what it changes.

Importing this module changes nothing: the entry points call the ``install`` functions (``pipeline.py`` and
the step scripts, the function step through ``asteroid/function_step_patches.py``,
``serving_local/statistics_controller.py`` and ``serving_local/inference_app.py``). Before changing anything,
each function checks that the code it changes is still the code it was written against: the signatures it
calls, the private names it reads and, for a function it replaces with its own version, a fingerprint of that
function's code (its syntax tree without docstring, comments or formatting; ``FINGERPRINTS``). On a mismatch
it changes nothing, writes one line to stderr (``third_party_patches: <patch> switched off: <why>``) and
returns False; it never raises. Each is idempotent and returns True once installed.

Imports nothing of the application: ``asteroid`` and the generic ``serving_local`` both use it.
"""

from __future__ import annotations

import ast
import atexit
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import pickle
import re
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_INSTALLED = "third_party_patches_installed"  # marks a replacement installed by this module
_INCLUDE = re.compile(r"^\s*include\b", re.MULTILINE)  # HOCON's include directive (not the word in comments)

# Fingerprints (`code_fingerprint`) of the third-party functions whose work a patch repeats in its own way,
# as in the pinned versions (requirements.txt: clearml 2.1.12, jsonschema 4.26.0, clearml-serving 1.3.5).
# After an upgrade switches a patch off, read the new version of the function; if the patch still repeats it,
# record its new fingerprint.
FINGERPRINTS: dict[str, str] = {
    "clearml ConfigFactory.parse_file": "43b74d77fff761fa",
    "clearml DataModel.validate": "0b221d24024a2ecd",
    "clearml get_logger": "c6d8e44d3e24199f",
    "clearml LocalClearmlJob.launch": "36791be91704c582",
    "clearml LocalClearmlJob.wait_for_process": "ee36ccdf59681e23",
    "clearml LocalClearmlJob.status": "595edb35a34aaa41",
    "clearml PatchedMatplotlib.update_current_task": "b603c761add97a3b",
    "jsonschema.validate": "d6874152191aadc2",
    "clearml-serving FastSimpleQueue.get": "617ec9717fa53c26",
    "clearml-serving ModelRequestProcessor._stats_send_loop": "fe68f482e9a3e7a7",
}


def code_fingerprint(function: Callable[..., Any]) -> str:
    """A hash of a function's code: its syntax tree without its docstring, so that comments, docstrings and
    formatting leave it unchanged and any change to the code changes it."""
    definition = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    body = definition.body  # type: ignore[attr-defined]
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        definition.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return hashlib.sha256(ast.unparse(definition).encode()).hexdigest()[:16]


def _switch_off(patch: str, reason: str) -> bool:
    print(f"third_party_patches: {patch} switched off: {reason}", file=sys.stderr, flush=True)
    return False


def _install(patch: str, mismatch: Callable[[], str | None], apply: Callable[[], None]) -> bool:
    """Apply a patch unless `mismatch` names a difference from the code it was written against."""
    try:
        reason = mismatch()
    except Exception as exc:  # a moved module or a renamed attribute is a mismatch like any other
        reason = f"{type(exc).__name__}: {exc}"
    if reason:
        return _switch_off(patch, reason)
    apply()
    return True


def _parameters(function: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(name for name in inspect.signature(function).parameters if name not in ("self", "cls"))


def _expect_parameters(label: str, function: Callable[..., Any], expected: tuple[str, ...]) -> str | None:
    found = _parameters(function)
    return None if found == expected else f"{label} takes {found}, expected {expected}"


def _expect_fingerprint(label: str, function: Callable[..., Any]) -> str | None:
    found = code_fingerprint(function)
    expected = FINGERPRINTS[label]
    return None if found == expected else f"{label} changed (code fingerprint {found}, expected {expected})"


def _first(*checks: Callable[[], str | None]) -> str | None:
    for check in checks:
        reason = check()
        if reason:
            return reason
    return None


# --- the SDK's configuration files, parsed once per machine -----------------------------------------------


def config_cache_dir() -> Path:
    """The SDK's cache folder (``CLEARML_CACHE_DIR``, else ``~/.clearml/cache``), sub-folder of our own."""
    base = os.environ.get("CLEARML_CACHE_DIR") or str(Path.home() / ".clearml" / "cache")
    return Path(base).expanduser() / "asteroid-config"


def config_cacheable(content: str) -> bool:
    """Whether a file's parsed result depends on its text alone (no substitutions, no includes)."""
    return "${" not in content and _INCLUDE.search(content) is None


def _config_cache_key(content: str, base_dir: str) -> str:
    from clearml.version import __version__

    return hashlib.sha256(f"{__version__}\0{base_dir}\0{content}".encode()).hexdigest()


def _load(path: Path) -> Any | None:
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def _store(path: Path, value: Any) -> None:
    """Write atomically into a folder only this user can write; failures only cost the next parse."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as handle:
            pickle.dump(value, handle)
        os.replace(handle.name, path)
    except (OSError, pickle.PicklingError):
        pass


def cache_parsed_config_files() -> bool:
    """Replace the SDK's vendored pyhocon ``ConfigFactory.parse_file`` with one that keeps each parsed file
    in a cache folder (``config_cache_dir``), keyed by the SDK version, the file's folder and its content.

    Every process that talks to ClearML parses the SDK's default configuration files and ``clearml.conf``
    with pyparsing: ~0.3 s of CPU per process on a 2-core machine, on the pipeline's critical path five
    times. Files with substitutions (``${...}``) or ``include`` directives, whose result depends on more than
    their text, and calls with non-default ``resolve``/``unresolved_value`` go to the SDK's own function.
    Relies on ``parse_file`` being "read the file, then ``parse_string(content, its folder, resolve,
    unresolved_value)``" (its fingerprint) and on both signatures.
    """
    from clearml.utilities.pyhocon import config_parser

    factory = config_parser.ConfigFactory
    if getattr(factory.parse_file, _INSTALLED, False):
        return True

    def mismatch() -> str | None:
        parse_file_parameters = ("filename", "encoding", "required", "resolve", "unresolved_value")
        parse_string_parameters = ("content", "basedir", "resolve", "unresolved_value")
        return _first(
            lambda: _expect_parameters("ConfigFactory.parse_file", factory.parse_file, parse_file_parameters),
            lambda: _expect_parameters(
                "ConfigFactory.parse_string", factory.parse_string, parse_string_parameters
            ),
            lambda: _expect_fingerprint("clearml ConfigFactory.parse_file", factory.parse_file),
        )

    def apply() -> None:
        original = factory.parse_file.__func__
        default = config_parser.DEFAULT_SUBSTITUTION

        def parse_file(
            cls: Any,
            filename: str,
            encoding: str = "utf-8",
            required: bool = True,
            resolve: bool = True,
            unresolved_value: Any = default,
        ) -> Any:
            try:
                content = Path(filename).read_text(encoding=encoding)
            except OSError:
                content = None
            defaults = resolve and unresolved_value is default
            if content is None or not defaults or not config_cacheable(content):
                return original(cls, filename, encoding, required, resolve, unresolved_value)
            path = config_cache_dir() / f"{_config_cache_key(content, os.path.dirname(filename))}.pickle"
            cached = _load(path)
            if cached is not None:
                return cached
            parsed = cls.parse_string(content, os.path.dirname(filename), resolve, unresolved_value)
            _store(path, parsed)
            return parsed

        setattr(parse_file, _INSTALLED, True)
        parse_file.__wrapped__ = original  # type: ignore[attr-defined]
        factory.parse_file = classmethod(parse_file)

    return _install("cache_parsed_config_files", mismatch, apply)


# --- API requests validated without re-validating the schema ---------------------------------------------

_VALIDATORS: dict[int, tuple[dict[str, Any], Any]] = {}


def validate_requests_without_schema_checks() -> bool:
    """Replace the SDK's ``DataModel.validate`` with one that validates each API request against its schema
    without first re-validating the schema.

    The SDK's version calls ``jsonschema.validate``, which checks the (fixed, shipped) schema against the
    JSON-Schema meta-schema each time before checking the request: ~9 ms of CPU per request, seconds per
    pipeline step on a 2-core machine. The replacement keeps the request validation (the SDK's private
    ``_CustomValidator`` class, ``best_match`` of its errors, the same exception) and builds each schema's
    validator once. Relies on ``DataModel.validate`` and ``jsonschema.validate`` doing exactly that (their
    fingerprints) and on ``_CustomValidator`` being present.
    """
    from clearml.backend_api.session import datamodel

    if getattr(datamodel.DataModel.validate, _INSTALLED, False):
        return True

    def mismatch() -> str | None:
        import jsonschema

        validator_class = getattr(datamodel, "_CustomValidator", None)
        if validator_class is None or not hasattr(validator_class, "iter_errors"):
            return "clearml.backend_api.session.datamodel._CustomValidator is gone"
        return _first(
            lambda: _expect_fingerprint("clearml DataModel.validate", datamodel.DataModel.validate),
            lambda: _expect_fingerprint("jsonschema.validate", jsonschema.validate),
        )

    def apply() -> None:
        from jsonschema.exceptions import best_match

        validator_class = datamodel._CustomValidator
        original = datamodel.DataModel.validate

        def validate(self: Any, schema: dict[str, Any] | None = None) -> None:
            schema = schema or self._schema
            cached = _VALIDATORS.get(id(schema))
            if cached is None or cached[0] is not schema:
                cached = _VALIDATORS[id(schema)] = (schema, validator_class(schema))
            error = best_match(cached[1].iter_errors(self.to_dict()))
            if error is not None:
                raise error

        setattr(validate, _INSTALLED, True)
        validate.__wrapped__ = original  # type: ignore[attr-defined]
        datamodel.DataModel.validate = validate

    return _install("validate_requests_without_schema_checks", mismatch, apply)


def name_loggers_without_inspecting_the_stack() -> bool:
    """Have the SDK's ``get_logger`` find its caller's file from the caller's frame, not ``inspect.stack()``.

    Without a ``path`` the SDK's version names the logger after the calling file from ``inspect.stack()``,
    which builds the source context of every frame of the stack and, for each, searches ``sys.modules`` for
    its module (a ``realpath`` per module): 60-120 ms of the first ``Task.init`` of a process that has
    imported pandas, scikit-learn and xgboost (each pipeline step, forked from the step zygote). The
    replacement gives the SDK's version the calling frame's file as ``path`` (what ``inspect.stack()[1]``
    names for a source file), which it then uses as given. Relies on that (its fingerprint) and its
    parameters; every SDK module that imported the function by name gets the replacement.
    """
    from clearml.debugging import log

    if getattr(log.get_logger, _INSTALLED, False):
        return True
    original = log.get_logger

    def mismatch() -> str | None:
        return _first(
            lambda: _expect_parameters(
                "clearml get_logger", original, ("path", "level", "stream", "colored")
            ),
            lambda: _expect_fingerprint("clearml get_logger", original),
        )

    def apply() -> None:
        @functools.wraps(original)
        def get_logger(path: str | None = None, level: int | None = None, stream: Any = None,
                       colored: bool = False) -> Any:  # fmt: skip
            path = path or os.path.abspath(sys._getframe(1).f_code.co_filename)
            return original(path, level, stream, colored)

        setattr(get_logger, _INSTALLED, True)
        for module in list(sys.modules.values()):
            if (
                getattr(module, "__name__", "").startswith("clearml")
                and vars(module).get("get_logger") is original
            ):
                module.get_logger = get_logger

    return _install("name_loggers_without_inspecting_the_stack", mismatch, apply)


# --- finalized dataset versions, fetched once per process and task -----------------------------------------

_DATASET_GET_PARAMETERS = (
    "dataset_id",
    "dataset_project",
    "dataset_name",
    "dataset_tags",
    "only_completed",
    "only_published",
    "include_archived",
    "auto_create",
    "writable_copy",
    "dataset_version",
    "alias",
    "overridable",
    "shallow_search",
    "silence_alias_warnings",
    "kwargs",
)
# Keyword arguments that leave a fetch by id the same fetch: the SDK's own internal calls pass them.
_DATASET_GET_QUIET = frozenset(
    {"silence_alias_warnings", "_dont_populate_runtime_props", "_dont_propulate_runtime_props"}
)
_FINAL_STATUSES = frozenset({"completed", "published"})
_DATASETS: dict[tuple[str, str | None], Any] = {}


def reuse_finalized_dataset_versions() -> bool:
    """Make ``Dataset.get(dataset_id=...)`` of a finalized version return the object already fetched by this
    process for the same current task, instead of fetching it again.

    Measured on the pipeline's steps (2.1.12): each fetch costs ~12 API requests (the version's task, its
    state artifact, and the "datasets used" bookkeeping on the current task), and the SDK fetches the parent
    version again inside its own calls: in every ``_serialize`` of a child version (five times while the
    preprocessing step creates, fills, uploads and finalizes one), and in ``get_local_copy`` twice. A
    finalized version cannot change, and the first fetch did the current task's bookkeeping. Only a plain
    fetch by id is reused (no name, tags, alias, writable copy); anything else goes to the SDK as before.
    Relies on ``Dataset.get``'s parameters and on a fetched version keeping its task (``_task``) with its
    status.
    """
    from clearml import Dataset

    if getattr(Dataset.get, _INSTALLED, False):
        return True

    def mismatch() -> str | None:
        return _expect_parameters("clearml Dataset.get", Dataset.get, _DATASET_GET_PARAMETERS)

    def apply() -> None:
        from clearml import Task

        original = Dataset.get.__func__  # type: ignore[attr-defined]

        def get(cls: Any, dataset_id: str | None = None, *args: Any, **kwargs: Any) -> Any:
            plain = dataset_id and not args and set(kwargs) <= _DATASET_GET_QUIET
            if not plain:
                return original(cls, dataset_id, *args, **kwargs)
            current = Task.current_task()
            key = (str(dataset_id), None if current is None else str(current.id))
            cached = _DATASETS.get(key)
            if cached is None:
                cached = original(cls, dataset_id, **kwargs)
                status = getattr(cached._task.data, "status", None)
                if str(getattr(status, "value", status)) in _FINAL_STATUSES:
                    _DATASETS[key] = cached
            return cached

        setattr(get, _INSTALLED, True)
        get.__wrapped__ = original  # type: ignore[attr-defined]
        Dataset.get = classmethod(get)  # type: ignore[method-assign,assignment]

    return _install("reuse_finalized_dataset_versions", mismatch, apply)


def unbind_matplotlib_without_importing_it() -> bool:
    """Make ``Task.close``'s unbinding of matplotlib a no-op when this process never bound it, instead of
    importing ``matplotlib.pyplot`` there in order to unbind it.

    ``Task.close`` calls ``PatchedMatplotlib.update_current_task(None)``; in a process running a given task
    (``CLEARML_TASK_ID``: pipeline steps, agents) that call patches matplotlib first, importing pyplot: 0.55–
    0.75 s of every step's close, measured, in steps started with matplotlib binding off and drawing nothing.
    When matplotlib was bound, the SDK's own function runs as before. Relies on ``update_current_task``
    being that function (its fingerprint) and on ``_patched_original_plot`` staying None until it patches.
    """
    from clearml.binding.matplotlib_bind import PatchedMatplotlib

    if getattr(PatchedMatplotlib.update_current_task, _INSTALLED, False):
        return True

    def mismatch() -> str | None:
        return _first(
            lambda: (
                None
                if "_patched_original_plot" in vars(PatchedMatplotlib)
                else "clearml's PatchedMatplotlib has no _patched_original_plot"
            ),
            lambda: _expect_fingerprint(
                "clearml PatchedMatplotlib.update_current_task", PatchedMatplotlib.update_current_task
            ),
        )

    def apply() -> None:
        original = PatchedMatplotlib.update_current_task

        def update_current_task(task: Any) -> None:
            if task is None and PatchedMatplotlib._patched_original_plot is None:
                PatchedMatplotlib._current_task = None
                return
            original(task)

        setattr(update_current_task, _INSTALLED, True)
        update_current_task.__wrapped__ = original  # type: ignore[attr-defined]
        PatchedMatplotlib.update_current_task = staticmethod(update_current_task)  # type: ignore[method-assign]

    return _install("unbind_matplotlib_without_importing_it", mismatch, apply)


def install_clearml_sdk_patches() -> None:
    """The patches every process that talks to ClearML gets: config files cached, requests validated fast,
    loggers named without inspecting the stack, finalized dataset versions fetched once, matplotlib not
    imported at close to be unbound."""
    cache_parsed_config_files()
    validate_requests_without_schema_checks()
    name_loggers_without_inspecting_the_stack()
    reuse_finalized_dataset_versions()
    unbind_matplotlib_without_importing_it()


# --- local pipeline steps started by a launcher of our choosing -------------------------------------------


class _SubprocessWithLauncher:
    """The ``subprocess`` module as ``clearml.automation.job`` sees it once patched: ``Popen`` goes to the
    launcher, every other name to the real module."""

    def __init__(self, launcher: Callable[..., Any]) -> None:
        self.launcher = launcher

    def Popen(self, args: list[str], cwd: str, env: dict[str, str]) -> Any:
        return self.launcher(args, cwd, env)

    def __getattr__(self, name: str) -> Any:
        import subprocess

        return getattr(subprocess, name)


def launch_local_steps_with(launcher: Callable[[list[str], str, dict[str, str]], Any] | None) -> bool:
    """Have the SDK start each local pipeline step (``LocalClearmlJob.launch``, used by
    ``PipelineController.start_locally(run_pipeline_steps_locally=True)``) with ``launcher(args, cwd, env)``
    instead of ``subprocess.Popen(args=..., cwd=..., env=...)``; None gives the SDK its own ``Popen`` back.

    The launcher returns what the SDK then uses of a ``Popen``: ``wait(timeout)`` raising
    ``subprocess.TimeoutExpired``, and ``pid``. Steps on agents (``ClearmlJob``) are not launched here and
    are untouched. Relies on ``launch`` calling ``subprocess.Popen`` through the job module's ``subprocess``
    with those three keywords, and ``wait_for_process`` only waiting on it (their fingerprints).
    """
    from clearml.automation import job

    def mismatch() -> str | None:
        return _first(
            lambda: _expect_fingerprint("clearml LocalClearmlJob.launch", job.LocalClearmlJob.launch),
            lambda: _expect_fingerprint(
                "clearml LocalClearmlJob.wait_for_process", job.LocalClearmlJob.wait_for_process
            ),
            lambda: (
                None
                if getattr(job.subprocess, "__name__", None) == "subprocess"
                or isinstance(job.subprocess, _SubprocessWithLauncher)
                else "clearml.automation.job.subprocess is not the subprocess module"
            ),
        )

    def apply() -> None:
        import subprocess

        job.subprocess = subprocess if launcher is None else _SubprocessWithLauncher(launcher)

    return _install("launch_local_steps_with", mismatch, apply)


def refresh_status_when_a_local_step_ends() -> bool:
    """Make ``LocalClearmlJob.status`` ask the server afresh when the step's process has just ended, instead
    of answering the status it fetched up to a second before.

    The SDK's ``status`` reaps an ended local step (marking its task completed or failed) and then answers
    ``BaseJob.status``, which re-reads a task's status at most once a second: the pipeline controller saw a
    step end up to 1 s after its process had (0.5 s on average, once per step). Steps on agents
    (``ClearmlJob``) keep the SDK's status. Relies on ``status`` reaping through ``wait_for_process`` when
    ``_job_process`` is set (its fingerprint) and on that process answering ``poll()``.
    """
    from clearml.automation import job

    local_job = job.LocalClearmlJob
    if getattr(local_job.status, _INSTALLED, False):
        return True

    def mismatch() -> str | None:
        return _first(
            lambda: _expect_parameters("clearml LocalClearmlJob.status", local_job.status, ("force",)),
            lambda: _expect_fingerprint("clearml LocalClearmlJob.status", local_job.status),
            lambda: _expect_fingerprint(
                "clearml LocalClearmlJob.wait_for_process", local_job.wait_for_process
            ),
        )

    def apply() -> None:
        original = local_job.status

        def status(self: Any, force: bool = False) -> str:
            process = getattr(self, "_job_process", None)
            ended = process is not None and process.poll() is not None
            return original(self, force=force or ended)

        setattr(status, _INSTALLED, True)
        status.__wrapped__ = original  # type: ignore[attr-defined]
        local_job.status = status

    return _install("refresh_status_when_a_local_step_ends", mismatch, apply)


# --- a function step's process ended without the interpreter's teardown ----------------------------------


def skip_teardown_after_clean_script(end_process: Callable[[], None]) -> bool:
    """At exit, call `end_process` (which must close the task and leave with ``os._exit``) if the script
    ended cleanly: no uncaught exception, no non-zero ``sys.exit``, no signal.

    The SDK records how the script ended in the name-mangled private ``Task._Task__exit_hook`` (an
    ``ExitHooks`` with ``exception``, ``exit_code`` and ``signal``); this reads it. Relies on that attribute
    and those three fields; with no hook recorded (no ``Task.init``) the process ends as usual.
    """
    from clearml import Task

    def mismatch() -> str | None:
        from clearml.utilities.process.exit_hooks import ExitHooks

        if "_Task__exit_hook" not in vars(Task):
            return "clearml.Task has no private _Task__exit_hook"
        hook = ExitHooks(None)  # its constructor only sets the fields
        missing = [name for name in ("exception", "exit_code", "signal") if not hasattr(hook, name)]
        return f"clearml's ExitHooks has no {', '.join(missing)}" if missing else None

    def finish() -> None:
        hook = getattr(Task, "_Task__exit_hook", None)
        failed = hook is None or hook.exception is not None or bool(hook.exit_code) or hook.signal is not None
        if not failed and getattr(sys, "last_value", None) is None:
            end_process()

    return _install("skip_teardown_after_clean_script", mismatch, lambda: atexit.register(finish))


# --- clearml-serving's statistics endpoint on one address -------------------------------------------------

_STATISTICS_MAIN = "clearml_serving.statistics.main"


def _calls_through_module_attribute(source: str, module: str, function: str) -> bool:
    """Whether `source` imports `module` by its name, calls `module.function(...)` and never imports
    `function` from `module` directly (a direct import would bypass a rebinding of the attribute)."""
    tree = ast.parse(source)
    imports_module = calls = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == module:
            if any(alias.name in (function, "*") for alias in node.names):
                return False
        elif isinstance(node, ast.Import):
            imports_module |= any(alias.name == module and alias.asname is None for alias in node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func
            calls |= (
                target.attr == function and isinstance(target.value, ast.Name) and target.value.id == module
            )
    return imports_module and calls


_PROCESSOR_MODULE = "clearml_serving.serving.model_request_processor"


def report_canary_draws(record: Callable[[str], None]) -> bool:
    """Call `record(url)` with the endpoint each canary route draws for a request.

    clearml-serving's ``ModelRequestProcessor.process_request`` picks a canary route's endpoint at random
    (``self._process_canary(base_url=url)``, which returns the drawn URL or None) and reports it nowhere a
    request's caller sees. This wraps ``_process_canary``: the original draws, the wrapper passes a drawn URL
    to `record` and returns it unchanged. Relies on its parameters and on ``process_request`` calling it
    through ``self`` (checked in its source).
    """
    from clearml_serving.serving.model_request_processor import ModelRequestProcessor

    if getattr(ModelRequestProcessor._process_canary, _INSTALLED, False):
        return True

    def mismatch() -> str | None:
        draw = ModelRequestProcessor._process_canary
        source = inspect.getsource(ModelRequestProcessor.process_request)
        return _first(
            lambda: _expect_parameters(f"{_PROCESSOR_MODULE} _process_canary", draw, ("base_url",)),
            lambda: (
                None
                if "self._process_canary(" in source
                else "process_request no longer calls _process_canary"
            ),
        )

    def apply() -> None:
        original = ModelRequestProcessor._process_canary

        @functools.wraps(original)
        def process_canary(self: Any, base_url: str) -> Any:
            drawn = original(self, base_url=base_url)
            if drawn:
                record(str(drawn))
            return drawn

        setattr(process_canary, _INSTALLED, True)
        ModelRequestProcessor._process_canary = process_canary

    return _install("report_canary_draws", mismatch, apply)


def bind_statistics_endpoint_to(host: str, start_server: Callable[..., Any] | None = None) -> bool:
    """Make ``prometheus_client.start_http_server`` listen on `host` unless told otherwise (through
    `start_server`, a function with its arguments, when given: e.g. one that also checks ``Host``).

    clearml-serving's statistics controller (``clearml_serving.statistics.main``) calls
    ``prometheus_client.start_http_server(port)``, which listens on every interface (0.0.0.0). This rebinds
    the module attribute to the same function with ``addr=host``. Relies on the function taking ``addr`` and
    on the controller calling it through the module attribute (checked in its source, which is read, not
    imported); on a mismatch the endpoint listens on every interface, as the stock controller does.
    """
    import prometheus_client

    if getattr(prometheus_client.start_http_server, _INSTALLED, False):
        return True

    def mismatch() -> str | None:
        if "addr" not in inspect.signature(prometheus_client.start_http_server).parameters:
            return "prometheus_client.start_http_server takes no addr (the endpoint listens on 0.0.0.0)"
        spec = importlib.util.find_spec(_STATISTICS_MAIN)
        if spec is None or spec.origin is None:
            return f"{_STATISTICS_MAIN} not found"
        source = Path(spec.origin).read_text(encoding="utf-8")
        if not _calls_through_module_attribute(source, "prometheus_client", "start_http_server"):
            return (
                f"{_STATISTICS_MAIN} no longer calls prometheus_client.start_http_server through the module "
                "(the endpoint listens on 0.0.0.0)"
            )
        return None

    def apply() -> None:
        bound = functools.partial(start_server or prometheus_client.start_http_server, addr=host)
        setattr(bound, _INSTALLED, True)
        prometheus_client.start_http_server = bound

    return _install("bind_statistics_endpoint_to", mismatch, apply)


# --- evidently 0.7 on pandas 3 ------------------------------------------------------------------------------

_EVIDENTLY_IMPORTER = "evidently.legacy.tests.data_integrity_tests"
_PANDAS_COMMON = "pandas.core.dtypes.common"
_REMOVED_BY_PANDAS_3 = "infer_dtype_from_object"


def let_evidently_import_on_pandas_3() -> bool:
    """Let ``import evidently`` succeed with pandas 3.

    evidently 0.7.23 (the newest) imports ``infer_dtype_from_object`` from ``pandas.core.dtypes.common``,
    which pandas 3 removed, in a legacy module every ``import evidently`` loads; only that module's
    ``TestColumnsType`` calls it (never the data-drift report this project makes). This gives pandas' module
    a function of that name that raises ``NotImplementedError`` when called. Relies on the import being
    exactly that one (checked in the module's source, read, not imported: importing it fails); nothing
    changes when pandas still has the function.
    """
    import pandas.core.dtypes.common as common

    if hasattr(common, _REMOVED_BY_PANDAS_3):
        return True

    def mismatch() -> str | None:
        spec = importlib.util.find_spec("evidently")  # a top-level package: found, not imported
        if spec is None or not spec.submodule_search_locations:
            return "evidently is not installed"
        path = Path(spec.submodule_search_locations[0], *_EVIDENTLY_IMPORTER.split(".")[1:]).with_suffix(
            ".py"
        )
        if not path.is_file():
            return f"{_EVIDENTLY_IMPORTER} not found"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            (node.module, alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        if (_PANDAS_COMMON, _REMOVED_BY_PANDAS_3) not in imported:
            return f"{_EVIDENTLY_IMPORTER} no longer imports {_REMOVED_BY_PANDAS_3} from {_PANDAS_COMMON}"
        return None

    def removed(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"pandas 3 removed {_PANDAS_COMMON}.{_REMOVED_BY_PANDAS_3}")

    def apply() -> None:
        setattr(removed, _INSTALLED, True)
        setattr(common, _REMOVED_BY_PANDAS_3, removed)

    return _install("let_evidently_import_on_pandas_3", mismatch, apply)


# --- clearml-serving's statistics sent in small messages, often ---------------------------------------------

STATISTICS_CHUNK_RECORDS = 50  # records per Kafka message at most (~40 KB of JSON with 20 scalar features)
STATISTICS_SEND_PERIOD_S = 0.05  # how long the sender waits before taking what the requests queued since
STATISTICS_ACK_TIMEOUT_S = 30.0  # a message the broker has not acknowledged by then is dropped with a warning


class ChunkedStatisticsSender:
    """Takes the queued statistics records every `period_s` and sends them as lists of at most
    `chunk_records`, one message each, in the order they were queued.

    `take` returns the next queued record or None when the queue is empty; `send` delivers one list (and may
    block until the broker acknowledges it: that blocks this sender only)."""

    def __init__(
        self,
        take: Callable[[], Any],
        send: Callable[[list[Any]], None],
        chunk_records: int = STATISTICS_CHUNK_RECORDS,
        period_s: float = STATISTICS_SEND_PERIOD_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if chunk_records < 1:
            raise ValueError(f"chunk_records must be at least 1, got {chunk_records}")
        self.take, self.send = take, send
        self.chunk_records, self.period_s, self.sleep = chunk_records, period_s, sleep

    def send_queued(self) -> int:
        """Send everything queued now (and whatever is queued meanwhile) in chunks; the number of records."""
        sent = 0
        while True:
            chunk: list[Any] = []
            while len(chunk) < self.chunk_records and (record := self.take()) is not None:
                chunk.append(record)
            if chunk:
                self.send(chunk)
                sent += len(chunk)
            if len(chunk) < self.chunk_records:
                return sent

    def run_forever(self) -> None:
        while True:
            self.send_queued()
            self.sleep(self.period_s)


def _kafka_producer(url: str) -> Any:
    """clearml-serving's producer: JSON lists, lz4-compressed; retried every 30 s while the broker is away."""
    from kafka import KafkaProducer

    while True:
        try:
            return KafkaProducer(
                bootstrap_servers=url,
                value_serializer=lambda value: json.dumps(value).encode("utf-8"),
                compression_type="lz4",
            )
        except Exception as exc:  # as the stock loop: any failure to connect is retried
            print(f"Error: failed opening Kafka producer [{url}]: {exc}\nRetrying in 30 seconds", flush=True)
            time.sleep(30)


def _send_records(producer: Any, topic: str, records: list[Any]) -> None:
    """One message, waiting for the broker's acknowledgement; a message too large for the broker is split
    in halves (as the stock loop does), a failure drops the records with a warning (as the stock loop)."""
    from kafka.errors import MessageSizeTooLargeError

    try:
        producer.send(topic, value=records).get(timeout=STATISTICS_ACK_TIMEOUT_S)
    except MessageSizeTooLargeError:
        if len(records) == 1:
            print("Warning: a statistics record is too large for the Kafka service, dropped", flush=True)
            return
        half = len(records) // 2
        _send_records(producer, topic, records[:half])
        _send_records(producer, topic, records[half:])
    except Exception as exc:  # the stock loop's own handling: warn, drop, go on
        print(f"Warning: Failed to send statistics packet to Kafka service: {exc}", flush=True)


def _references_attribute(function: Callable[..., Any], attribute: str) -> bool:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return any(isinstance(node, ast.Attribute) and node.attr == attribute for node in ast.walk(tree))


def send_statistics_in_small_chunks() -> bool:
    """Replace clearml-serving's ``ModelRequestProcessor._stats_send_loop`` (the inference app's thread that
    sends the request statistics to Kafka) with one that sends them every ``STATISTICS_SEND_PERIOD_S`` in
    messages of at most ``STATISTICS_CHUNK_RECORDS`` records (``ChunkedStatisticsSender``).

    The stock loop sleeps up to 10 s on its queue, then serializes everything queued meanwhile as one JSON
    list (5,000 records, ~3.7 MB at 500 requests/s), re-serializes it at each halving after the broker's
    1 MB limit refuses it, and kafka-python checksums each batch in pure Python: about a second of a thread
    holding the GIL every 10 s, during which the worker's event loop answers a few dozen requests. The
    replacement keeps the wire format the stock statistics controller reads (topic ``_kafka_topic``, a JSON
    list of the same records per message, lz4-compressed, the same producer settings) and the stock
    handling of failures. Relies on ``_stats_send_loop`` and ``FastSimpleQueue.get`` being what they were in
    clearml-serving 1.3.5 (their fingerprints), on ``launch`` starting the thread on
    ``self._stats_send_loop`` (looked up on the class when the processor launches: install before that)
    and on the ``_kafka_topic``, ``_kafka_stats_url`` and ``_stats_queue`` attributes.
    """
    from clearml_serving.serving import model_request_processor as module

    processor_class = module.ModelRequestProcessor
    if getattr(processor_class._stats_send_loop, _INSTALLED, False):
        return True

    def mismatch() -> str | None:
        topic = getattr(processor_class, "_kafka_topic", None)
        return _first(
            lambda: None if isinstance(topic, str) else "ModelRequestProcessor has no _kafka_topic",
            lambda: _expect_parameters("FastSimpleQueue.get", module.FastSimpleQueue.get, ("block",)),
            lambda: _expect_fingerprint("clearml-serving FastSimpleQueue.get", module.FastSimpleQueue.get),
            lambda: _expect_fingerprint(
                "clearml-serving ModelRequestProcessor._stats_send_loop", processor_class._stats_send_loop
            ),
            lambda: (
                None
                if _references_attribute(processor_class.launch, "_stats_send_loop")
                else "ModelRequestProcessor.launch no longer starts _stats_send_loop"
            ),
        )

    def apply() -> None:
        original = processor_class._stats_send_loop

        def _stats_send_loop(self: Any) -> None:
            if not self._kafka_stats_url:
                print("No Kafka Statistics service configured, shutting down statistics report", flush=True)
                return
            print(
                f"Starting Kafka Statistics reporting: {self._kafka_stats_url} (every "
                f"{STATISTICS_SEND_PERIOD_S} s, at most {STATISTICS_CHUNK_RECORDS} records a message)",
                flush=True,
            )
            producer = _kafka_producer(self._kafka_stats_url)
            queue, topic = self._stats_queue, self._kafka_topic
            sender = ChunkedStatisticsSender(
                lambda: queue.get(block=False), lambda records: _send_records(producer, topic, records)
            )
            sender.run_forever()

        setattr(_stats_send_loop, _INSTALLED, True)
        _stats_send_loop.__wrapped__ = original  # type: ignore[attr-defined]
        processor_class._stats_send_loop = _stats_send_loop

    return _install("send_statistics_in_small_chunks", mismatch, apply)
