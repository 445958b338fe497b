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

import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import global_config
from asteroid.serving import contract
from asteroid.serving.hook_package import build_hook_folder

ENGINE = "xgboost"
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


def metric_logging(
    endpoint_url: str,
    release: contract.ReleaseContract,
    log_frequency: float = global_config.SERVING_METRIC_LOG_FREQ,
) -> Any:
    """Histograms of every statistic of the release contract (features: the training data's edges;
    probability: the standard edges and the version's threshold), for the given fraction of requests."""
    from clearml_serving.serving.endpoints import EndpointMetricLogging

    if not 0 < log_frequency <= 1:
        raise DeployError(f"metric log frequency must be in (0, 1], got {log_frequency}")
    metrics = {
        name: {"type": "scalar", "buckets": buckets} for name, buckets in release.histogram_buckets().items()
    }
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
    model: Any,
    release: contract.ReleaseContract,
    endpoint: str = global_config.SERVING_ENDPOINT,
    max_versions: int = global_config.SERVING_MAX_VERSIONS,
) -> Rollout:
    """Serve the model as `<endpoint>/<n+1>` with the histograms of its release contract (unless it is served
    already), route `<endpoint>` to the newest version, keep the newest `max_versions`. Running it again
    changes nothing."""
    from clearml_serving.serving.model_request_processor import ModelRequestProcessor

    if max_versions < 1:
        raise DeployError(f"max_versions must be at least 1, got {max_versions}")
    processor = ModelRequestProcessor(task_id=service_id)
    processor.deserialize(skip_sync=True)
    versions = served_versions(processor, endpoint)
    current = next((number for number, ep in versions.items() if ep.model_id == model.id), None)
    result = Rollout(service_id, endpoint, model.id, current or max(versions, default=0) + 1)
    if current is None:
        _add_version(processor, result, model, release)
        versions[result.version] = None
    _ensure_canary(processor, result)
    for old in sorted(versions)[:-max_versions]:
        _remove_version(processor, result, f"{endpoint}/{old}")
    if result.changed:
        processor.serialize()
    for command in result.commands:
        print(f"$ {command}")
    return result


def _add_version(processor: Any, result: Rollout, model: Any, release: contract.ReleaseContract) -> None:
    """`model add` of the winner as a new version, and `metrics add` with its release contract's buckets."""
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
    logging_config = metric_logging(result.url, release)
    processor.add_metric_logging(logging_config)
    result.commands.append(
        cli(result.service_id, "metrics", "add", "--endpoint", result.url, "--log-freq",
            logging_config.log_frequency, "--variable-scalar", *_scalar_arguments(logging_config.metrics))
    )  # fmt: skip


def _ensure_canary(processor: Any, result: Rollout) -> None:
    """`model canary`: POST /serve/<endpoint> goes to the highest `<endpoint>/<n>`. A route a progressive
    rollout left naming its versions (e.g. the champion at 100 % after a rollback) is turned back to the
    prefix: the versions it names may be among those removed next, and clearml-serving cannot start on a
    route whose endpoints are all gone (a division by their weights' zero sum)."""
    from clearml_serving.serving.endpoints import CanaryEP

    prefix = f"{result.endpoint}/"
    current = processor.get_canary_endpoints().get(result.endpoint)
    if current is not None and current.load_endpoint_prefix == prefix and not current.load_endpoints:
        return
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
