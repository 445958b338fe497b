"""The retrain launch: the pipeline (`pipeline.py`, or the configured command) started as a process of its
own in the project root, in a new session, its output in `<automation dir>/launches/<token>.log`.

The log is created exclusively before the process starts and names the launch: a launch whose log exists was
started (a process that died between the two leaves a log without a run — a window of one system call).
The pipeline then runs against whichever ClearML server is configured; `--queue` in the command sends its
steps to agents."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from asteroid.automation.config import QUERY_DATE_PLACEHOLDER

TOKEN_ENV = "ASTEROID_RETRAIN_LAUNCH"  # the launched process learns its launch's name from it


class CommandLauncher:
    def __init__(self, command: Sequence[str], launches_dir: Path, cwd: Path) -> None:
        self.command, self.launches_dir, self.cwd = tuple(command), launches_dir, cwd
        self._children: list[subprocess.Popen] = []

    def log_path(self, token: str) -> Path:
        return self.launches_dir / f"{token}.log"

    def launch(self, token: str, query_date: str) -> str:
        self.launches_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_path(token)
        command = [part.replace(QUERY_DATE_PLACEHOLDER, query_date) for part in self.command]
        with path.open("xb") as log:  # exclusive: a second launch of the token fails here
            process = subprocess.Popen(
                command,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, TOKEN_ENV: token},
            )
        self._children = [child for child in self._children if child.poll() is None]  # reap ended runs
        self._children.append(process)
        return f"pid {process.pid}, log {path}"

    def started(self, token: str) -> str | None:
        path = self.log_path(token)
        return f"log {path}" if path.exists() else None
