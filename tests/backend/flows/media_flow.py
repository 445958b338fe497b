"""Media flow: a task reports debug images, an HTML file as media, scalars and plots; a fresh handle of it
reads them back with the SDK's readers.

Usage: python media_flow.py PROJECT TASK_NAME. Prints a JSON summary as its last line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from clearml import StorageManager, Task

IMAGE_ITERATIONS = {"digit": 5, "noise": 3}
HTML = "<html><body><h1>drift report</h1><p>no drift detected</p></body></html>"
LOSSES = [0.9, 0.5, 0.3]


def report(task: Task) -> None:
    logger = task.get_logger()
    for series, count in IMAGE_ITERATIONS.items():
        for iteration in range(count):
            pixels = np.full((8, 8, 3), 30 * iteration, dtype=np.uint8)
            logger.report_image("samples", series, iteration=iteration, image=pixels)
    page = Path(tempfile.mkdtemp()) / "report.html"
    page.write_text(HTML)
    logger.report_media("reports", "drift", iteration=0, local_path=str(page))
    for iteration, loss in enumerate(LOSSES):
        logger.report_scalar("loss", "train", value=loss, iteration=iteration)
        logger.report_scatter2d("curve", "points", iteration=iteration, scatter=[[0, loss], [1, loss / 2]])


def read_back(task_id: str) -> dict[str, object]:
    task = Task.get_task(task_id=task_id)
    samples = {
        series: [(event["iter"], event["url"]) for event in task.get_debug_samples("samples", series)]
        for series in IMAGE_ITERATIONS
    }
    media = task.get_debug_samples("reports", "drift")
    html = Path(StorageManager.get_local_copy(media[0]["url"])).read_text() if media else None
    plots = task.get_reported_plots(max_iterations=len(LOSSES))
    return {
        "samples": samples,
        "media_urls": [event["url"] for event in media],
        "html": html,
        "plots": sorted((plot["metric"], plot["variant"], plot["iter"]) for plot in plots),
        "scalars": task.get_reported_scalars()["loss"]["train"],
    }


def main(project: str, task_name: str) -> None:
    task = Task.init(project_name=project, task_name=task_name, reuse_last_task_id=False)
    report(task)
    task.flush(wait_for_uploads=True)
    task.close()
    summary = {"task_id": task.id, "sent_html": HTML, "losses": LOSSES, **read_back(task.id)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:3])
