"""The local serving stack (`python -m serving_local`): fails fast with one line, runs any clearml-serving
service (not only this project's), statistics through the broker, stops exactly what it started."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

import global_config
from process_supervisor import pid_alive, port_is_free
from serving_local.config import StackConfig
from tests.backend.backend_harness import BackendHarness, wait_for
from tests.backend.conftest import backend  # noqa: F401
from tests.net import free_port

FLOWS = Path(__file__).parent / "flows"
PACKAGE = global_config.ROOT / "serving_local"


def port_arguments(port: int, metrics_port: int, broker_port: int) -> list[str]:
    return ["--port", str(port), "--metrics-port", str(metrics_port), "--broker-port", str(broker_port)]


def stack_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "serving_local", *args]


def run_stack(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The command; a ``start`` without ``--monitoring`` runs without it (its default ports are fixed)."""
    if args and args[0] == "start" and "--monitoring" not in args:
        args = (*args, "--monitoring", "off")
    return subprocess.run(
        stack_command(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_command_line_and_serve_py_share_one_monitoring_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVING_LOCAL_MONITORING", raising=False)
    from serving_local import cli

    assert cli.parse_args(["start"])[1].monitoring == StackConfig.from_env().monitoring == "auto"
    assert "monitoring=" not in (global_config.ROOT / "serve.py").read_text()  # serve.py takes that default


def test_serving_local_imports_nothing_of_the_application() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"asteroid", "global_config", "clearml_local"}, (path, name)


def test_the_modules_the_containers_run_need_only_serving_local() -> None:
    """deploy/serving copies serving_local and third_party_patches.py alone into its images: what runs there
    imports nothing else of the checkout (the process supervisor is for the local stack only)."""
    allowed = set(sys.stdlib_module_names) | {"serving_local", "prometheus_client", "clearml_serving"}
    allowed |= {"third_party_patches"}  # copied beside serving_local (deploy/serving/Dockerfile)
    for module in ("alert_webhook", "inference_app", "request_metrics", "__init__"):
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert {name.split(".")[0] for name in imported} <= allowed, module


def test_configuration_is_checked() -> None:
    config = StackConfig(data_dir=Path("x"), service_id="s")
    config.validate()
    for change, message in (
        ({"service_id": ""}, "no serving service id"),
        ({"port": 70000}, "port must be a TCP port"),
        ({"metrics_port": 8080}, "must differ"),
        ({"workers": 0}, "workers must be between 1 and 32"),
        ({"poll_seconds": 0}, "poll seconds must be positive"),
    ):
        with pytest.raises(ValueError, match=message):
            config.with_overrides(**change).validate()


def test_a_taken_port_fails_in_one_line(tmp_path: Path, taken_port: int) -> None:
    result = run_stack(
        {}, "start", "--service-id", "x" * 32, "--data-dir", str(tmp_path), "--port", str(taken_port)
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: port 127.0.0.1:{taken_port} (--port) is taken; choose another with --port"
    )


def test_a_dead_clearml_server_fails_in_one_line(tmp_path: Path) -> None:
    env = {
        "CLEARML_API_HOST": f"http://127.0.0.1:{free_port()}",
        "CLEARML_API_ACCESS_KEY": "key",
        "CLEARML_API_SECRET_KEY": "secret",
        "PATH": "/usr/bin:/bin",
    }
    ports = port_arguments(free_port(), free_port(), free_port())
    result = run_stack(
        env, "start", "--service-id", "x" * 32, "--data-dir", str(tmp_path), *ports, timeout=60
    )
    assert result.returncode == 1
    assert re.fullmatch(
        r"error: ClearML API server http://127\.0\.0\.1:\d+ is not reachable .*", result.stderr.strip()
    )


def test_status_and_stop_of_a_stack_that_does_not_run(tmp_path: Path) -> None:
    # README: make serve-status  (the Makefile's target is python -m serving_local status)
    # README: make serve-stop  (python -m serving_local stop)
    status = run_stack({}, "status", "--data-dir", str(tmp_path))
    assert status.returncode == 1 and "not running" in status.stdout
    stop = run_stack({}, "stop", "--data-dir", str(tmp_path))
    assert stop.returncode == 0 and "not running" in stop.stdout


def test_an_unknown_service_fails_in_one_line(backend: BackendHarness, tmp_path: Path) -> None:  # noqa: F811
    ports = [
        "--port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--broker-port",
        str(free_port()),
    ]
    result = run_stack(backend.env, "start", "--service-id", "0" * 32, "--data-dir", str(tmp_path), *ports)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: no task '{'0' * 32}' on the ClearML server")


def test_any_clearml_serving_service_runs_on_the_stack(backend: BackendHarness, tmp_path: Path) -> None:  # noqa: F811
    backend.run(FLOWS / "sklearn_model.py", timeout=300)
    serving = [sys.executable, "-m", "clearml_serving"]
    created = backend.run_command([*serving, "create", "--name", "serving example"], timeout=120)
    service_id = re.search(r"id=([0-9a-f]{32})", created.stdout).group(1)
    for command in (
        ["model", "add", "--engine", "sklearn", "--endpoint", "test_model_sklearn",
         "--preprocess", str(FLOWS / "sklearn_preprocess.py"),
         "--name", "train sklearn model - sklearn-model", "--project", "serving examples"],
        ["metrics", "add", "--endpoint", "test_model_sklearn", "--variable-scalar", "x0=0,2,4,6,8"],
    ):  # fmt: skip
        backend.run_command([*serving, "--id", service_id, *command], timeout=120)

    data_dir = tmp_path / "stack"
    port, metrics_port, broker_port = free_port(), free_port(), free_port()
    ports = port_arguments(port, metrics_port, broker_port)
    started = run_stack(
        backend.env,
        "start",
        "--service-id",
        service_id,
        "--data-dir",
        str(data_dir),
        *ports,
        "--poll-seconds",
        "1",
    )
    state = json.loads((data_dir / "state.json").read_text()) if (data_dir / "state.json").exists() else {}
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert run_stack(backend.env, "status", "--data-dir", str(data_dir)).returncode == 0
        url = f"http://127.0.0.1:{port}/serve/test_model_sklearn"
        for _ in range(3):
            reply = requests.post(url, json={"x0": 1, "x1": 2}, timeout=30)
            assert reply.status_code == 200 and reply.json() == {"y": [0]}, reply.text

        def x0_observations() -> float:
            text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            found = re.search(r'^test_model_sklearn:x0_sum\{le="0\.0"\} (\S+)$', text, re.MULTILINE)
            return float(found.group(1)) if found else 0.0

        # the inference app hands statistics to the broker at least every 10 s
        wait_for(lambda: x0_observations() >= 3, "the x0 histogram on the statistics controller", 60, 0.5)
    finally:
        stopped = run_stack(backend.env, "stop", "--data-dir", str(data_dir))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert state and not any(pid_alive(pid) for pid in [state["pid"], *state["pids"].values()])
    assert all(port_is_free("127.0.0.1", p) for p in (port, metrics_port, broker_port))


def test_the_alerts_command_survives_forged_and_broken_records(tmp_path: Path) -> None:
    records = [
        {
            "received_at": "garbage",
            "status": "firing",
            "alerts": [{"labels": {"alertname": "A"}, "status": "firing"}],
        },
        {"received_at": float("inf"), "status": "resolved", "alerts": "not a list"},
        {"received_at": 1e300, "alerts": [1, {"labels": "x"}]},
        {
            "received_at": 0,
            "status": "firing",
            "alerts": [{"labels": {"alertname": "B", "f": "x"}, "status": "firing"}],
        },
    ]
    lines = [json.dumps(record) for record in records] + ["not json", "[1, 2]"]
    (tmp_path / "alerts.jsonl").write_text("\n".join(lines) + "\n")
    shown = run_stack({}, "alerts", "--data-dir", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "??:??:?? firing: A{} firing"
    assert shown.stdout.splitlines()[1] == "??:??:?? resolved: ?"
    assert shown.stdout.splitlines()[2] == "??:??:?? ?: ?{} ?, ?{} ?"
    assert shown.stdout.splitlines()[3].endswith(" firing: B{f=x} firing")
    assert len(shown.stdout.splitlines()) == 4


def test_a_start_that_loses_a_port_race_says_which_port_is_taken(tmp_path: Path, taken_port: int) -> None:
    from serving_local.stack import lost_port_race

    free = StackConfig(data_dir=tmp_path, service_id="s", port=free_port(), metrics_port=free_port(),
                       broker_port=free_port(), monitoring="off")  # fmt: skip
    assert lost_port_race(free) is None
    line = lost_port_race(free.with_overrides(metrics_port=taken_port))
    assert (
        line
        == f"error: port 127.0.0.1:{taken_port} (--metrics-port) is taken; choose another with --metrics-port"
    )


def test_status_names_the_part_left_down_and_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from serving_local import cli

    state = {
        "pid": os.getpid(), "service_id": "s" * 32, "serve_url": "http://127.0.0.1:1/serve",
        "request_metrics_url": "u", "statistics_url": "u", "broker": "b", "pids": {"statistics": 1},
        "parts": {"statistics": {"state": "down", "restarts": 5, "reason": "exited 6 times within 600 s"},
                  "broker": {"state": "restarting", "restarts": 1, "reason": ""}},
        "degraded": {"statistics": "exited 6 times within 600 s, last with code 1: ... (log: x)"},
    }  # fmt: skip
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert cli.status(StackConfig(data_dir=tmp_path)) == 1
    out = capsys.readouterr().out
    assert "  restarting: broker (restarted 1 times)" in out
    assert "  degraded: statistics is down: exited 6 times within 600 s, last with code 1" in out
