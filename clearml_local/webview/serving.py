"""The clearml-serving pages: every serving service, and one service with its endpoints, model monitoring,
canary routes and metric logging, as stored in the service task's configuration."""

from __future__ import annotations

from typing import Any

from clearml_local.webview import html as h
from clearml_local.webview.data import NotFound, Reader, is_serving, serving_config
from clearml_local.webview.pages import experiment_href, project_id_of


def serving_list_page(reader: Reader) -> str:
    services = [t for t in reader.tasks() if is_serving(t)]
    rows = [
        [
            h.link(f"/serving/{h.url_part(t['id'])}", t.get("name") or t["id"]),
            h.esc(reader.project_name(t.get("project"))),
            h.status(t.get("status")),
            h.when(t.get("created")),
        ]
        for t in services
    ]
    body = "<h1>Serving services</h1>" + h.table(["Service", "Project", "Status", "Created"], rows)
    return h.page("Serving", body)


def serving_page(reader: Reader, task_id: str) -> str:
    task = reader.task(task_id)
    if not is_serving(task):
        raise NotFound(f"Experiment {task_id} is not a clearml-serving service")
    config = serving_config(task)
    parts = [
        f"<h1>{h.esc(task.get('name'))} {h.status(task.get('status'))}</h1>",
        f"<p>{h.link(experiment_href(task), 'service task')}</p>",
        "<h2>Endpoints</h2>",
        _endpoints(reader, config["endpoints"][1]),
        "<h2>Model monitoring (auto-update)</h2>",
        _records(
            config["model_monitoring"][1],
            [
                "base_serving_url",
                "engine_type",
                "monitor_project",
                "monitor_name",
                "monitor_tags",
                "only_published",
                "max_versions",
            ],
        ),
        "<h2>Canary routes</h2>",
        _records(config["canary"][1], ["endpoint", "weights", "load_endpoints", "load_endpoint_prefix"]),
        "<h2>Metric logging</h2>",
        _metric_logging(config["metric_logging"][1]),
    ]
    for name, (text, parsed) in config.items():
        if parsed is None:
            parts.append(f'<h3>{h.esc(name)} (as stored)</h3><pre class="log">{h.esc(text)}</pre>')
    return h.page(str(task.get("name") or task_id), "".join(parts))


def _endpoints(reader: Reader, endpoints: dict[str, Any] | None) -> str:
    rows = []
    for name, item in (endpoints or {}).items():
        if not isinstance(item, dict):
            continue
        model = (
            reader.store.peek("models", item.get("model_id"))
            if isinstance(item.get("model_id"), str)
            else None
        )
        model_cell = (
            h.link(
                f"/projects/{h.url_part(project_id_of(model))}/models/{h.url_part(model['id'])}",
                model.get("name"),
            )
            if model
            else h.esc(item.get("model_id", ""))
        )
        rows.append(
            [
                h.esc(item.get("serving_url", name)),
                h.esc(item.get("engine_type", "")),
                model_cell,
                h.esc(item.get("version", "")),
                h.tags(model.get("tags")) if model else "",
                h.esc(item.get("preprocess_artifact", "")),
            ]
        )
    # the model's tags carry what a release decided of it (e.g. a gate's verdict, production, rolled back)
    return h.table(["Endpoint", "Engine", "Model", "Version", "Model tags", "Preprocess artifact"], rows)


def _records(records: dict[str, Any] | None, fields: list[str]) -> str:
    rows = [
        [h.esc(name), *(h.esc(_text(item.get(field, ""))) for field in fields)]
        for name, item in (records or {}).items()
        if isinstance(item, dict)
    ]
    return h.table(["Name", *fields], rows)


def _metric_logging(records: dict[str, Any] | None) -> str:
    rows = []
    for name, item in (records or {}).items():
        if not isinstance(item, dict):
            continue
        for metric, spec in (item.get("metrics") or {}).items():
            spec = spec if isinstance(spec, dict) else {}
            rows.append(
                [
                    h.esc(item.get("endpoint", name)),
                    h.esc(metric),
                    h.esc(spec.get("type", "")),
                    h.esc(_text(spec.get("buckets", ""))),
                    h.esc(_text(item.get("log_frequency", ""))),
                ]
            )
    return h.table(["Endpoint", "Variable", "Type", "Buckets", "Log frequency"], rows)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
