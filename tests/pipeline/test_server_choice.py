"""pipeline.py picks its ClearML server and fails fast, with one clear line, when it cannot have one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import global_config
from tests.net import free_port

ROOT = global_config.ROOT


def run_pipeline(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "pipeline.py")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_configured_server_that_is_down_fails_fast(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    env = {"CLEARML_API_HOST": down, "CLEARML_API_ACCESS_KEY": "k", "CLEARML_API_SECRET_KEY": "s"}
    result = run_pipeline({**env, "ASTEROID_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert f"ClearML API server {down} is not reachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "asteroids.db").exists()  # no work started


def test_embedded_backend_on_a_taken_port_says_so(tmp_path: Path, taken_port: int) -> None:
    env = {
        "CLEARML_LOCAL_DATA_DIR": str(tmp_path / "backend"),
        "CLEARML_LOCAL_API_PORT": str(taken_port),
        "CLEARML_LOCAL_FILES_PORT": "0",
        "ASTEROID_DATA_DIR": str(tmp_path / "data"),
        "HOME": str(tmp_path),  # no ~/clearml.conf: the embedded backend is the one to use
    }
    result = run_pipeline(env)
    assert result.returncode == 1
    assert "Address already in use" in result.stderr and "CLEARML_LOCAL_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr
