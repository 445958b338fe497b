"""The pipeline's function step. Kept in a module of its own, without a ``from __future__`` import: the SDK
copies the module-level imports of a function step's module into the script it generates."""


def select_best(training_steps: str) -> dict:
    """Choose the best training run on validation, publish and tag its model, and roll it out to the
    clearml-serving service when one is deployed (runs as a ClearML task)."""
    from clearml import Task

    from asteroid.serving.deploy import rollout_if_served
    from asteroid.steps.selection import select_and_publish, step_task_ids

    pipeline_id = Task.current_task().parent  # every step task is a child of the pipeline's task
    summary = select_and_publish(step_task_ids(pipeline_id, training_steps.split(",")))
    rollout = rollout_if_served(summary["winner"]["model_id"])
    summary["serving"] = (
        None if rollout is None else {"service_id": rollout.service_id, "endpoint": rollout.url}
    )
    return summary
