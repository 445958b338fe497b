"""TaskScheduler: a scheduled function (a thread here) and a scheduled task id (clone, edit, enqueue, an agent
runs it) with ``single_instance``: while the first clone runs, the next minute's launch is skipped."""

import json
import sys
import threading
from pathlib import Path

from automation_common import console_of, draft_task, wait_until
from clearml import Task
from clearml.automation import TaskScheduler

result_path, queue = sys.argv[1], sys.argv[2]
base = draft_task("hpo_trial.py", "scheduled base", {"General/x": 0, "General/hold": 1})
function_ran = threading.Event()
scheduler = TaskScheduler(force_create_task_name="scheduler", force_create_task_project="automation")
scheduler.add_task(schedule_function=function_ran.set, name="function", minute=1, execute_immediately=True)
scheduler.add_task(
    schedule_task_id=base.id,
    queue=queue,
    name="task",
    minute=1,
    execute_immediately=True,
    single_instance=True,
    task_parameters={"General/x": 5},
)
threading.Thread(target=scheduler.start, daemon=True).start()

assert function_ran.wait(timeout=60), "the scheduled function did not run"


def clones() -> list[Task]:
    return Task.get_tasks(
        project_name="automation", task_name="^scheduled base$", task_filter={"parent": base.id}
    )


wait_until(lambda: [t for t in clones() if t.get_status() == "in_progress"], "the clone to run on the agent")
scheduler_id = scheduler._task.id
wait_until(
    lambda: "still running" in console_of(scheduler_id), "the scheduler to skip the second launch", 100
)
running = clones()
running[0].mark_stopped()
wait_until(lambda: running[0].get_status() == "stopped", "the clone to stop")
# into a file: the scheduler's thread keeps logging to stdout until the process ends
Path(result_path).write_text(
    json.dumps(
        {
            "clones": [t.id for t in running],
            "x": running[0].get_parameters()["General/x"],
            "status": running[0].get_status(),
        }
    )
)
