"""Test harness for the embedded backend: start it on free ports, watch every API call, run SDK processes.

The clearml SDK only ever runs in fresh subprocesses (``BackendHarness.run``) whose environment points at
this backend; the pytest process itself talks raw HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from clearml_local.config import BackendConfig
from clearml_local.contract import ContractChecker, Violation
from clearml_local.server import EmbeddedBackend

API_PREFIX = "/v2.23/"
OUTPUT_TAIL_CHARS = 4000
DEFAULT_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Mark:
    """A position in the call log: what happened after it belongs to one test."""

    calls: int
    violations: int


@dataclass
class CallLog:
    """The backend's observer: every call is checked against the SDK's schema classes and recorded."""

    checker: ContractChecker = field(default_factory=ContractChecker)
    calls: list[tuple[str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, endpoint: str, body: dict[str, Any], data: dict[str, Any] | None, status: int) -> None:
        self.checker(endpoint, body, data, status)
        with self._lock:
            self.calls.append((endpoint, status))

    def mark(self) -> Mark:
        with self._lock:
            return Mark(len(self.calls), len(self.checker.violations))

    def calls_since(self, mark: Mark) -> list[tuple[str, int]]:
        with self._lock:
            return list(self.calls[mark.calls :])

    def violations_since(self, mark: Mark, direction: str | None = None) -> list[Violation]:
        found = self.checker.violations[mark.violations :]
        return [v for v in found if direction is None or v.direction == direction]

    def not_found_since(self, mark: Mark) -> list[str]:
        """Endpoints a client called that the backend does not implement."""
        return sorted({endpoint for endpoint, status in self.calls_since(mark) if status == 404})

    def assert_clean(self, mark: Mark, direction: str | None = None) -> None:
        violations = self.violations_since(mark, direction)
        assert not violations, "contract violations:\n" + "\n".join(map(str, violations[:30]))
        missing = self.not_found_since(mark)
        assert not missing, f"endpoints unknown to the backend (404): {missing}"


@dataclass(frozen=True)
class ProcessResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"command {self.args} exited with {self.returncode}\n"
            f"--- stdout (tail) ---\n{self.stdout[-OUTPUT_TAIL_CHARS:]}\n"
            f"--- stderr (tail) ---\n{self.stderr[-OUTPUT_TAIL_CHARS:]}"
        )

    def last_json(self) -> Any:
        """The machine-readable result a flow script prints as its last stdout line."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert lines, self.describe()
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError as exc:
            raise AssertionError(f"last stdout line is not JSON ({exc})\n{self.describe()}") from exc


def child_environment(client_env: dict[str, str], workdir: Path) -> dict[str, str]:
    """This process's environment without any inherited ClearML settings, plus the backend's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(client_env)
    env.update(
        {
            "CLEARML_CACHE_DIR": str(workdir / "clearml-cache"),
            "MPLBACKEND": "Agg",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


class BackendHarness:
    """One embedded backend on free ports in ``root``, with helpers for raw HTTP and SDK subprocesses."""

    def __init__(self, root: Path, max_upload_bytes: int = 64 * 1024 * 1024) -> None:
        self.root = root
        self.workdir = root / "work"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = CallLog()
        config = BackendConfig(root / "data", api_port=0, files_port=0, max_upload_bytes=max_upload_bytes)
        self.backend = EmbeddedBackend(config, observer=self.log)
        self.http = requests.Session()
        self._token: str | None = None

    def start(self) -> BackendHarness:
        self.backend.start()
        return self

    def stop(self) -> None:
        self.http.close()
        self.backend.stop()

    @property
    def api_url(self) -> str:
        return self.backend.api_url

    @property
    def files_url(self) -> str:
        return self.backend.files_url

    @property
    def checker(self) -> ContractChecker:
        return self.log.checker

    @property
    def files_root(self) -> Path:
        return self.backend.config.files_root

    @property
    def env(self) -> dict[str, str]:
        return child_environment(self.backend.client_env(), self.workdir)

    # --- raw HTTP -------------------------------------------------------------------------------------------

    def login(self) -> str:
        """A fresh token from auth.login with the backend's credentials."""
        creds = self.backend.credentials
        reply = self.http.post(
            f"{self.api_url}{API_PREFIX}auth.login", auth=(creds.access_key, creds.secret_key), timeout=10
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["data"]["token"])

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.login()
        return self._token

    def post(
        self, endpoint: str, body: Any = None, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """POST one API call (JSON body, Bearer token of the harness unless ``token`` is given)."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        headers.update(kwargs.pop("headers", {}))
        if body is not None and "data" not in kwargs:
            kwargs["json"] = body
        return self.http.post(f"{self.api_url}{API_PREFIX}{endpoint}", headers=headers, timeout=30, **kwargs)

    def call(self, endpoint: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of a call that must succeed."""
        reply = self.post(endpoint, body or {})
        assert reply.status_code == 200, f"{endpoint} -> {reply.status_code}: {reply.text[:500]}"
        data: dict[str, Any] = reply.json()["data"]
        return data

    # --- subprocesses -------------------------------------------------------------------------------------

    def run(
        self,
        script: Path,
        *args: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> ProcessResult:
        """Run ``python script args...`` in a fresh process pointed at this backend."""
        argv = [sys.executable, str(script), *args]
        return self.run_command(argv, timeout=timeout, check=check, extra_env=extra_env)

    def run_command(
        self,
        argv: list[str],
        timeout: float = DEFAULT_TIMEOUT_S,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> ProcessResult:
        completed = subprocess.run(
            argv,
            cwd=self.workdir,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        result = ProcessResult(argv, completed.returncode, completed.stdout, completed.stderr)
        if check:
            assert result.returncode == 0, result.describe()
        return result

    def spawn(
        self, argv: list[str], log_path: Path, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Start a long-running process (e.g. an agent) in its own session; see ``terminate_group``."""
        with log_path.open("ab") as log:
            return subprocess.Popen(
                argv,
                cwd=self.workdir,
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )


def wait_for(
    condition: Callable[[], bool], what: str | Callable[[], str], deadline_s: float, interval_s: float = 0.05
) -> None:
    """Poll ``condition`` until it holds; after ``deadline_s`` fail naming ``what`` (or what it returns)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(interval_s)  # polling interval, bounded by the deadline


def terminate_group(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop a process started by ``spawn`` and everything it started."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


# --- clearml-agent ------------------------------------------------------------------------------------

AGENT_ENV = {
    "CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL": "1",
    "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL": sys.executable,
}
# Agents on this machine run tasks that carry their whole script (there may be no git remote to clone).
STANDALONE_CODE = {"ASTEROID_STEP_CODE": "standalone"}


def start_agent(
    backend: BackendHarness, queue: str, log: Path, extra_env: dict[str, str] | None = None
) -> Any:
    """A clearml-agent daemon serving ``queue`` with this Python environment; stop it with terminate_group."""
    argv = [
        sys.executable,
        "-m",
        "clearml_agent",
        "daemon",
        "--queue",
        queue,
        "--foreground",
        "--create-queue",
    ]
    process = backend.spawn(argv, log, extra_env={**AGENT_ENV, **(extra_env or {})})
    try:
        wait_until_serving(backend, queue, process, log)
    except BaseException:
        terminate_group(process)
        raise
    return process


def wait_until_serving(
    backend: BackendHarness, queue: str, process: Any, log: Path, deadline_s: float = 120
) -> None:
    """Until a registered worker listens on ``queue`` (the agent creates the queue at start-up)."""

    def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the agent exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        workers = backend.call("workers.get_all")["workers"]
        return any(q["name"] == queue for worker in workers for q in worker.get("queues", []))

    wait_for(serving, f"an agent serving queue {queue!r}", deadline_s, interval_s=0.2)
