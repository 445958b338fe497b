"""A job launched by a trigger: it records the id the trigger passed it."""

from clearml import Task

task = Task.init(project_name="automation", task_name="triggered job")
params = task.connect({"dataset_id": ""})
print(f"triggered by dataset {params['dataset_id']}")
