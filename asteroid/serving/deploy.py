"""Deploy the pipeline winner with clearml-serving, against whichever ClearML server is configured.

Every change goes through clearml-serving's own `ModelRequestProcessor` — the API its CLI calls — in one
configuration update, and is printed as the equivalent `clearml-serving` command.

Why versioned static endpoints instead of `model auto-update`: clearml-serving 1.3.5's statistics controller
only learns the endpoints listed in the service's `endpoints` configuration, never the `<endpoint>/<n>`
versions auto-update creates (its `_model_monitoring_endpoints` stay empty outside the inference app), and
`metrics add` refuses an exact auto-update URL; so auto-updated versions never get their feature histograms,
and drift could not be watched. A rollout does what auto-update does — follow the newest published model
tagged `pipeline_winner`, number it `<endpoint>/<n>`, keep `max_versions` — with endpoints the controller
sees, each with histogram buckets from its own training data; a canary route sends `POST /serve/<endpoint>`
to the newest version. See docs/notes/serving.md.
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import global_config
from asteroid import features, schema
from asteroid.serving.hook_package import build_hook_folder

ENGINE = "xgboost"
PROBABILITY_STAT = "probability"
# Histogram buckets of the predicted probability; the 0.5 edge makes the hazardous fraction readable.
PROBABILITY_BUCKETS = [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
CONTROL_PLANE_TAG = "serving-control-plane"


class DeployError(RuntimeError):
    pass


@dataclass
class Rollout:
    """What one deployment changed, and the equivalent CLI commands."""

    service_id: str
    endpoint: str
    model_id: str
    version: int
    commands: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.commands)

    @property
    def url(self) -> str:
        return f"{self.endpoint}/{self.version}"


def cli(service_id: str | None, *arguments: Any) -> str:
    prefix = ["clearml-serving"] + (["--id", service_id] if service_id else [])
    return shlex.join([*prefix, *(str(argument) for argument in arguments)])


def find_service(name: str = global_config.SERVING_SERVICE_NAME) -> str | None:
    """The id of the newest clearml-serving service of this name, whatever its state (None: there is none)."""
    from clearml import Task

    tasks = Task.query_tasks(
        task_name=f"^{re.escape(name)}$",
        task_filter={
            "type": ["service"],
            "system_tags": [CONTROL_PLANE_TAG, "-archived"],
            "order_by": ["-last_update"],
        },
        additional_return_fields=["name"],
    )
    exact = [task["id"] for task in tasks if task.get("name") == name]
    return exact[0] if exact else None


def ensure_service(
    name: str = global_config.SERVING_SERVICE_NAME, project: str = global_config.SERVING_PROJECT
) -> tuple[str, bool]:
    """(service id, created): reuse the service of this name, or create it (`clearml-serving create`)."""
    existing = find_service(name)
    if existing:
        return existing, False
    from clearml_serving.serving.model_request_processor import ModelRequestProcessor

    processor = ModelRequestProcessor(force_create=True, name=name, project=project)
    processor.serialize()
    print(f"$ {cli(None, 'create', '--name', name, '--project', project)}")
    return str(processor.get_id()), True


def published_winner() -> Any:
    """The newest published model tagged as the pipeline winner."""
    from clearml import Model

    models = Model.query_models(
        project_name=global_config.PROJECT_NAME,
        model_name=global_config.MODEL_NAME,
        tags=[global_config.WINNER_TAG],
        only_published=True,
        max_results=1,
    )
    if not models:
        raise DeployError(
            f"no published model {global_config.MODEL_NAME!r} tagged {global_config.WINNER_TAG!r} in project "
            f"{global_config.PROJECT_NAME!r}: run the pipeline first (python pipeline.py)"
        )
    return models[0]


def feature_spec(model: Any) -> dict[str, Any]:
    """The `feature_spec` of the model's training data (an artifact of its training task)."""
    from clearml import Task

    task = Task.get_task(task_id=model.task)
    artifact = task.artifacts.get("feature_spec")
    if artifact is None:
        raise DeployError(f"training task {model.task} of model {model.id} has no feature_spec artifact")
    spec = artifact.get()
    if not isinstance(spec, dict):  # stored as a file: get() gives its local path
        spec = json.loads(Path(str(spec)).read_text())
    return spec


def bucket_edges(model: Any) -> dict[str, list[float]]:
    """Histogram bucket edges of the model's training data (from its training task's `feature_spec`)."""
    edges = feature_spec(model).get("bucket_edges") or {}
    missing = [name for name in schema.FEATURES if not edges.get(name)]
    if missing:
        raise DeployError(f"feature_spec of task {model.task} has no bucket edges for {missing}")
    return {name: [float(edge) for edge in edges[name]] for name in schema.FEATURES}


def metric_logging(
    endpoint_url: str,
    edges: dict[str, list[float]],
    log_frequency: float = global_config.SERVING_METRIC_LOG_FREQ,
) -> Any:
    """Histograms of every feature (buckets: the training data's edges) and of the probability, for the given
    fraction of requests."""
    from clearml_serving.serving.endpoints import EndpointMetricLogging

    if not 0 < log_frequency <= 1:
        raise DeployError(f"metric log frequency must be in (0, 1], got {log_frequency}")
    metrics = {
        name: {"type": "scalar", "buckets": features.usable_buckets(edges[name])} for name in schema.FEATURES
    }
    metrics[PROBABILITY_STAT] = {"type": "scalar", "buckets": PROBABILITY_BUCKETS}
    return EndpointMetricLogging(endpoint=endpoint_url, log_frequency=log_frequency, metrics=metrics)


def _scalar_arguments(metrics: dict[str, Any]) -> list[str]:
    return [f"{name}={','.join(f'{edge:g}' for edge in metric.buckets)}" for name, metric in metrics.items()]


def served_versions(processor: Any, endpoint: str) -> dict[int, Any]:
    """Version number -> static endpoint, for the `<endpoint>/<n>` endpoints of the service."""
    versions = {}
    for url, ep in processor.get_endpoints().items():
        version = str(ep.version or "")
        if ep.serving_url.strip("/") == endpoint and version.isdigit() and url == f"{endpoint}/{version}":
            versions[int(version)] = ep
    return versions


def rollout(
    service_id: str,
    model: Any | None = None,
    endpoint: str = global_config.SERVING_ENDPOINT,
    max_versions: int = global_config.SERVING_MAX_VERSIONS,
) -> Rollout:
    """Serve the winner as `<endpoint>/<n+1>` (unless it is served already), route `<endpoint>` to the newest
    version, keep the newest `max_versions`. Running it again changes nothing."""
    from clearml_serving.serving.model_request_processor import ModelRequestProcessor

    if max_versions < 1:
        raise DeployError(f"max_versions must be at least 1, got {max_versions}")
    model = model or published_winner()
    processor = ModelRequestProcessor(task_id=service_id)
    processor.deserialize(skip_sync=True)
    versions = served_versions(processor, endpoint)
    current = next((number for number, ep in versions.items() if ep.model_id == model.id), None)
    result = Rollout(service_id, endpoint, model.id, current or max(versions, default=0) + 1)
    if current is None:
        _add_version(processor, result, model)
        versions[result.version] = None
    _ensure_canary(processor, result)
    for old in sorted(versions)[:-max_versions]:
        _remove_version(processor, result, f"{endpoint}/{old}")
    if result.changed:
        processor.serialize()
    for command in result.commands:
        print(f"$ {command}")
    return result


def _add_version(processor: Any, result: Rollout, model: Any) -> None:
    """`model add` of the winner as a new version, and `metrics add` with its training data's buckets."""
    from clearml_serving.serving.endpoints import ModelEndpoint

    with tempfile.TemporaryDirectory() as work_dir:
        hook = build_hook_folder(Path(work_dir) / f"{result.endpoint}_hook")
        processor.add_endpoint(
            ModelEndpoint(
                engine_type=ENGINE,
                serving_url=result.endpoint,
                version=str(result.version),
                model_id=model.id,
            ),
            preprocess_code=str(hook),
        )
    result.commands.append(
        cli(result.service_id, "model", "add", "--engine", ENGINE, "--endpoint", result.endpoint, "--version",
            result.version, "--model-id", model.id, "--preprocess", "<hook folder>")
    )  # fmt: skip
    logging_config = metric_logging(result.url, bucket_edges(model))
    processor.add_metric_logging(logging_config)
    result.commands.append(
        cli(result.service_id, "metrics", "add", "--endpoint", result.url, "--log-freq",
            logging_config.log_frequency, "--variable-scalar", *_scalar_arguments(logging_config.metrics))
    )  # fmt: skip


def _ensure_canary(processor: Any, result: Rollout) -> None:
    """`model canary`: POST /serve/<endpoint> goes to the highest `<endpoint>/<n>`."""
    from clearml_serving.serving.endpoints import CanaryEP

    if result.endpoint in processor.get_canary_endpoints():
        return
    prefix = f"{result.endpoint}/"
    processor.add_canary_endpoint(
        CanaryEP(endpoint=result.endpoint, weights=[1], load_endpoint_prefix=prefix)
    )
    result.commands.append(
        cli(result.service_id, "model", "canary", "--endpoint", result.endpoint, "--weights", 1,
            "--input-endpoint-prefix", prefix)
    )  # fmt: skip


def _remove_version(processor: Any, result: Rollout, url: str) -> None:
    processor.remove_endpoint(url)
    processor.remove_metric_logging(url)
    result.commands += [
        cli(result.service_id, "model", "remove", "--endpoint", url),
        cli(result.service_id, "metrics", "remove", "--endpoint", url),
    ]


def rollout_if_served(model_id: str) -> Rollout | None:
    """After a pipeline publishes a winner: roll it out when the serving service exists (None otherwise)."""
    if not global_config.SERVING_AUTO_ROLLOUT:
        return None
    service_id = find_service()
    if service_id is None:
        print(
            f"no clearml-serving service {global_config.SERVING_SERVICE_NAME!r} yet: "
            "`make serve` deploys the winner"
        )
        return None
    from clearml import Model

    model = Model(model_id=model_id)
    result = rollout(service_id, model)
    verb = "rolled out as" if result.changed else "already served as"
    print(f"winner {model_id} {verb} /serve/{result.url} on service {service_id}")
    from asteroid.monitoring.publish import publish_rules

    publish_rules(result, model)
    return result
