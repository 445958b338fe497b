"""The pipeline pages: every run of a pipeline controller, and one run with its step graph."""

from __future__ import annotations

from clearml_local.storage import Document
from clearml_local.webview import html as h
from clearml_local.webview import pages
from clearml_local.webview.data import (
    NotFound,
    PipelineStep,
    Reader,
    is_pipeline,
    pipeline_steps,
    task_seconds,
)
from clearml_local.webview.graph import Node, svg_graph


def pipeline_href(task: Document) -> str:
    return pages.task_href("pipelines", task)


def pipelines_page(reader: Reader, project_id: str | None = None) -> str:
    runs = reader.tasks_of(is_pipeline, project_id)
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
            pages.experiment_href(reader.task(s.task_id)) if s.task_id else None,
            s.parents,
        )
        for s in steps
    ]
    rows = [
        [
            h.esc(s.name),
            pages.task_link(reader, s.task_id) if s.task_id else '<span class="muted">not run</span>',
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
        ["Controller", h.link(pages.experiment_href(task), "details, log, parameters")],
    ]
    live = _live_status(task, steps)
    body = (
        f"<h1>{h.esc(task.get('name'))} {h.status(task.get('status'))}</h1>"
        + (pages.live_notice(live) if live else "")
        + h.table(["Field", "Value"], info, css="info")
        + "<h2>Steps</h2>"
        + svg_graph(nodes)
        + h.table(["Step", "Experiment", "Status", "Duration", "Parents"], rows)
    )
    return h.page(str(task.get("name") or task_id), body, refresh=pages.REFRESH_SECONDS if live else None)


def _live_status(controller: Document, steps: list[PipelineStep]) -> str | None:
    """The state that keeps a pipeline page reloading: the controller's, else a step's; None when done."""
    states = [str(controller.get("status")), *(s.status for s in steps)]
    return next((state for state in states if pages.is_live(state)), None)
