"""Flow c: a pipeline of two script steps (cloned from base tasks, with parameter overrides) and one function
step that combines their artifacts, all run locally.

Usage: python flow_c_pipeline.py PROJECT. Prints a JSON summary as its last line.
No ``from __future__`` import here: the SDK copies this module's imports into the function step's script,
where it would no longer be the first statement.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from clearml import PipelineController, Task

STEP_SCRIPT = Path(__file__).with_name("pipeline_step.py")
# Minutes between the controller's checks of its steps (the default 0.2 is 12 s).
POOL_FREQUENCY_MIN = 0.005


def combine(first_id: str, second_id: str, offset: str) -> dict[str, float]:
    """Runs as its own task: reads the ``result`` artifacts of the two script steps. Returns a dict, which the
    SDK stores as an artifact (plain numbers would become ``return/*`` parameters)."""
    from clearml import Task

    first = Task.get_task(task_id=first_id).artifacts["result"].get()
    second = Task.get_task(task_id=second_id).artifacts["result"].get()
    return {"total": float(first["value"]) + float(second["value"]) + float(offset)}


def create_base_tasks(project: str, script: Path) -> dict[str, str]:
    ids = {}
    for name in ("step one", "step two"):
        task = Task.create(project_name=project, task_name=name, script=str(script), add_task_init_call=False)
        task.set_parameters({"General/value": "1", "General/factor": "1"})
        ids[name] = task.id
    return ids


def build(project: str) -> PipelineController:
    pipe = PipelineController(
        name="flow c pipeline", project=project, version="1.0.0", pool_frequency=POOL_FREQUENCY_MIN
    )
    pipe.add_step(
        name="one",
        base_task_project=project,
        base_task_name="step one",
        parameter_override={"General/value": "5", "General/factor": "2"},
    )
    pipe.add_step(
        name="two",
        parents=["one"],
        base_task_project=project,
        base_task_name="step two",
        parameter_override={"General/value": "${one.parameters.General/value}", "General/factor": "3"},
    )
    pipe.add_function_step(
        name="combine",
        function=combine,
        function_kwargs={"first_id": "${one.id}", "second_id": "${two.id}", "offset": "0.5"},
        function_return=["total"],
        parents=["one", "two"],
    )
    return pipe


def describe(node: Any) -> dict[str, Any]:
    task = Task.get_task(task_id=node.executed)
    return {
        "id": task.id,
        "status": task.get_status(),
        "parent": task.parent,
        "parameters": task.get_parameters(),
        "artifacts": sorted(task.artifacts),
    }


def main(project: str) -> None:
    step_dir = Path(tempfile.mkdtemp())
    script = Path(shutil.copy(STEP_SCRIPT, step_dir / STEP_SCRIPT.name))
    os.chdir(step_dir)  # locally run steps start from their base task's working directory
    base_ids = create_base_tasks(project, script)
    pipe = build(project)
    pipe.start_locally(run_pipeline_steps_locally=True)
    nodes = {name: describe(node) for name, node in pipe._nodes.items() if node.executed}
    combined = Task.get_task(task_id=nodes["combine"]["id"]).artifacts["total"].get()
    summary = {
        "base_ids": base_ids,
        "pipeline_id": pipe.id,
        "pipeline_status": Task.get_task(task_id=pipe.id).get_status(),
        "node_names": sorted(pipe._nodes),
        "nodes": nodes,
        "total": combined,
    }
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
