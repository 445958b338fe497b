"""Flow a, reader: a fresh process reads back everything the writer reported.

Usage: python flow_a_read.py TASK_ID PROJECT TASK_NAME. Prints a JSON summary as its last line.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from clearml import Task


def read_model(task: Task) -> dict[str, Any]:
    models = task.models["output"]
    local = models[0].get_local_copy(raise_on_error=True)
    return {
        "ids": [m.id for m in models],
        "url": models[0].url,
        "sha256": hashlib.sha256(Path(local).read_bytes()).hexdigest(),
    }


def read_artifact(task: Task) -> dict[str, Any]:
    artifact = task.artifacts["frame"]
    frame = artifact.get()
    return {"url": artifact.url, "frame": frame.to_dict(orient="list")}


def main(task_id: str, project: str, task_name: str) -> None:
    task = Task.get_task(task_id=task_id)
    by_name = Task.get_task(project_name=project, task_name=task_name)
    plots = task.get_reported_plots()
    summary = {
        "status": task.get_status(),
        "by_name_id": by_name.id,
        "scalars": task.get_reported_scalars(),
        "last_metrics": task.get_last_scalar_metrics(),
        "parameters": task.get_parameters(),
        "artifact": read_artifact(task),
        "model": read_model(task),
        "console": "\n".join(task.get_reported_console_output(number_of_reports=100)),
        "plot_metrics": sorted({p.get("metric", "") for p in plots}),
    }
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
