"""serving_local's public API: the running stack's typed state, its rules directory and alerts file, the one
Prometheus reload, the one data-directory rule; and the application rebuilds none of the stack's paths."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import global_config
import serving_local.api as api
from tests.backend.backend_harness import wait_for
from tests.net import free_port

# What only serving_local may know: its file names and where it keeps them (its settings, SERVING_LOCAL_PORT
# etc., are the application's to set).
STACK_INTERNALS = (
    "state.json",
    "alerts.jsonl",
    "SERVING_LOCAL_DATA_DIR",
    "SERVING_LOCAL_RULES_DIR",
)
APPLICATION = [
    *global_config.ROOT.glob("*.py"),
    *(global_config.ROOT / "asteroid").rglob("*.py"),
]


def state_record(data_dir: Path, **values: object) -> dict:
    return {
        "pid": os.getpid(),  # alive: this test process
        "pgid": os.getpgid(0),
        "service_id": "s" * 32,
        "serve_url": "http://127.0.0.1:18080/serve",
        "request_metrics_url": "http://127.0.0.1:18080/metrics",
        "statistics_url": "http://127.0.0.1:19999/metrics",
        "broker": "127.0.0.1:19092",
        "pids": {"broker": 11, "inference": 12},
        "logs": {"broker": str(data_dir / "broker.log")},
        **values,
    }


def write_state(data_dir: Path, **values: object) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "state.json").write_text(json.dumps(state_record(data_dir, **values)))


@pytest.fixture(autouse=True)
def no_stack_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SERVING_LOCAL_"):
            monkeypatch.delenv(name)


def test_the_running_stack_is_read_as_typed_state(tmp_path: Path) -> None:
    assert api.running_stack(tmp_path) is None
    write_state(tmp_path)
    state = api.running_stack(tmp_path)
    assert state is not None and not state.monitoring
    assert (state.serve_url, state.pids, state.logs) == (
        "http://127.0.0.1:18080/serve", {"broker": 11, "inference": 12}, {"broker": tmp_path / "broker.log"},
    )  # fmt: skip
    write_state(tmp_path, pid=2**22 + 1)  # beyond pid_max: no such process
    assert api.running_stack(tmp_path) is None


def test_the_rules_dir_and_alerts_file_are_the_running_stacks(tmp_path: Path) -> None:
    assert api.rules_dir(tmp_path) == tmp_path / "rules"
    assert api.alerts_file(tmp_path) == tmp_path / "alerts.jsonl"
    write_state(tmp_path, prometheus_url="http://127.0.0.1:1", rules_dir=str(tmp_path / "elsewhere"),
                alerts_file=str(tmp_path / "notes.jsonl"))  # fmt: skip
    assert api.rules_dir(tmp_path) == tmp_path / "elsewhere"
    assert api.alerts_file(tmp_path) == tmp_path / "notes.jsonl"
    (tmp_path / "notes.jsonl").write_text('{"status": "firing", "received_at": 1}\n\n')
    assert api.read_alerts(tmp_path) == [{"status": "firing", "received_at": 1}]


def test_the_environment_decides_without_a_running_stack_and_names_the_rules_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVING_LOCAL_PORT", "18123")
    assert api.serve_url(tmp_path) == "http://127.0.0.1:18123/serve"
    write_state(tmp_path, rules_dir=str(tmp_path / "stack-rules"))
    monkeypatch.setenv("SERVING_LOCAL_RULES_DIR", str(tmp_path / "deploy-rules"))
    assert api.rules_dir(tmp_path) == tmp_path / "deploy-rules"  # named explicitly: wins over the stack's


def test_one_data_directory_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert api.StackConfig.from_env().data_dir == tmp_path / ".serving_local"
    assert api.rules_dir() == tmp_path / ".serving_local" / "rules"
    monkeypatch.setenv("SERVING_LOCAL_DATA_DIR", str(tmp_path / "d"))
    assert api.alerts_file() == tmp_path / "d" / "alerts.jsonl"


# A stand-in for Prometheus' reload: serves its two reload metrics, re-reads on SIGHUP (refuses while the
# file `refuse` exists, logging the reason as Prometheus does), and has no lifecycle API.
STAND_IN = """
import os, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
folder = sys.argv[1]
state = {"ok": 1, "at": 1.0}
def reload(*_):
    if os.path.exists(os.path.join(folder, "refuse")):
        state["ok"] = 0
        print('level=error msg="Error reloading config" err="bad.yml: parse error"', flush=True)
    else:
        state.update(ok=1, at=time.time())
signal.signal(signal.SIGHUP, reload)
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (f"prometheus_config_last_reload_successful {state['ok']}\\n"
                f"prometheus_config_last_reload_success_timestamp_seconds {state['at']}\\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
open(os.path.join(folder, "port"), "w").write(str(server.server_port))
server.serve_forever()
"""


@dataclass
class StandIn:
    url: str
    pid: int
    folder: Path
    log: Path


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[StandIn]:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", STAND_IN, str(folder)], stdout=out, stderr=out)
    try:
        wait_for(
            lambda: (folder / "port").exists() and (folder / "port").read_text(), "the stand-in", 20, 0.05
        )
        yield StandIn(f"http://127.0.0.1:{(folder / 'port').read_text()}", process.pid, folder, log)
    finally:
        process.kill()
        process.wait()


def test_prometheus_is_reloaded_by_signal_through_one_function(tmp_path: Path, prometheus: StandIn) -> None:
    assert api.reload_prometheus(tmp_path) is None  # no stack
    write_state(tmp_path)
    assert api.reload_prometheus(tmp_path) is None  # a stack without monitoring
    logs = {"prometheus": str(prometheus.log)}
    write_state(tmp_path, prometheus_url=prometheus.url, pids={"prometheus": prometheus.pid}, logs=logs)
    assert api.reload_prometheus(tmp_path) == prometheus.url
    (prometheus.folder / "refuse").touch()
    with pytest.raises(api.StackError, match=r"Prometheus refused to reload: .*bad\.yml: parse error"):
        api.reload_prometheus(tmp_path)
    write_state(
        tmp_path, prometheus_url=f"http://127.0.0.1:{free_port()}", pids={"prometheus": prometheus.pid}
    )
    with pytest.raises(api.StackError, match="does not answer"):
        api.reload_prometheus(tmp_path)


def test_a_server_check_failure_is_not_a_stack_error() -> None:
    assert not issubclass(api.ServerCheckError, api.StackError)


def test_the_application_rebuilds_none_of_the_stacks_paths_or_names() -> None:
    found = []
    for path in APPLICATION:
        tree = ast.parse(path.read_text())
        prose = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}  # docstrings
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
                found += [(path.name, hint) for hint in STACK_INTERNALS if hint in node.value]
    assert len(APPLICATION) > 20 and found == []


def test_the_application_imports_only_serving_locals_public_api() -> None:
    imported = set()
    for path in APPLICATION:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
    # and the hook, inside the inference app's image (which has only the wrapper's modules), the request's
    # headers (serving_local/content_negotiation.py) and the wrapper's counter of what a hook's background
    # work dropped (serving_local/request_metrics.py)
    allowed = {"serving_local.api", "serving_local.content_negotiation", "serving_local.request_metrics"}
    assert {name for name in imported if name.startswith("serving_local")} == allowed
