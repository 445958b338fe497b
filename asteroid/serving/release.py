"""Releasing a model version: read its release contract, roll it out on the clearml-serving service, then
publish the monitoring rules of the version it became. `serve.py` and the pipeline's selection step both
release through `release`."""

from __future__ import annotations

from typing import Any

import global_config
from asteroid.monitoring.publish import publish_rules
from asteroid.serving import contract
from asteroid.serving.deploy import DeployError, Rollout, find_service, rollout


def release(service_id: str, model: Any, *, reload_required: bool = True) -> Rollout:
    """Roll `model` (a clearml `Model`) out on the service, then write and load its rules; prints both.
    Refused (DeployError) while a progressive rollout is active: it owns the route until it ends. With
    ``reload_required`` false, a Prometheus reload not confirmed is a printed warning (`publish_rules`)."""
    busy = active_rollout(service_id)
    if busy:
        raise DeployError(f"not released: {busy}")
    try:
        terms = contract.of_model(model)
    except contract.ContractError as exc:
        raise DeployError(str(exc)) from None
    result = rollout(service_id, model, terms)
    verb = "rolled out as" if result.changed else "already served as"
    print(
        f"winner {model.id} {verb} /serve/{result.url} on service {service_id} "
        f"(hazardous at probability ≥ {terms.threshold:g})"
    )
    publish_rules(result, model, terms, reload_required=reload_required)
    return result


def active_rollout(service_id: str) -> str | None:
    """What a progressive rollout active on the service is doing, or None."""
    from asteroid.rollout.state import StateStore, busy_message

    state = StateStore().load()
    if state is not None and state.active and state.service_id == service_id:
        return busy_message(state)
    return None


def release_if_served(model_id: str) -> Rollout | None:
    """After a pipeline publishes a winner: release it when the serving service exists (None otherwise)."""
    if not global_config.SERVING_AUTO_ROLLOUT:
        return None
    service_id = find_service()
    if service_id is None:
        print(
            f"no clearml-serving service {global_config.SERVING_SERVICE_NAME!r} yet: "
            "`make serve` deploys the winner"
        )
        return None
    busy = active_rollout(service_id)
    if busy:
        print(f"winner {model_id} not released: {busy}")
        return None
    from clearml import Model

    # The model already serves: a slow Prometheus must not fail the pipeline that made it.
    return release(service_id, Model(model_id=model_id), reload_required=False)
