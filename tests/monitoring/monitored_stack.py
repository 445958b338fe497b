"""The environment of a monitored local stack for the end-to-end drills (drift, live quality): the project
isolated under a folder, the short monitoring profile, every port free, and the way to stop it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.net import free_port
from tests.project_env import isolated_project


def monitored_stack_env(root: Path) -> dict[str, str]:
    """Sample data of 2,000 rows, the short profile, the stack in `root/stack` with Prometheus,
    Alertmanager and the webhook receiver, every port free, scrapes and alert groups every few seconds."""
    env = {
        **isolated_project(root),
        "ASTEROID_SAMPLE_ROWS": "2000",
        "ASTEROID_MONITORING_PROFILE": "short",
        "SERVING_LOCAL_DATA_DIR": str(stack_dir(root)),
        "SERVING_LOCAL_MONITORING": "on",
        "SERVING_LOCAL_SCRAPE_SECONDS": "2",
        "SERVING_LOCAL_ALERT_GROUP_WAIT": "1s",
        "SERVING_LOCAL_ALERT_GROUP_INTERVAL": "2s",
        "SERVING_LOCAL_POLL_SECONDS": "2",
        "SERVING_LOCAL_WORKERS": "2",  # each worker's CPU and memory are their own series
        **{
            f"SERVING_LOCAL_{name}_PORT": str(free_port())
            for name in ("METRICS", "BROKER", "PROMETHEUS", "ALERTMANAGER", "WEBHOOK", "NODE_EXPORTER")
        },
    }
    env["SERVING_LOCAL_PORT"] = str(free_port())
    return env


def stack_dir(root: Path) -> Path:
    return root / "stack"


def stop_stack(root: Path, env: dict[str, str]) -> None:
    """`python -m serving_local stop` on the stack of `root` (whatever state it is in)."""
    stop = [sys.executable, "-m", "serving_local", "stop", "--data-dir", str(stack_dir(root))]
    subprocess.run(stop, env=env, capture_output=True, timeout=120, check=False)
