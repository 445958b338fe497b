"""The selection step's ClearML function-step entry: the SDK runs `select_best` as a task of its own. Its work
is in `selection.py` (the choice itself in `asteroid.ranking`), the release of the winner in
`asteroid.serving.release`. Kept in a module of its own, without a ``from __future__`` import: the SDK copies
the module-level imports of a function step's module into the script it generates."""

# Imported for its effect, before the generated script's Task.init: installs the clearml SDK patches.
import asteroid.function_step_patches  # noqa: F401


def select_best(training_step: str) -> dict:
    """Choose the training step's best model on validation, publish and tag it, and roll it out to the
    clearml-serving service when one is deployed (runs as a ClearML task)."""
    from clearml import Task

    from asteroid.serving.release import release_if_served
    from asteroid.steps.selection import select_and_publish, step_task_id
    from asteroid.tracking import end_process_at_exit

    end_process_at_exit()  # once the SDK's script has stored the summary, skip the interpreter's teardown
    pipeline_id = Task.current_task().parent  # every step task is a child of the pipeline's task
    summary = select_and_publish(step_task_id(pipeline_id, training_step))
    rollout = release_if_served(summary["winner"]["model_id"])
    if rollout is not None:
        summary["serving"] = {"service_id": rollout.service_id, "endpoint": rollout.url}
    return summary
