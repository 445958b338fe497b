"""Register agent_job.py as a draft task (its whole script travels with it), override a parameter and
enqueue it; prints the task id as JSON."""

import json
import sys
from pathlib import Path

from clearml import Task

queue, factor = sys.argv[1], sys.argv[2]
task = Task.create(
    project_name="agent flow",
    task_name="agent job",
    script=str(Path(__file__).with_name("agent_job.py")),
    add_task_init_call=False,
    packages=False,
    force_single_script_file=True,
)
task.set_parameters({"General/factor": factor})
Task.enqueue(task, queue_name=queue)
print(json.dumps({"task_id": task.id}))
