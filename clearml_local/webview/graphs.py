"""Dataset lineage, pipeline runs and clearml-serving services, with their graphs drawn as inline SVG (a
layered layout: a node's column is the length of the longest path from a root)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clearml_local.storage import Document
from clearml_local.webview import html as h
from clearml_local.webview.data import (
    NotFound,
    PipelineStep,
    Reader,
    dataset_files,
    dataset_lineage,
    is_dataset,
    is_pipeline,
    is_serving,
    pipeline_steps,
    serving_config,
    task_seconds,
)
from clearml_local.webview.pages import (
    REFRESH_SECONDS,
    experiment_href,
    is_live,
    live_notice,
    project_id_of,
    task_link,
)

NODE_W, NODE_H, GAP_X, GAP_Y = 190, 54, 60, 24
COLORS = {"completed": "#d8f3df", "failed": "#fbdada", "in_progress": "#dbe9fb", "stopped": "#fbf0c9"}


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    detail: str
    status: str
    href: str | None
    parents: list[str]


def columns(nodes: list[Node]) -> dict[str, int]:
    """Each node's column: 0 for roots, else one more than its deepest parent (cycles are cut)."""
    by_key = {n.key: n for n in nodes}
    depth: dict[str, int] = {}

    def visit(key: str, seen: frozenset[str]) -> int:
        if key in depth:
            return depth[key]
        parents = [p for p in by_key[key].parents if p in by_key and p not in seen]
        depth[key] = 1 + max((visit(p, seen | {key}) for p in parents), default=-1)
        return depth[key]

    for node in nodes:
        visit(node.key, frozenset())
    return depth


def svg_graph(nodes: list[Node]) -> str:
    """The graph as SVG: a box per node (status colour, label, detail), an arrow per parent → child edge."""
    if not nodes:
        return '<p class="muted">no nodes</p>'
    depth = columns(nodes)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for node in nodes:
        column = depth[node.key]
        row = rows.get(column, 0)
        rows[column] = row + 1
        place[node.key] = (20 + column * (NODE_W + GAP_X), 20 + row * (NODE_H + GAP_Y))
    width = 40 + (max(depth.values()) + 1) * (NODE_W + GAP_X)
    height = 40 + max(rows.values()) * (NODE_H + GAP_Y)
    below = height - 14  # edges that skip a column run under the boxes, not behind them
    edges = [
        _edge(place[parent], place[node.key], depth[node.key] - depth[parent] > 1, below)
        for node in nodes
        for parent in node.parents
        if parent in place
    ]
    boxes = [_box(node, *place[node.key]) for node in nodes]
    marker = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7b8794"/></marker></defs>'
    )
    return (
        f'<svg class="graph" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"{marker}{''.join(edges)}{''.join(boxes)}</svg>"
    )


def _edge(start: tuple[int, int], end: tuple[int, int], skips: bool, below: int) -> str:
    """An arrow from a parent's box to a child's: straight to the next column, else routed below the row."""
    (x1, y1), (x2, y2) = start, end
    if skips:
        a, b = x1 + NODE_W // 2, x2 + NODE_W // 2
        points = f"M{a},{y1 + NODE_H} L{a},{below} L{b - 12},{below} L{b},{y2 + NODE_H}"
    else:
        points = f"M{x1 + NODE_W},{y1 + NODE_H // 2} L{x2},{y2 + NODE_H // 2}"
    return f'<path d="{points}" fill="none" stroke="#7b8794" stroke-width="1.5" marker-end="url(#arrow)"/>'


def _box(node: Node, x: int, y: int) -> str:
    fill = COLORS.get(node.status, "#eef1f4")
    shape = (
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="#9aa5b1"/>'
        f'<text x="{x + 10}" y="{y + 21}" font-weight="600">{h.esc(node.label[:28])}</text>'
        f'<text x="{x + 10}" y="{y + 41}" fill="#444">{h.esc(node.detail[:32])}</text>'
    )
    return f'<a href="{h.esc(node.href)}">{shape}</a>' if node.href else shape


# --- datasets -----------------------------------------------------------------------------------------


def dataset_href(task: Document) -> str:
    return f"/datasets/simple/{h.url_part(project_id_of(task))}/experiments/{h.url_part(task['id'])}"


def datasets_page(reader: Reader, project_id: str | None = None) -> str:
    project = reader.project(project_id) if project_id else None
    found = [
        t for t in reader.tasks() if is_dataset(t) and (project is None or t.get("project") == project_id)
    ]
    found.sort(key=lambda t: str(t.get("created") or ""), reverse=True)
    rows = [
        [
            h.link(dataset_href(t), t.get("name") or t["id"]),
            h.esc(_dataset_project(reader, t)),
            h.esc((t.get("runtime") or {}).get("version", "")),
            h.status(t.get("status")),
            h.esc((t.get("runtime") or {}).get("ds_file_count", "")),
            h.size((t.get("runtime") or {}).get("ds_total_size")),
            h.tags(t.get("tags")),
            h.when(t.get("created")),
        ]
        for t in found
    ]
    headers = ["Dataset", "Project", "Version", "Status", "Files", "Size", "Tags", "Created"]
    return h.page("Datasets", "<h1>Datasets</h1>" + h.table(headers, rows))


def _dataset_project(reader: Reader, task: Document) -> str:
    """The user's project of a dataset (the SDK keeps versions in ``<project>/.datasets/<name>``)."""
    return reader.project_name(task.get("project")).split("/.datasets")[0]


def dataset_page(reader: Reader, task_id: str) -> str:
    task = reader.task(task_id)
    if not is_dataset(task):
        raise NotFound(f"Experiment {task_id} is not a dataset version")
    lineage = dataset_lineage(task)
    nodes = []
    for version in lineage:
        known = reader.store.peek("tasks", version.task_id)
        nodes.append(
            Node(
                version.task_id,
                version.name,
                f"v{version.version}" + (" (this version)" if version.task_id == task_id else ""),
                str((known or {}).get("status", "")),
                dataset_href(known) if known else None,
                version.parents,
            )
        )
    own = next((v for v in lineage if v.task_id == task_id), None)
    parents = [task_link(reader, p) for p in (own.parents if own else [])]
    files = [
        [h.esc(name), h.esc(size), f"<code>{h.esc(digest)}</code>"]
        for name, size, digest in dataset_files(task)
    ]
    runtime = task.get("runtime") or {}
    info = [
        ["Project", h.esc(_dataset_project(reader, task))],
        ["Version", h.esc(runtime.get("version", ""))],
        ["Status", h.status(task.get("status"))],
        ["Parents", ", ".join(parents) or '<span class="muted">none</span>'],
        ["Files", h.esc(runtime.get("ds_file_count", ""))],
        ["Total size", h.size(runtime.get("ds_total_size"))],
        ["Experiment", h.link(experiment_href(task), "details, log and artifacts")],
    ]
    live = is_live(task.get("status"))
    body = (
        f"<h1>{h.esc(task.get('name'))} {h.status(task.get('status'))}</h1>"
        + (live_notice(task.get("status")) if live else "")
        + h.table(["Field", "Value"], info, css="info")
        + "<h2>Lineage</h2>"
        + svg_graph(nodes)
        + "<h2>Files</h2>"
        + h.table(["File", "Size (bytes)", "SHA-256"], files)
    )
    return h.page(str(task.get("name") or task_id), body, refresh=REFRESH_SECONDS if live else None)


# --- pipelines ----------------------------------------------------------------------------------------


def pipeline_href(task: Document) -> str:
    return f"/pipelines/{h.url_part(project_id_of(task))}/experiments/{h.url_part(task['id'])}"


def pipelines_page(reader: Reader, project_id: str | None = None) -> str:
    project = reader.project(project_id) if project_id else None
    runs = [
        t for t in reader.tasks() if is_pipeline(t) and (project is None or t.get("project") == project_id)
    ]
    runs.sort(key=lambda t: str(t.get("started") or t.get("created") or ""), reverse=True)
    rows = [
        [
            h.link(pipeline_href(t), t.get("name") or t["id"]),
            h.esc((t.get("runtime") or {}).get("version", "")),
            h.status(t.get("status")),
            h.tags(t.get("tags")),
            h.when(t.get("started")),
            h.duration(task_seconds(t)),
        ]
        for t in runs
    ]
    headers = ["Pipeline run", "Version", "Status", "Tags", "Started", "Duration"]
    return h.page("Pipelines", "<h1>Pipelines</h1>" + h.table(headers, rows))


def latest_pipeline(reader: Reader) -> str:
    """The newest pipeline run: ``/pipelines/*/experiments/latest`` is the link ``make demo`` prints."""
    runs = [t for t in reader.tasks() if is_pipeline(t)]
    if not runs:
        raise NotFound("No pipeline has run on this server yet")
    return str(max(runs, key=lambda t: str(t.get("started") or t.get("created") or ""))["id"])


def pipeline_page(reader: Reader, task_id: str) -> str:
    task = reader.task(latest_pipeline(reader) if task_id == "latest" else task_id)
    if not is_pipeline(task):
        raise NotFound(f"Experiment {task_id} is not a pipeline run")
    task_id = str(task["id"])
    steps = pipeline_steps(task, reader)
    nodes = [
        Node(
            s.name,
            s.name,
            f"{s.status} · {h.duration(s.seconds)}" if s.seconds is not None else s.status,
            s.status,
            experiment_href(reader.task(s.task_id)) if s.task_id else None,
            s.parents,
        )
        for s in steps
    ]
    rows = [
        [
            h.esc(s.name),
            task_link(reader, s.task_id) if s.task_id else '<span class="muted">not run</span>',
            h.status(s.status),
            h.duration(s.seconds),
            h.esc(", ".join(s.parents)),
        ]
        for s in steps
    ]
    info = [
        ["Status", h.status(task.get("status"))],
        ["Started", h.when(task.get("started"))],
        ["Duration", h.duration(task_seconds(task))],
        ["Tags", h.tags(task.get("tags"))],
        ["Controller", h.link(experiment_href(task), "details, log, parameters")],
    ]
    live = _live_status(task, steps)
    body = (
        f"<h1>{h.esc(task.get('name'))} {h.status(task.get('status'))}</h1>"
        + (live_notice(live) if live else "")
        + h.table(["Field", "Value"], info, css="info")
        + "<h2>Steps</h2>"
        + svg_graph(nodes)
        + h.table(["Step", "Experiment", "Status", "Duration", "Parents"], rows)
    )
    return h.page(str(task.get("name") or task_id), body, refresh=REFRESH_SECONDS if live else None)


def _live_status(controller: Document, steps: list[PipelineStep]) -> str | None:
    """The state that keeps a pipeline page reloading: the controller's, else a step's; None when done."""
    states = [str(controller.get("status")), *(s.status for s in steps)]
    return next((state for state in states if is_live(state)), None)


# --- serving ------------------------------------------------------------------------------------------


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
                h.esc(item.get("preprocess_artifact", "")),
            ]
        )
    return h.table(["Endpoint", "Engine", "Model", "Version", "Preprocess artifact"], rows)


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
