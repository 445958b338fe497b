"""Flow d, model source: a task that registers an xgboost-framework model on the file server.

Usage: python flow_d_model.py PROJECT MODEL_NAME. Prints a JSON summary as its last line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from pathlib import Path

from clearml import OutputModel, Task


def main(project: str, model_name: str) -> None:
    task = Task.init(project_name=project, task_name="serving model source", output_uri=True)
    weights = Path(tempfile.mkdtemp()) / "model.json"
    weights.write_text(json.dumps({"learner": uuid.uuid4().hex}))
    model = OutputModel(task=task, framework="xgboost", name=model_name)
    url = model.update_weights(weights_filename=str(weights), auto_delete_file=False, async_enable=False)
    summary = {"task_id": task.id, "model_id": model.id, "model_url": url}
    task.close()
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
