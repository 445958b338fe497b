"""Debug samples: a task that reports an image at two iterations and an HTML file as media.

Usage: python flow_debug_samples.py PROJECT. Prints a JSON summary as its last line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from clearml import Task


def main(project: str) -> None:
    task = Task.init(project_name=project, task_name="debug samples", reuse_last_task_id=False)
    logger = task.get_logger()
    for iteration in range(2):
        ramp = np.linspace(0, 255, 96, dtype=np.uint8)
        image = np.stack(
            [
                np.tile(ramp, (64, 1)),
                np.full((64, 96), 80 * iteration, np.uint8),
                ramp[:64, None] * np.ones((64, 96), np.uint8),
            ],
            axis=-1,
        )
        logger.report_image("samples", "gradient", iteration=iteration, image=image)
    page = Path(tempfile.mkdtemp()) / "report.html"
    page.write_text("<html><body><h1>media sample</h1></body></html>")
    logger.report_media("media", "report", iteration=0, local_path=str(page))
    task.flush(wait_for_uploads=True)
    summary = {"task_id": task.id}
    task.close()
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1])
