"""The dataset pages: every dataset version, and one version with its lineage graph and its files."""

from __future__ import annotations

from clearml_local.storage import Document
from clearml_local.webview import html as h
from clearml_local.webview.data import NotFound, Reader, dataset_files, dataset_lineage, is_dataset
from clearml_local.webview.graph import Node, svg_graph
from clearml_local.webview.pages import (
    REFRESH_SECONDS,
    experiment_href,
    is_live,
    live_notice,
    task_href,
    task_link,
)


def dataset_href(task: Document) -> str:
    return task_href("datasets/simple", task)


def datasets_page(reader: Reader, project_id: str | None = None) -> str:
    found = reader.tasks_of(is_dataset, project_id)
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
