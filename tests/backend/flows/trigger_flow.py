"""TriggerScheduler: a dataset trigger launching a task with ``${dataset.id}`` on a new version, a model
trigger on publish and a task trigger on a metric threshold (both calling functions). Prints what fired."""

import json
import os
import sys
import threading
from pathlib import Path

from automation_common import console_of, draft_task, wait_until
from clearml import Dataset, OutputModel, Task
from clearml.automation import TriggerScheduler

result_path, queue, workdir = sys.argv[1], sys.argv[2], Path.cwd()
(workdir / "rows.csv").write_text("a,b\n1,2\n")


def dataset_version(parents: list[str]) -> Dataset:
    dataset = Dataset.create(dataset_project="automation/data", dataset_name="rows", parent_datasets=parents)
    dataset.add_files(str(workdir / "rows.csv"))
    dataset.upload()
    dataset.finalize()
    return dataset


first = dataset_version([])
base = draft_task("param_job.py", "triggered job", {"General/dataset_id": ""})
# the triggers look their projects up when added: the scored tasks' project exists by then
scored = Task.create(project_name="automation/scores", task_name="scored")
above = Task.create(project_name="automation/scores", task_name="above threshold")
fired: dict[str, list[str]] = {"model": [], "task": []}
trigger = TriggerScheduler(
    pooling_frequency_minutes=1 / 60, force_create_task_name="trigger", force_create_task_project="automation"
)
trigger.add_dataset_trigger(
    name="dataset",
    schedule_task_id=base.id,
    schedule_queue=queue,
    trigger_project="automation/data",
    task_parameters={"General/dataset_id": "${dataset.id}"},
)
trigger.add_model_trigger(
    name="model",
    schedule_function=fired["model"].append,
    trigger_project="automation",
    trigger_on_publish=True,
)
trigger.add_task_trigger(
    name="metric",
    schedule_function=fired["task"].append,
    # its own project: a [None, threshold] range also admits tasks without the metric (as on the real server)
    trigger_project="automation/scores",
    trigger_on_metric="loss",
    trigger_on_variant="loss",
    trigger_on_threshold=0.5,
    trigger_on_sign="min",
)
threading.Thread(target=trigger.start, daemon=True).start()
wait_until(lambda: "Sleeping until the next pool" in console_of(trigger._task.id), "the first poll")

second = dataset_version([first.id])
owner = Task.create(project_name="automation", task_name="model owner")
(workdir / "model.bin").write_bytes(b"weights")
model = OutputModel(task=owner, name="triggering model")
model.update_weights(
    weights_filename=str(workdir / "model.bin"),
    auto_delete_file=False,
    iteration=1000,
    upload_uri=os.environ["CLEARML_FILES_HOST"],
)
model.wait_for_uploads()
model.publish()
scored.get_logger().report_scalar("loss", "loss", value=0.9, iteration=0)
scored.get_logger().report_scalar("loss", "loss", value=0.25, iteration=1)
scored.flush(wait_for_uploads=True)
above.get_logger().report_scalar("loss", "loss", value=0.75, iteration=0)
above.flush(wait_for_uploads=True)

wait_until(lambda: fired["model"] and fired["task"], "the model and metric triggers")
launched = wait_until(
    lambda: Task.get_tasks(
        project_name="automation",
        task_name="^triggered job$",
        task_filter={"status": ["queued", "in_progress", "completed"]},
    ),
    "the dataset trigger to launch its task",
)
job = launched[0]
wait_until(lambda: job.get_status() == "completed", "the agent to run the triggered job")
# into a file: the scheduler's thread keeps logging to stdout until the process ends
Path(result_path).write_text(
    json.dumps(
        {
            "second": second.id,
            "job_dataset_id": job.get_parameters()["General/dataset_id"],
            "model": model.id,
            "fired": fired,
            "scored": scored.id,
        }
    )
)
