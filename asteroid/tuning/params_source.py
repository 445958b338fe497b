"""Training parameters taken from an existing task: an optimizer task's recommendation, or a training task's
own ``xgboost`` parameters (``pipeline.py --params-from TASK_ID``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from asteroid.tracking import OUTPUT_SECTION
from asteroid.tuning.space import SECTION, typed_params

# Output parameters of the optimizer task (``Outputs/<name>``)
RECOMMENDED_PARAMS = "recommended_params"
RECOMMENDED_SOURCE = "recommended_source"


@dataclass(frozen=True)
class ParamsSource:
    """Training parameters and the task they came from."""

    task_id: str
    description: str
    params: dict[str, Any]


def _get_task(task_id: str) -> Any:
    from clearml import Task

    try:
        return Task.get_task(task_id=task_id)
    except ValueError:
        raise ValueError(f"--params-from: no task {task_id!r} on this server") from None


def params_from_task(task_id: str) -> ParamsSource:
    """The parameters an optimizer task recommends, or those a training task trained with."""
    task = _get_task(task_id)
    sections = task.get_parameters_as_dict()
    recommended = sections.get(OUTPUT_SECTION, {}).get(RECOMMENDED_PARAMS)
    if recommended:
        source = sections[OUTPUT_SECTION].get(RECOMMENDED_SOURCE, "")
        return ParamsSource(
            task_id, f"optimizer task {task_id} ({source})", typed_params(json.loads(recommended))
        )
    if str(task.task_type) in ("optimizer", "TaskTypes.optimizer"):
        raise ValueError(f"--params-from: optimizer task {task_id} has no recommendation (not finished?)")
    trained = typed_params(sections.get(SECTION, {}))
    if not trained:
        raise ValueError(
            f"--params-from: task {task_id} ({task.name}) is neither an optimizer task with a recommendation "
            f"nor a training task with {SECTION}/ parameters"
        )
    return ParamsSource(task_id, f"training task {task_id} ({task.name})", trained)
