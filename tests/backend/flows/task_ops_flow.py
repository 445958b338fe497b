"""Task calls the automation rests on: get_tasks over more than one page, clone with a parent, dequeue,
mark_stopped without a worker, OutputModel.update_weights with an iteration, delete with models."""

import json
import os
import sys
from pathlib import Path

from clearml import OutputModel, Task

paging_project, idle_queue = sys.argv[1], sys.argv[2]
# get_tasks asks for one page of 500 (and warns); query_tasks pages until a short page
first_page = Task.get_tasks(project_name=paging_project)
found = Task.query_tasks(project_name=paging_project)
parent = Task.create(project_name="ops", task_name="parent")
source = Task.create(project_name="ops", task_name="source")
clone = Task.clone(source_task=source, name="clone", parent=parent.id)
Task.enqueue(clone, queue_name=idle_queue)
Task.dequeue(clone)
running = Task.create(project_name="ops", task_name="running")
running.mark_started()
running.mark_stopped()
owner = Task.create(project_name="ops", task_name="model owner")
Path("weights.bin").write_bytes(b"weights")
model = OutputModel(task=owner, name="ops model")
# uploaded: a local file is only registered, and the SDK drops the iteration for those
model.update_weights(
    weights_filename="weights.bin",
    auto_delete_file=False,
    iteration=1000,
    upload_uri=os.environ["CLEARML_FILES_HOST"],
)
doomed = Task.create(project_name="ops", task_name="deleted with its model")
doomed_model = OutputModel(task=doomed, name="doomed model")
doomed_model.update_weights(
    weights_filename="weights.bin",
    auto_delete_file=False,
    iteration=1,
    upload_uri=os.environ["CLEARML_FILES_HOST"],
)
doomed_model.wait_for_uploads()
model.wait_for_uploads()
deleted = doomed.delete(delete_artifacts_and_models=True, raise_on_error=True)
print(
    json.dumps(
        {
            "first_page": len(first_page),
            "found": len(found),
            "clone": clone.id,
            "parent": parent.id,
            "running": running.id,
            "model": model.id,
            "doomed": doomed.id,
            "doomed_model": doomed_model.id,
            "deleted": bool(deleted),
        }
    )
)
