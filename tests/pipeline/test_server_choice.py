"""One switch between the embedded backend and a real ClearML server, for every tool of the project.

The tools (`pipeline.py`, `serve.py`, `demo.py`, `python -m serving_local`) run as subprocesses, as a person
runs them, with HOME pointed at a temporary directory (no real ~/clearml.conf leaks in) and the embedded
backend's data directory and ports isolated, so "no embedded backend was started" can be checked. A
module's embedded backend on free ports (``BackendHarness``) plays the real server: the tools only see its
URL and keys.

- configured (CLEARML_API_HOST + keys, CLEARML_CONFIG_FILE, or ~/clearml.conf): the tool uses that server,
  says so in one line, and starts no embedded backend;
- nothing configured: pipeline.py starts the embedded backend and says so; the serving stack, which knows
  nothing of it, names the SDK's default server instead;
- a server that is down, credentials it does not know, or none: every tool fails in seconds, with one line
  on stderr naming the server and what to fix, and no traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import global_config
from process_supervisor import port_is_free
from tests.backend.backend_harness import BackendHarness
from tests.backend.conftest import backend  # noqa: F401
from tests.net import free_port
from tests.project_env import isolated_project

ROOT = global_config.ROOT
FAIL_WITHIN_S = 30.0  # "in seconds": the interpreter and the SDK import, then a few bounded requests
MISSING_CSV = "/nonexistent/asteroids.csv"  # pipeline.py fails on it right after choosing its server
pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Sandbox:
    """A HOME, a project and an embedded-backend configuration of a test's own."""

    root: Path
    embedded_port: int

    @property
    def embedded_dir(self) -> Path:
        return self.root / "embedded"

    def env(self, clearml: dict[str, str]) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
        return {
            **inherited,
            **isolated_project(self.root / "project"),
            "HOME": str(self.root),
            "CLEARML_CACHE_DIR": str(self.root / "clearml-cache"),
            "CLEARML_LOCAL_DATA_DIR": str(self.embedded_dir),
            "CLEARML_LOCAL_API_PORT": str(self.embedded_port),
            "CLEARML_LOCAL_FILES_PORT": str(free_port()),
            **clearml,
        }

    def no_embedded_backend(self) -> bool:
        return not (self.embedded_dir / "backend.json").exists() and port_is_free(
            "127.0.0.1", self.embedded_port
        )


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def one_line_failure(self) -> str:
        """The single stderr line of a clean failure (no traceback), within FAIL_WITHIN_S."""
        lines = self.stderr.strip().splitlines()
        assert self.returncode == 1, self
        assert len(lines) == 1 and lines[0].startswith("error: "), self
        assert self.seconds < FAIL_WITHIN_S, self
        return lines[0]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path, free_port())


def tool_command(tool: str, sandbox: Sandbox) -> list[str]:
    """The command line of one tool, chosen so that it stops cheaply soon after its server checks."""
    if tool == "serving_local":
        ports = [f"--{name}={free_port()}" for name in ("port", "metrics-port", "broker-port")]
        data_dir = f"--data-dir={sandbox.root / 'serving'}"
        return [sys.executable, "-m", "serving_local", "start", "--service-id", "0" * 32, data_dir, *ports,
                "--monitoring=off"]  # fmt: skip
    arguments = {"pipeline.py": ["--source-csv", MISSING_CSV], "serve.py": ["--deploy-only"], "demo.py": []}
    return [sys.executable, str(ROOT / tool), *arguments[tool]]


def run_tool(tool: str, sandbox: Sandbox, clearml: dict[str, str], timeout: float = 120) -> Run:
    began = time.monotonic()
    completed = subprocess.run(
        tool_command(tool, sandbox),
        cwd=sandbox.root,
        env=sandbox.env(clearml),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr, time.monotonic() - began)


def server_env(harness: BackendHarness, access_key: str | None, secret_key: str | None) -> dict[str, str]:
    env = {"CLEARML_API_HOST": harness.api_url, "CLEARML_FILES_HOST": harness.files_url}
    keys = {"CLEARML_API_ACCESS_KEY": access_key, "CLEARML_API_SECRET_KEY": secret_key}
    return env | {name: value for name, value in keys.items() if value is not None}


def configure(how: str, harness: BackendHarness, sandbox: Sandbox) -> tuple[dict[str, str], str]:
    """The environment that names ``harness`` one of the three ways, and the source the line names."""
    if how == "environment":
        creds = harness.backend.credentials
        return server_env(harness, creds.access_key, creds.secret_key), "CLEARML_API_HOST"
    if how == "CLEARML_CONFIG_FILE":
        path = sandbox.root / "elsewhere.conf"
        shutil.copy(harness.backend.clearml_conf, path)
        return {"CLEARML_CONFIG_FILE": str(path)}, f"CLEARML_CONFIG_FILE={path}"
    shutil.copy(harness.backend.clearml_conf, sandbox.root / "clearml.conf")
    return {}, "~/clearml.conf"


TOOLS = ["pipeline.py", "serve.py", "demo.py", "serving_local"]


# --- a configured server is used, named, and no embedded backend starts -----------------------------------


@pytest.mark.parametrize("how", ["environment", "CLEARML_CONFIG_FILE", "~/clearml.conf"])
def test_pipeline_uses_the_configured_server(
    backend: BackendHarness,  # noqa: F811
    sandbox: Sandbox,
    how: str,
) -> None:
    # README: export CLEARML_CONFIG_FILE=.clearml_local/clearml.conf  (a copy of a backend's conf)
    clearml, source = configure(how, backend, sandbox)
    run = run_tool("pipeline.py", sandbox, clearml)
    assert f"Using the ClearML server at {backend.api_url} (from {source})\n" in run.stdout
    assert (
        run.one_line_failure()
        == f"error: source CSV from the explicit argument does not exist: {MISSING_CSV}"
    )
    assert sandbox.no_embedded_backend()


def test_serve_deploys_on_the_configured_server(backend: BackendHarness, sandbox: Sandbox) -> None:  # noqa: F811
    clearml, _ = configure("environment", backend, sandbox)
    run = run_tool("serve.py", sandbox, clearml)
    assert f"Using the ClearML server at {backend.api_url} (from CLEARML_API_HOST)\n" in run.stdout
    # the service was created on the configured server; nothing was trained there, so nothing to roll out
    created = [line for line in run.stdout.splitlines() if line.startswith("created clearml-serving service")]
    assert created, run
    service_id = created[0].split()[3]
    assert backend.call("tasks.get_by_id", {"task": service_id})["task"]["type"] == "service"
    assert "Asteroid Hazard" in run.one_line_failure()
    assert sandbox.no_embedded_backend()


def test_serving_stack_uses_the_configured_server(backend: BackendHarness, sandbox: Sandbox) -> None:  # noqa: F811
    clearml, source = configure("~/clearml.conf", backend, sandbox)
    run = run_tool("serving_local", sandbox, clearml)
    assert f"Using the ClearML server at {backend.api_url} (from {source})\n" in run.stdout
    assert run.one_line_failure().startswith(f"error: no task '{'0' * 32}' on the ClearML server")
    assert sandbox.no_embedded_backend()


# --- nothing configured -------------------------------------------------------------------------------------


def test_without_configuration_the_pipeline_starts_the_embedded_backend(sandbox: Sandbox) -> None:
    try:
        run = run_tool("pipeline.py", sandbox, {})
        api_url = f"http://127.0.0.1:{sandbox.embedded_port}"
        conf = sandbox.embedded_dir / "clearml.conf"
        assert f"Using the embedded ClearML backend at {api_url} (CLEARML_CONFIG_FILE={conf})\n" in run.stdout
        assert run.one_line_failure().startswith("error: source CSV")
        assert (sandbox.embedded_dir / "backend.json").exists()
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "clearml_local", "stop"],
            env=sandbox.env({}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop
    assert sandbox.no_embedded_backend()


def test_without_configuration_the_serving_stack_names_the_sdk_default(sandbox: Sandbox) -> None:
    run = run_tool("serving_local", sandbox, {})
    assert "Using the ClearML server at https://api.clear.ml (from the SDK's default;" in run.stdout
    assert "https://api.clear.ml" in run.one_line_failure()  # unreachable here, or no credentials for it
    assert sandbox.no_embedded_backend()


# --- failures: one line, in seconds, for every tool ---------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_a_server_that_is_down_fails_fast(sandbox: Sandbox, tool: str) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    clearml = {"CLEARML_API_HOST": down, "CLEARML_API_ACCESS_KEY": "k", "CLEARML_API_SECRET_KEY": "s"}
    line = run_tool(tool, sandbox, clearml).one_line_failure()
    assert line.startswith(f"error: ClearML API server {down} is not reachable (ConnectionRefusedError)")
    assert sandbox.no_embedded_backend()
    assert not (sandbox.root / "project" / "data" / "asteroids.db").exists()  # no work started


@pytest.mark.parametrize("tool", TOOLS)
def test_keys_the_server_does_not_know_fail_fast(
    backend: BackendHarness,  # noqa: F811
    sandbox: Sandbox,
    tool: str,
) -> None:
    run = run_tool(tool, sandbox, server_env(backend, "WRONGKEY", "wrong-secret"))
    assert f"Using the ClearML server at {backend.api_url} (from CLEARML_API_HOST)\n" in run.stdout
    line = run.one_line_failure()
    assert line.startswith(
        f"error: the ClearML server at {backend.api_url} rejected the access key 'WRONGKEY'"
    )
    assert "fix CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY" in line
    assert sandbox.no_embedded_backend()


def test_a_clearml_conf_with_unknown_keys_fails_fast(backend: BackendHarness, sandbox: Sandbox) -> None:  # noqa: F811
    """The issue's case: pipeline.py with a clearml.conf whose keys the server does not know."""
    conf = Path(backend.backend.clearml_conf).read_text()
    creds = backend.backend.credentials
    (sandbox.root / "clearml.conf").write_text(conf.replace(creds.access_key, "UNKNOWNKEY"))
    line = run_tool("pipeline.py", sandbox, {}).one_line_failure()
    assert "rejected the access key 'UNKNOWNKEY'" in line and "fix api.credentials in ~/clearml.conf" in line
    assert sandbox.no_embedded_backend()


@pytest.mark.parametrize("tool", TOOLS)
def test_missing_keys_fail_fast(backend: BackendHarness, sandbox: Sandbox, tool: str) -> None:  # noqa: F811
    line = run_tool(tool, sandbox, server_env(backend, None, None)).one_line_failure()
    assert line.startswith(f"error: no credentials for the ClearML server at {backend.api_url}: set ")
    assert "CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY, or api.credentials in ~/clearml.conf" in line
    assert sandbox.no_embedded_backend()


def test_a_config_file_that_does_not_exist_fails_fast(sandbox: Sandbox) -> None:
    missing = sandbox.root / "nowhere.conf"
    line = run_tool("pipeline.py", sandbox, {"CLEARML_CONFIG_FILE": str(missing)}).one_line_failure()
    assert (
        line == f"error: CLEARML_CONFIG_FILE={missing} is not a file: point it at a clearml.conf or unset it"
    )
    assert sandbox.no_embedded_backend()


def test_embedded_backend_on_a_taken_port_says_so(sandbox: Sandbox, taken_port: int) -> None:
    run = run_tool("pipeline.py", sandbox, {"CLEARML_LOCAL_API_PORT": str(taken_port)})
    line = run.one_line_failure()
    assert "Address already in use" in line and "CLEARML_LOCAL_API_PORT" in line
