"""After every rollout: generate the drift and serving rules of the served version from its training data
(and the stack's process and host alerts, one file for every endpoint), write them where the local stack's
Prometheus reads rule files, reload it when it runs, and attach the rules to the winner's training task as an
artifact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import serving_local.api
from asteroid.monitoring import config as monitoring_config
from asteroid.monitoring import rules
from asteroid.monitoring.reference import TrainingReference, from_contract
from asteroid.quality import rules as quality_rules
from asteroid.serving.contract import ReleaseContract

RULES_ARTIFACT = "prometheus_rules"


def rules_dir() -> Path:
    """Where the local stack's Prometheus reads rule files: the running stack's, else where a stack started
    in this environment would read them (``serving_local.api.rules_dir``)."""
    return serving_local.api.rules_dir()


def reference_for(rollout: Any, release: ReleaseContract) -> TrainingReference:
    return from_contract(release, rollout.endpoint, rollout.version)


def write_rules(text: str, endpoint: str, directory: Path | None = None) -> Path:
    """One file per endpoint, replaced atomically (Prometheus never reads half a file)."""
    directory = directory or rules_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{endpoint}.yml"
    temporary = directory / f".{endpoint}.yml.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def reload_prometheus() -> str | None:
    """Reload the local stack's Prometheus when it runs; returns its URL (None: no stack with Prometheus).
    ``serving_local.api.StackError`` (a RuntimeError) when Prometheus refuses the new rules."""
    return serving_local.api.reload_prometheus()


def attach_to_training_task(model: Any, path: Path) -> None:
    from clearml import Task

    Task.get_task(task_id=model.task).upload_artifact(
        RULES_ARTIFACT, artifact_object=str(path), wait_on_upload=True
    )


def publish_rules(
    rollout: Any, model: Any, release: ReleaseContract, *, reload_required: bool = True
) -> Path:
    """Generate the rules of the rolled-out version from its release contract, write, reload, attach to the
    model's training task; prints what it did. A reload Prometheus refuses or does not confirm raises
    ``serving_local.api.StackError``, unless ``reload_required`` is false: then it is printed as a warning
    (the rules are on disk, read at Prometheus' next reload) and the rules are still attached."""
    settings = monitoring_config.load()
    reference = reference_for(rollout, release)
    thresholds = quality_rules.thresholds_of_model(model, settings)
    path = write_rules(rules.render(reference, settings, thresholds), rollout.endpoint)
    print(f"monitoring rules for /serve/{rollout.url} (window {settings.window}) written to {path}")
    resources = write_rules(rules.render_resources(settings), rules.RESOURCES_RULES, path.parent)
    print(f"process and host alerts written to {resources}")
    if thresholds is None:
        print("  no test accuracy/recall recorded with the model: live quality alerts left out")
    else:
        print(
            f"  live quality alerts below accuracy {thresholds.accuracy:.3f}, recall {thresholds.recall:.3f}"
        )
    try:
        url = reload_prometheus()
    except serving_local.api.StackError as exc:
        if reload_required:
            raise
        print(f"warning: rules written but Prometheus' reload was not confirmed: {exc}")
    else:
        if url:
            print(f"Prometheus at {url} reloaded its rules")
    attach_to_training_task(model, path)
    print(f"rules attached to training task {model.task} as artifact {RULES_ARTIFACT!r}")
    return path
