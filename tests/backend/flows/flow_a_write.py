"""Flow a, writer: one training-like task that reports everything and uploads an artifact and a model.

Usage: python flow_a_write.py PROJECT TASK_NAME. Prints a JSON summary as its last line.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import uuid
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from clearml import OutputModel, Task

LOSSES = [0.9, 0.4, 0.7, 0.2, 0.5]
PARAMS = {"lr": 0.1, "depth": 3, "objective": "binary:logistic"}


def report(task: Task) -> None:
    logger = task.get_logger()
    for iteration, value in enumerate(LOSSES):
        logger.report_scalar("loss", "train", value=value, iteration=iteration)
    table = pd.DataFrame({"feature": ["a", "b"], "importance": [0.75, 0.25]})
    logger.report_table("importance", "top", iteration=0, table_plot=table)
    figure, axes = plt.subplots()
    axes.plot(range(len(LOSSES)), LOSSES)
    logger.report_matplotlib_figure("curve", "loss", figure=figure, iteration=0, report_image=False)
    plt.close(figure)


def upload_model(task: Task) -> tuple[str, str, str]:
    weights = Path(tempfile.mkdtemp()) / "model.bin"
    weights.write_bytes(uuid.uuid4().bytes * 256)
    model = OutputModel(task=task, framework="xgboost", name="flow a model")
    url = model.update_weights(weights_filename=str(weights), auto_delete_file=False, async_enable=False)
    return model.id, url, hashlib.sha256(weights.read_bytes()).hexdigest()


def main(project: str, task_name: str) -> None:
    task = Task.init(project_name=project, task_name=task_name, output_uri=True, reuse_last_task_id=False)
    connected = task.connect(dict(PARAMS))
    marker = f"flow-a console marker {uuid.uuid4().hex}"
    print(marker)
    report(task)
    frame = pd.DataFrame({"x": [1, 2, 3], "label": ["p", "q", "r"]})
    task.upload_artifact("frame", artifact_object=frame, wait_on_upload=True)
    model_id, model_url, model_sha = upload_model(task)
    task.flush(wait_for_uploads=True)
    summary = {
        "task_id": task.id,
        "connected": dict(connected),
        "marker": marker,
        "frame": frame.to_dict(orient="list"),
        "model_id": model_id,
        "model_url": model_url,
        "model_sha256": model_sha,
        "losses": LOSSES,
    }
    task.close()
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
