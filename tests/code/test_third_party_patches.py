"""Each third-party patch works against the pinned packages, and switches itself off with one line on stderr
when what it relies on has changed (simulated here: a changed signature, fingerprint or private name)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import prometheus_client
import pytest
import requests
from clearml.backend_api.services import tasks
from clearml.backend_api.session import datamodel
from clearml.utilities.pyhocon.config_parser import ConfigFactory

import global_config
import third_party_patches
from tests.backend.backend_harness import wait_for
from tests.net import free_port

with warnings.catch_warnings():
    # the first use of the SDK's API classes reads its configuration, with a bundled pyhocon that calls
    # pyparsing's deprecated names
    warnings.simplefilter("ignore", DeprecationWarning)
    EDIT_SCHEMA = tasks.EditRequest._schema


def switched_off_line(capsys: pytest.CaptureFixture[str], patch: str) -> str:
    """The one line a patch writes when it switches itself off (fails unless there is exactly one)."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"third_party_patches: {patch} switched off: "), lines[0]
    return lines[0]


def original(function: Any) -> Any:
    return getattr(function, "__wrapped__", function)


# --- cache_parsed_config_files ---------------------------------------------------------------------------


@pytest.fixture
def sdk_parse_file() -> Iterator[None]:
    """The SDK's own ``ConfigFactory.parse_file`` for one test, whatever was installed before."""
    before = vars(ConfigFactory)["parse_file"]
    ConfigFactory.parse_file = classmethod(original(before.__func__))
    try:
        yield
    finally:
        ConfigFactory.parse_file = before


@pytest.fixture
def config_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sdk_parse_file: None) -> Path:
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(tmp_path / "cache"))
    assert third_party_patches.cache_parsed_config_files()
    return third_party_patches.config_cache_dir()


PLAIN = """
# Options include comments that mention the word include
api { host: "http://example:8008", retries: 3 }
sdk.storage.cache.size.min_free_bytes: 10GB
"""


def parse(path: Path) -> Any:
    return ConfigFactory.parse_file(str(path))


def test_a_second_parse_comes_from_the_cache_and_equals_the_first(tmp_path: Path, config_cache: Path) -> None:
    conf = tmp_path / "plain.conf"
    conf.write_text(PLAIN)
    first = parse(conf)
    assert len(list(config_cache.glob("*.pickle"))) == 1
    second = parse(conf)
    assert second == first
    assert second.get("api.retries") == 3 and second.get("api.host") == "http://example:8008"
    conf.write_text(PLAIN.replace("retries: 3", "retries: 4"))
    assert parse(conf).get("api.retries") == 4


def test_substitutions_and_includes_are_never_cached(tmp_path: Path, config_cache: Path) -> None:
    conf = tmp_path / "subst.conf"
    conf.write_text('a: 1\nb: ${a}\ninclude "missing.conf"\n')
    assert not third_party_patches.config_cacheable(conf.read_text())
    assert third_party_patches.config_cacheable(PLAIN)
    assert parse(conf).get("b") == 1
    assert not config_cache.exists() or not list(config_cache.glob("*.pickle"))


def test_installing_the_config_cache_twice_changes_nothing(config_cache: Path) -> None:
    wrapped = vars(ConfigFactory)["parse_file"]
    assert third_party_patches.cache_parsed_config_files()
    assert vars(ConfigFactory)["parse_file"] is wrapped


@pytest.mark.usefixtures("sdk_parse_file")
def test_the_config_cache_switches_off_when_parse_file_changed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sdk_version = vars(ConfigFactory)["parse_file"]
    monkeypatch.setitem(third_party_patches.FINGERPRINTS, "clearml ConfigFactory.parse_file", "0" * 16)
    assert not third_party_patches.cache_parsed_config_files()
    line = switched_off_line(capsys, "cache_parsed_config_files")
    assert "clearml ConfigFactory.parse_file changed" in line
    assert vars(ConfigFactory)["parse_file"] is sdk_version


@pytest.mark.usefixtures("sdk_parse_file")
def test_the_config_cache_switches_off_when_parse_file_takes_other_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def parse_file(cls: Any, filename: str, encoding: str = "utf-8", required: bool = True) -> Any:
        raise AssertionError("not called")

    ConfigFactory.parse_file = classmethod(parse_file)
    assert not third_party_patches.cache_parsed_config_files()
    assert "ConfigFactory.parse_file takes ('filename', 'encoding', 'required')" in switched_off_line(
        capsys, "cache_parsed_config_files"
    )
    assert vars(ConfigFactory)["parse_file"].__func__ is parse_file


# --- validate_requests_without_schema_checks --------------------------------------------------------------


class EditRequestBody(datamodel.DataModel):
    """A body checked against the SDK's own ``tasks.edit`` request schema."""

    _schema = EDIT_SCHEMA

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def to_dict(self, only: Any = None, except_: Any = None) -> dict[str, Any]:
        return self.body


VALID = {"task": "0123", "force": True, "name": "renamed"}
INVALID = {"task": 5, "force": True}  # the schema wants a string id


@pytest.fixture
def sdk_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own ``DataModel.validate`` for one test, whatever was installed before; restored after."""
    monkeypatch.setattr(datamodel.DataModel, "validate", original(datamodel.DataModel.validate))


def check_bodies() -> None:
    for _ in range(2):  # the second time from a cached validator when patched
        EditRequestBody(VALID).validate()
        with pytest.raises(jsonschema.ValidationError, match="5 is not of type 'string'"):
            EditRequestBody(INVALID).validate()
    with pytest.raises(jsonschema.ValidationError, match="'task' is a required property"):
        EditRequestBody({"force": True}).validate()


@pytest.mark.usefixtures("sdk_validate")
def test_the_sdk_rejects_a_body_against_its_schema() -> None:
    check_bodies()


@pytest.mark.usefixtures("sdk_validate")
def test_patched_validation_passes_valid_bodies_and_fails_invalid_ones_with_the_same_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert third_party_patches.validate_requests_without_schema_checks()
    patched = datamodel.DataModel.validate
    assert patched is not original(patched)
    schema_checks = []
    monkeypatch.setattr(datamodel._CustomValidator, "check_schema", classmethod(schema_checks.append))
    check_bodies()
    assert schema_checks == []  # the point of the patch: the shipped schema is not re-validated
    assert third_party_patches.validate_requests_without_schema_checks()
    assert datamodel.DataModel.validate is patched


@pytest.mark.usefixtures("sdk_validate")
def test_fast_validation_switches_off_without_the_private_validator_class(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sdk_version = datamodel.DataModel.validate
    monkeypatch.delattr(datamodel, "_CustomValidator")
    assert not third_party_patches.validate_requests_without_schema_checks()
    assert "_CustomValidator is gone" in switched_off_line(capsys, "validate_requests_without_schema_checks")
    assert datamodel.DataModel.validate is sdk_version


@pytest.mark.usefixtures("sdk_validate")
def test_fast_validation_switches_off_when_jsonschema_validate_changed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
        cls.check_schema(schema)
        cls(schema, format_checker=jsonschema.FormatChecker()).validate(instance)

    monkeypatch.setattr(jsonschema, "validate", validate)
    assert not third_party_patches.validate_requests_without_schema_checks()
    line = switched_off_line(capsys, "validate_requests_without_schema_checks")
    assert "jsonschema.validate changed" in line


# --- name_loggers_without_inspecting_the_stack -----------------------------------------------------------


@pytest.fixture
def sdk_get_logger(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The SDK's own ``get_logger`` in every clearml module for one test, whatever was installed before;
    restored after. Returns it."""
    from clearml.debugging import log

    sdk_version = original(log.get_logger)
    for module in list(sys.modules.values()):
        held = (
            vars(module).get("get_logger") if getattr(module, "__name__", "").startswith("clearml") else None
        )
        if held is not None and original(held) is sdk_version:
            monkeypatch.setattr(module, "get_logger", sdk_version)
    return sdk_version


def named_here(get_logger: Any) -> Any:
    return get_logger()  # the logger is named after this file, the caller's


def test_patched_loggers_are_named_after_the_calling_file_as_the_sdk_names_them(sdk_get_logger: Any) -> None:
    import pickle

    from clearml.backend_interface import base
    from clearml.debugging import log

    expected = named_here(sdk_get_logger)
    assert expected.name.endswith(Path(__file__).stem)
    assert third_party_patches.name_loggers_without_inspecting_the_stack()
    assert log.get_logger is not sdk_get_logger and base.get_logger is log.get_logger  # imported by name too
    patched = named_here(log.get_logger)
    assert patched.name == expected.name
    assert pickle.loads(pickle.dumps(patched)).name == expected.name
    assert log.get_logger("given/path/other.py").name.endswith(".other")  # a given path is used as given
    assert third_party_patches.name_loggers_without_inspecting_the_stack()  # idempotent


def test_patched_logger_naming_does_not_inspect_the_stack(
    sdk_get_logger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clearml.debugging import log

    assert third_party_patches.name_loggers_without_inspecting_the_stack()
    monkeypatch.setattr(inspect, "stack", lambda *args: pytest.fail("inspect.stack() was called"))
    assert named_here(log.get_logger).name.endswith(Path(__file__).stem)


def test_logger_naming_switches_off_when_the_sdk_function_changed(
    sdk_get_logger: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clearml.debugging import log

    monkeypatch.setitem(third_party_patches.FINGERPRINTS, "clearml get_logger", "0" * 16)
    assert not third_party_patches.name_loggers_without_inspecting_the_stack()
    assert "clearml get_logger changed" in switched_off_line(
        capsys, "name_loggers_without_inspecting_the_stack"
    )
    assert log.get_logger is sdk_get_logger


# --- skip_teardown_after_clean_script ---------------------------------------------------------------------

AT_EXIT_SCRIPT = """
import atexit, sys
import clearml
from clearml.utilities.process.exit_hooks import ExitHooks
from asteroid import tracking

class FakeTask:
    id = "task-1"
    def close(self):
        print("closed", end=" ")

clearml.Task.current_task = staticmethod(lambda: FakeTask())
hook = ExitHooks(None)  # what Task.init installs: it records sys.exit codes and uncaught exceptions
hook.hook()
hook.register_signal_and_exception_hooks()
clearml.Task._Task__exit_hook = hook
atexit.register(lambda: print("teardown", end=""))  # registered first, so it runs after the patch's
{before}
tracking.end_process_at_exit()
{ending}
"""


def run_at_exit_script(
    ending: str, task_id: str = "task-1", before: str = ""
) -> subprocess.CompletedProcess[str]:
    code = AT_EXIT_SCRIPT.replace("{ending}", ending).replace("{before}", before)
    env = {**os.environ, "CLEARML_TASK_ID": task_id}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_a_clean_script_ends_without_the_teardown() -> None:
    finished = run_at_exit_script("pass")
    assert (finished.returncode, finished.stdout, finished.stderr) == (0, "closed ", "")


def test_failed_scripts_and_other_tasks_keep_the_teardown_and_exit_code() -> None:
    exited = run_at_exit_script("sys.exit(3)")
    assert (exited.returncode, exited.stdout) == (3, "teardown")
    raised = run_at_exit_script("raise RuntimeError('boom')")
    assert (raised.returncode, raised.stdout) == (1, "teardown")
    other = run_at_exit_script("pass", task_id="another-task")
    assert (other.returncode, other.stdout) == (0, "teardown")


def test_the_teardown_shortcut_switches_off_without_the_private_exit_hook() -> None:
    finished = run_at_exit_script("pass", before="del clearml.Task._Task__exit_hook")
    assert (finished.returncode, finished.stdout) == (0, "teardown")
    assert finished.stderr == (
        "third_party_patches: skip_teardown_after_clean_script switched off: "
        "clearml.Task has no private _Task__exit_hook\n"
    )


# --- bind_statistics_endpoint_to --------------------------------------------------------------------------


@pytest.fixture
def stock_start_http_server(monkeypatch: pytest.MonkeyPatch) -> Any:
    function = prometheus_client.start_http_server
    stock = getattr(function, "func", function)
    monkeypatch.setattr(prometheus_client, "start_http_server", stock)
    return stock


def listeners(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port`, from the kernel's tables (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


CONTROLLER_SCRIPT = """
import time
from types import SimpleNamespace
import clearml_serving.statistics.main as stock

# No ClearML server or Kafka here: the stock main's own call of prometheus_client.start_http_server runs.
service = SimpleNamespace(get_project_name=lambda: "serving", name="service")
stock.ModelRequestProcessor = SimpleNamespace(_get_control_plane_task=lambda task_id: service)
stock.Task = SimpleNamespace(init=lambda **kwargs: SimpleNamespace(set_system_tags=lambda tags: None))

class Controller:
    def __init__(self, **kwargs):
        pass
    def start(self):
        print("serving", flush=True)
        time.sleep(600)

stock.StatisticsController = Controller
from serving_local import statistics_controller
statistics_controller.main()
"""


def test_the_statistics_controller_listens_on_the_configured_host_only(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SERVING_LOCAL_HOST": "127.0.0.1", "CLEARML_SERVING_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER_SCRIPT],
        env=env,
        cwd=global_config.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: bool(listeners(port)) or process.poll() is not None, "the endpoint", deadline_s=60)
        assert process.poll() is None, process.communicate()
        assert listeners(port) == {"0100007F"}  # 127.0.0.1 only: not 0.0.0.0, not ::
        reply = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert reply.status_code == 200 and "python_info" in reply.text
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=30)
    assert "switched off" not in stderr


def test_the_bind_address_switches_off_when_clearml_serving_imports_the_function_directly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stock_start_http_server: Any,
) -> None:
    (tmp_path / "changed_statistics_main.py").write_text(
        textwrap.dedent(
            """
            from prometheus_client import start_http_server

            def main():
                start_http_server(9999)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(third_party_patches, "_STATISTICS_MAIN", "changed_statistics_main")
    assert not third_party_patches.bind_statistics_endpoint_to("127.0.0.1")
    assert "no longer calls prometheus_client.start_http_server" in switched_off_line(
        capsys, "bind_statistics_endpoint_to"
    )
    assert prometheus_client.start_http_server is stock_start_http_server


def test_the_bind_address_switches_off_when_start_http_server_takes_no_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stock_start_http_server: Any
) -> None:
    def start_http_server(port: int) -> None:
        raise AssertionError("not called")

    monkeypatch.setattr(prometheus_client, "start_http_server", start_http_server)
    assert not third_party_patches.bind_statistics_endpoint_to("127.0.0.1")
    assert "takes no addr" in switched_off_line(capsys, "bind_statistics_endpoint_to")
    assert prometheus_client.start_http_server is start_http_server


# --- finalized dataset versions fetched once ----------------------------------------------------------------


class FetchedVersion:
    """What the patch reads of a fetched version: its task's status."""

    def __init__(self, status: str) -> None:
        self._task = SimpleNamespace(data=SimpleNamespace(status=status))


@pytest.fixture
def sdk_dataset_get(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The SDK's Dataset.get replaced by one that records its calls and answers a version of the status
    named by the id (``completed-1``); the patch installed over it, and both undone after the test."""
    from clearml import Dataset

    calls: list[tuple[Any, ...]] = []

    def get(cls: Any, dataset_id: str | None = None, *args: Any, **kwargs: Any) -> FetchedVersion:
        calls.append((dataset_id, args, kwargs))
        return FetchedVersion(str(dataset_id).split("-")[0])

    get.__signature__ = inspect.signature(vars(Dataset)["get"].__func__)  # type: ignore[attr-defined]
    monkeypatch.setattr(Dataset, "get", classmethod(get))
    monkeypatch.setattr(third_party_patches, "_DATASETS", {})
    assert third_party_patches.reuse_finalized_dataset_versions()
    return calls


def test_a_finalized_version_is_fetched_once_per_process(sdk_dataset_get: list[tuple[Any, ...]]) -> None:
    from clearml import Dataset

    first = Dataset.get(dataset_id="completed-1")
    assert Dataset.get("completed-1") is first  # the SDK's own internal calls pass the id by position
    assert Dataset.get(dataset_id="completed-1", silence_alias_warnings=True) is first
    assert len(sdk_dataset_get) == 1


def test_versions_still_open_and_other_queries_are_fetched_every_time(
    sdk_dataset_get: list[tuple[Any, ...]],
) -> None:
    from clearml import Dataset

    Dataset.get(dataset_id="in_progress-1")
    Dataset.get(dataset_id="in_progress-1")
    Dataset.get(dataset_id="completed-2", alias="raw")
    Dataset.get(dataset_id="completed-2", writable_copy=True)
    Dataset.get(dataset_project="asteroids", dataset_name="raw")
    assert len(sdk_dataset_get) == 5


def test_dataset_reuse_switches_off_when_get_takes_other_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clearml import Dataset

    def get(cls: Any, dataset_id: str | None = None, dataset_project: str | None = None) -> Any:
        raise AssertionError("not called")

    monkeypatch.setattr(Dataset, "get", classmethod(get))
    assert not third_party_patches.reuse_finalized_dataset_versions()
    assert "clearml Dataset.get takes ('dataset_id', 'dataset_project')" in switched_off_line(
        capsys, "reuse_finalized_dataset_versions"
    )
    assert vars(Dataset)["get"].__func__ is get


# --- launch_local_steps_with, refresh_status_when_a_local_step_ends ----------------------------------------


@pytest.fixture
def job_module() -> Iterator[Any]:
    """clearml.automation.job, its ``subprocess`` and ``LocalClearmlJob.status`` restored after the test."""
    from clearml.automation import job

    before = job.subprocess, vars(job.LocalClearmlJob)["status"]
    try:
        yield job
    finally:
        job.subprocess, job.LocalClearmlJob.status = before


def local_job(job_module: Any, **fields: Any) -> Any:
    """A LocalClearmlJob as the SDK leaves it once launched, without a server: what launch, status and
    wait_for_process read."""
    local = job_module.LocalClearmlJob.__new__(job_module.LocalClearmlJob)
    script = SimpleNamespace(diff="", entry_point="step.py", working_dir="")
    local.task = SimpleNamespace(id="task-1", data=SimpleNamespace(script=script), mark_started=lambda: None)
    defaults = {"_is_cached_task": False, "_enable_local_imports": False, "_job_process": None}
    local.__dict__.update({**defaults, "_local_temp_file": None, **fields})
    return local


def test_local_steps_are_started_by_the_launcher_until_popen_is_given_back(job_module: Any) -> None:
    started: list[tuple[list[str], str, dict[str, str]]] = []

    def launcher(args: list[str], cwd: str, env: dict[str, str]) -> Any:
        started.append((args, cwd, env))
        return SimpleNamespace(
            wait=lambda timeout=None: (_ for _ in ()).throw(subprocess.TimeoutExpired("", 0))
        )

    assert third_party_patches.launch_local_steps_with(launcher)
    step = local_job(job_module)
    assert step.launch()  # the SDK's own launch, unchanged but for the process it starts
    [(args, cwd, env)] = started
    assert args == [sys.executable, "step.py"] and cwd == os.path.join(os.getcwd(), "")
    assert env["CLEARML_TASK_ID"] == "task-1"
    assert step.wait_for_process(timeout=0) is None  # still running: TimeoutExpired is the real one
    assert third_party_patches.launch_local_steps_with(None)
    assert job_module.subprocess is subprocess


def test_local_launch_switches_off_when_the_sdk_launch_changed(
    job_module: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(third_party_patches.FINGERPRINTS, "clearml LocalClearmlJob.launch", "0" * 16)
    assert not third_party_patches.launch_local_steps_with(lambda *args: None)
    assert "clearml LocalClearmlJob.launch changed" in switched_off_line(capsys, "launch_local_steps_with")
    assert job_module.subprocess is subprocess


class EndedProcess:
    def poll(self) -> int:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0


class ServerTask(SimpleNamespace):
    """A step's task whose status on the server turned completed when its process ended."""

    status = "completed"

    def mark_completed(self) -> None:
        pass


def test_a_local_step_whose_process_ended_is_seen_completed_at_once(job_module: Any) -> None:
    def job_read_in_progress_just_now() -> Any:
        step = local_job(job_module, _job_process=EndedProcess(), _last_status="in_progress")
        step._last_status_ts = time.time()
        step.task = ServerTask()
        return step

    sdk_status = original(vars(job_module.LocalClearmlJob)["status"])
    assert sdk_status(job_read_in_progress_just_now()) == "in_progress"  # the SDK's second-long cache
    assert third_party_patches.refresh_status_when_a_local_step_ends()
    assert job_read_in_progress_just_now().status() == "completed"


def test_status_refresh_switches_off_when_the_sdk_status_changed(
    job_module: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job_module.LocalClearmlJob.status = original(vars(job_module.LocalClearmlJob)["status"])
    monkeypatch.setitem(third_party_patches.FINGERPRINTS, "clearml LocalClearmlJob.status", "0" * 16)
    assert not third_party_patches.refresh_status_when_a_local_step_ends()
    assert "clearml LocalClearmlJob.status changed" in switched_off_line(
        capsys, "refresh_status_when_a_local_step_ends"
    )


# --- unbind_matplotlib_without_importing_it ---------------------------------------------------------------

UNBIND_SCRIPT = """
import os, sys
os.environ["CLEARML_TASK_ID"] = "a-step"  # as in a pipeline step: the SDK then binds matplotlib at once
import third_party_patches
from clearml.binding.matplotlib_bind import PatchedMatplotlib
if sys.argv[1] == "patched":
    assert third_party_patches.unbind_matplotlib_without_importing_it()
PatchedMatplotlib.update_current_task(None)  # what Task.close does
print("matplotlib.pyplot" in sys.modules)
"""


@pytest.mark.parametrize(("variant", "imported"), [("sdk", "True"), ("patched", "False")])
def test_closing_a_step_unbinds_matplotlib_without_importing_it(variant: str, imported: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", UNBIND_SCRIPT, variant],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=global_config.ROOT,
    )
    assert (done.returncode, done.stdout.strip()) == (0, imported), done.stderr


def test_matplotlib_unbinding_switches_off_when_the_sdk_changed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clearml.binding.matplotlib_bind import PatchedMatplotlib

    before = vars(PatchedMatplotlib)["update_current_task"]
    monkeypatch.setattr(PatchedMatplotlib, "update_current_task", staticmethod(original(before.__func__)))
    label = "clearml PatchedMatplotlib.update_current_task"
    monkeypatch.setitem(third_party_patches.FINGERPRINTS, label, "0" * 16)
    assert not third_party_patches.unbind_matplotlib_without_importing_it()
    assert f"{label} changed" in switched_off_line(capsys, "unbind_matplotlib_without_importing_it")


# --- nothing on import ------------------------------------------------------------------------------------

IMPORT_SCRIPT = """
import prometheus_client
from clearml.backend_api.session import datamodel
from clearml.utilities.pyhocon.config_parser import ConfigFactory
from clearml import Dataset
def patched():
    http = prometheus_client.start_http_server
    return vars(ConfigFactory)["parse_file"], datamodel.DataModel.validate, http, vars(Dataset)["get"]
before = patched()
import third_party_patches, asteroid.tracking, asteroid.database, serving_local.statistics_controller
from clearml_serving.serving.model_request_processor import ModelRequestProcessor
print(all(a is b for a, b in zip(before, patched())) and not hasattr(ModelRequestProcessor._stats_send_loop,
      "third_party_patches_installed"))
"""


def test_importing_the_patches_or_their_users_changes_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


PINNED_SCRIPT = """
import third_party_patches as patches
installed = [
    patches.cache_parsed_config_files(),
    patches.validate_requests_without_schema_checks(),
    patches.skip_teardown_after_clean_script(lambda: None),
    patches.bind_statistics_endpoint_to("127.0.0.1"),
    patches.report_canary_draws(lambda url: None),
    patches.send_statistics_in_small_chunks(),
    patches.reuse_finalized_dataset_versions(),
    patches.launch_local_steps_with(None),
    patches.refresh_status_when_a_local_step_ends(),
    patches.unbind_matplotlib_without_importing_it(),
]
print(installed)
"""


def test_every_patch_installs_against_the_pinned_packages_without_a_word() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PINNED_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (
        0,
        "[True, True, True, True, True, True, True, True, True, True]",
        "",
    )
