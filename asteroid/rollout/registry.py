"""The model registry's side of a rollout (ClearML model tags): `rolled_back` and the failing check on a
rolled-back challenger, `production` moved to a promoted one (whose monitoring rules are then published, as
a release does)."""

from __future__ import annotations

from typing import Any

from asteroid.rollout.state import Version

PRODUCTION_TAG = "production"
ROLLED_BACK_TAG = "rolled_back"


def check_tag(check: str) -> str:
    return f"{ROLLED_BACK_TAG}:{check}"


def _retag(model: Any, add: set[str], remove: frozenset[str] = frozenset()) -> None:
    tags = set(model.tags or [])
    wanted = (tags - remove) | add
    if wanted != tags:
        model.tags = sorted(wanted)


class ClearMLRegistry:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def mark_rolled_back(self, model_id: str, check: str, reason: str) -> None:
        from clearml import Model, Task

        model = Model(model_id=model_id)
        _retag(model, {ROLLED_BACK_TAG, check_tag(check)}, frozenset({PRODUCTION_TAG}))
        task = Task.get_task(task_id=model.task)
        task.add_tags([ROLLED_BACK_TAG, check_tag(check)])
        task.get_logger().report_text(f"rollout rolled back: {check} failed: {reason}")

    def move_production(self, previous: Version, promoted: Version) -> None:
        from clearml import Model

        from asteroid.monitoring.publish import publish_rules
        from asteroid.serving import contract
        from asteroid.serving.deploy import Rollout

        _retag(Model(model_id=previous.model_id), set(), frozenset({PRODUCTION_TAG}))
        model = Model(model_id=promoted.model_id)
        if PRODUCTION_TAG in (model.tags or []):
            return
        _retag(model, {PRODUCTION_TAG})
        served = Rollout("", self.endpoint, promoted.model_id, promoted.version)
        # Traffic has already moved: a slow Prometheus must not stop the rollout at its last step.
        publish_rules(served, model, contract.of_model(model), reload_required=False)
