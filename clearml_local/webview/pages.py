"""The pages of the web view: each function reads the store and returns a page's HTML. Data is escaped where
it is written into markup (``html.esc`` and the helpers around it)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import unquote, urlsplit

from clearml_local.state.tasks import (
    CLOSED,
    COMPLETED,
    CREATED,
    FAILED,
    IN_PROGRESS,
    PUBLISHED,
    QUEUED,
    STOPPED,
)
from clearml_local.storage import Document
from clearml_local.webview import html as h
from clearml_local.webview.data import (
    LOG_LINES,
    NotFound,
    Reader,
    is_dataset,
    is_pipeline,
    last_metrics,
    task_seconds,
)
from clearml_local.webview.files import FRAME_SANDBOX

# While a run is in one of these states its pages reload themselves every REFRESH_SECONDS.
LIVE_STATUSES = frozenset({QUEUED, IN_PROGRESS})
REFRESH_SECONDS = 10
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".gif", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".webm", ".ogv")
AUDIO_SUFFIXES = (".mp3", ".wav", ".ogg", ".oga", ".flac")
STATUSES = (CREATED, QUEUED, IN_PROGRESS, STOPPED, COMPLETED, FAILED, PUBLISHED, CLOSED)  # filter order
TABS = [
    ("overview", "", "Overview"),
    ("configuration", "/configuration", "Configuration"),
    ("artifacts", "/artifacts", "Artifacts & models"),
    ("log", "/output/log", "Console"),
    ("scalars", "/output/metrics/scalar", "Scalars"),
    ("plots", "/output/metrics/plots", "Plots"),
    ("debug", "/output/debugImages", "Debug samples"),
]
# Tab routes of ClearML's UI (the first segments after the experiment id) and the tab each one shows.
TAB_ROUTES = {
    (): "overview",
    ("execution",): "overview",
    ("info-output",): "overview",
    ("general",): "overview",
    ("hyper-params",): "configuration",
    ("configuration",): "configuration",
    ("artifacts",): "artifacts",
    ("output", "log"): "log",
    ("output", "execution"): "overview",
    ("output", "metrics", "scalar"): "scalars",
    ("output", "metrics", "plots"): "plots",
    ("output", "debugImages"): "debug",
}


def tab_of(rest: tuple[str, ...]) -> str:
    """The tab a route names: ClearML's UI adds sub-paths (``hyper-params/hyper-param/_all_``) after some."""
    for length in range(min(len(rest), 3), -1, -1):
        tab = TAB_ROUTES.get(rest[:length])
        if tab is not None and (
            length == len(rest) or rest[0] in ("hyper-params", "configuration", "artifacts")
        ):
            return tab
    raise NotFound("No such experiment tab: /" + "/".join(rest))


def download(reader: Reader, uri: Any) -> str:
    """A download link of a stored URI (through the view for the file server's objects), else its text."""
    href = reader.href(uri)
    return h.link(href, "download") if href else h.esc(uri)


def project_id_of(doc: Document) -> str:
    return str(doc.get("project") or "*")


def task_href(section: str, task: Document, tab_path: str = "") -> str:
    """``/<section>/<project>/experiments/<task>``: ClearML's URL shape of a task's page in a section."""
    return f"/{section}/{h.url_part(project_id_of(task))}/experiments/{h.url_part(task['id'])}{tab_path}"


def experiment_href(task: Document, tab_path: str = "") -> str:
    return task_href("projects", task, tab_path)


def task_link(reader: Reader, task_id: Any) -> str:
    task = reader.store.peek("tasks", task_id) if isinstance(task_id, str) and task_id else None
    if task is None:
        return h.esc(task_id or "")
    if is_dataset(task):
        href = f"/datasets/simple/{h.url_part(project_id_of(task))}/experiments/{h.url_part(task['id'])}"
    elif is_pipeline(task):
        href = f"/pipelines/{h.url_part(project_id_of(task))}/experiments/{h.url_part(task['id'])}"
    else:
        href = experiment_href(task)
    return h.link(href, task.get("name") or task_id)


# --- projects and experiments -------------------------------------------------------------------------


def projects_page(reader: Reader) -> str:
    counts: dict[str, int] = {}
    for task in reader.tasks():
        counts[project_id_of(task)] = counts.get(project_id_of(task), 0) + 1
    visible = [p for p in reader.projects() if "hidden" not in (p.get("system_tags") or [])]
    rows = [
        [
            h.link(f"/projects/{h.url_part(p['id'])}/experiments", p.get("name") or p["id"]),
            str(counts.get(p["id"], 0)),
            h.link(f"/projects/{h.url_part(p['id'])}/models", "models"),
            h.when(p.get("created")),
        ]
        for p in sorted(visible, key=lambda p: str(p.get("name", "")).lower())
    ]
    body = (
        "<h1>Projects</h1>"
        f"<p>{h.link('/projects/*/experiments', 'All experiments')} · {h.link('/models', 'All models')}</p>"
        + h.table(["Project", "Experiments", "Models", "Created"], rows)
    )
    return h.page("Projects", body)


def _filters(query: dict[str, str]) -> str:
    options = "".join(
        f'<option value="{s}"{" selected" if query.get("status") == s else ""}>{s}</option>' for s in STATUSES
    )
    return (
        '<form class="filters" method="get">'
        f'<input name="name" placeholder="name contains" value="{h.esc(query.get("name", ""))}">'
        f'<input name="tag" placeholder="tag" value="{h.esc(query.get("tag", ""))}">'
        f'<select name="status"><option value="">any status</option>{options}</select>'
        '<button type="submit">Filter</button></form>'
    )


def matches(task: Document, query: dict[str, str]) -> bool:
    """The experiments table's filters: name contains (case-insensitive), exact tag, exact status."""
    name, tag, wanted = query.get("name", "").lower(), query.get("tag", ""), query.get("status", "")
    if name and name not in str(task.get("name", "")).lower():
        return False
    if tag and tag not in (task.get("tags") or []):
        return False
    return not wanted or task.get("status") == wanted


def experiments_page(reader: Reader, project_id: str, query: dict[str, str]) -> str:
    project = reader.project(project_id)
    tasks = [
        t for t in reader.tasks() if (project is None or t.get("project") == project_id) and matches(t, query)
    ]
    tasks.sort(key=lambda t: str(t.get("started") or t.get("created") or ""), reverse=True)
    rows = []
    for task in tasks:
        seconds = task_seconds(task)
        metrics = "<br>".join(
            f"{h.esc(m)}/{h.esc(v)}: {h.esc(_number(value))}" for m, v, value in last_metrics(task)[:6]
        )
        rows.append(
            [
                task_link(reader, task["id"]),
                h.esc(task.get("type")),
                h.status(task.get("status")),
                h.tags(task.get("tags")),
                h.when(task.get("started")),
                f'<span data-sort="{seconds if seconds is not None else -1}">{h.duration(seconds)}</span>',
                metrics,
            ]
        )
    title = project.get("name", project_id) if project else "All experiments"
    body = (
        f"<h1>{h.esc(title)}</h1>"
        + _filters(query)
        + h.table(["Name", "Type", "Status", "Tags", "Started", "Duration", "Last metrics"], rows)
    )
    return h.page(str(title), body)


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# --- one experiment ------------------------------------------------------------------------------------


def experiment_header(reader: Reader, task: Document, tab: str, tabs: list[tuple[str, str, str]]) -> str:
    links = " ".join(
        h.link(experiment_href(task, path), label, "on" if key == tab else "") for key, path, label in tabs
    )
    project = reader.project_name(task.get("project"))
    return (
        f'<p class="muted">{h.link(f"/projects/{h.url_part(project_id_of(task))}/experiments", project)}</p>'
        f"<h1>{h.esc(task.get('name'))} {h.status(task.get('status'))}</h1>"
        f'<nav class="tabs">{links}</nav>'
    )


def is_live(status: Any) -> bool:
    return status in LIVE_STATUSES


def live_notice(status: Any) -> str:
    """The line that tells a reader the page reloads itself (and why)."""
    return (
        f'<p class="muted live">Live: this page reloads every {REFRESH_SECONDS} s while the run is '
        f"{h.esc(status)}.</p>"
    )


def experiment_page(reader: Reader, task_id: str, rest: tuple[str, ...]) -> str:
    """One tab of an experiment; a queued or running experiment's page reloads itself."""
    task = reader.task(task_id)
    tab = tab_of(rest)
    content = TAB_PAGES[tab](reader, task)
    header = experiment_header(reader, task, tab, TABS)
    live = is_live(task.get("status"))
    if live:
        header += live_notice(task.get("status"))
    return h.page(
        str(task.get("name") or task_id),
        header + content,
        charts=tab in ("scalars", "plots"),
        refresh=REFRESH_SECONDS if live else None,
    )


def overview(reader: Reader, task: Document) -> str:
    rows = [
        ["ID", h.esc(task["id"])],
        ["Type", h.esc(task.get("type"))],
        ["Status", h.status(task.get("status"))],
        ["Status message", h.esc(task.get("status_message") or task.get("status_reason") or "")],
        ["Tags", h.tags(task.get("tags"))],
        ["System tags", h.tags(task.get("system_tags"))],
        ["Created", h.when(task.get("created"))],
        ["Started", h.when(task.get("started"))],
        ["Completed", h.when(task.get("completed"))],
        ["Duration", h.duration(task_seconds(task))],
        ["Last iteration", h.esc(task.get("last_iteration"))],
        ["Parent", task_link(reader, task.get("parent"))],
        ["Comment", h.esc(task.get("comment") or "")],
    ]
    metrics = [[h.esc(m), h.esc(v), h.esc(_number(value))] for m, v, value in last_metrics(task)]
    return (
        h.table(["Field", "Value"], rows, css="info")
        + "<h2>Last metrics</h2>"
        + h.table(["Metric", "Variant", "Value"], metrics)
    )


def configuration(reader: Reader, task: Document) -> str:
    parts = ["<h2>Hyperparameters</h2>"]
    rows = []
    for section, params in sorted((task.get("hyperparams") or {}).items()):
        for name, param in sorted((params or {}).items()):
            value = param.get("value") if isinstance(param, dict) else param
            rows.append([h.esc(section), h.esc(name), h.esc(value)])
    parts.append(h.table(["Section", "Name", "Value"], rows))
    parts.append("<h2>Configuration objects</h2>")
    for name, item in sorted((task.get("configuration") or {}).items()):
        value = item.get("value") if isinstance(item, dict) else item
        parts.append(f'<h3>{h.esc(name)}</h3><pre class="log">{h.esc(value)}</pre>')
    if not task.get("configuration"):
        parts.append('<p class="muted">none</p>')
    return "".join(parts)


def artifacts(reader: Reader, task: Document) -> str:
    rows = [
        [
            h.esc(a.get("key")),
            h.esc(a.get("type")),
            h.esc(a.get("mode")),
            h.size(a.get("content_size")),
            download(reader, a.get("uri")),
            f"<pre>{h.esc((a.get('type_data') or {}).get('preview', ''))}</pre>",
        ]
        for a in (task.get("execution") or {}).get("artifacts") or []
        if isinstance(a, dict)
    ]
    models = []
    for direction in ("input", "output"):
        for item in (task.get("models") or {}).get(direction) or []:
            model = reader.store.peek("models", item.get("model")) if isinstance(item, dict) else None
            if model is not None:
                models.append(
                    [
                        h.esc(direction),
                        model_link(model),
                        h.esc(model.get("framework")),
                        download(reader, model.get("uri")),
                    ]
                )
    return (
        "<h2>Artifacts</h2>"
        + h.table(["Key", "Type", "Mode", "Size", "File", "Preview"], rows)
        + "<h2>Models</h2>"
        + h.table(["Direction", "Model", "Framework", "File"], models)
    )


def console(reader: Reader, task: Document) -> str:
    """The console log's last ``LOG_LINES`` reports, with a notice when earlier ones are left out."""
    lines = []
    for event in reader.events(task["id"], "log", limit=LOG_LINES):
        stamp = event.get("timestamp")
        prefix = h.esc(_clock(stamp))
        lines.append(f'<span class="muted">{prefix}</span> {h.esc(event.get("msg", ""))}')
    text = "\n".join(lines) if lines else '<span class="muted">no console output</span>'
    total = reader.count_events(task["id"], "log")
    notice = (
        f'<p class="notice" id="truncated">Showing the last {LOG_LINES:,} of {total:,} log reports; '
        f"the {total - LOG_LINES:,} before them are left out.</p>"
        if total > LOG_LINES
        else ""
    )
    return f'{notice}<pre class="log" id="console">{text}</pre>'


def _clock(timestamp: Any) -> str:
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        return ""
    try:
        return dt.datetime.fromtimestamp(timestamp / 1000, dt.UTC).strftime("%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return ""


def _chart_area(kind: str, task: Document) -> str:
    url = f"/webview/api/tasks/{h.url_part(task['id'])}/{kind}"
    return f'<div id="{kind}" data-url="{h.esc(url)}"><p class="muted">loading {kind}…</p></div>'


def scalars(reader: Reader, task: Document) -> str:
    return _chart_area("scalars", task)


def plots(reader: Reader, task: Document) -> str:
    return _chart_area("plots", task)


def debug_samples(reader: Reader, task: Document) -> str:
    """Debug images and media (``report_image`` / ``report_media``), newest iteration first per metric, each
    linked to its file; shown inline when the view serves the file itself (this backend's file server)."""
    by_metric: dict[str, list[Document]] = {}
    for event in reader.events(task["id"], "training_debug_image"):
        by_metric.setdefault(str(event.get("metric", "")), []).append(event)
    if not by_metric:
        return '<p class="muted">no debug samples reported</p>'
    parts = []
    for metric in sorted(by_metric):
        figures = "".join(_sample(reader, event) for event in sorted(by_metric[metric], key=_sample_order))
        parts.append(f'<h2>{h.esc(metric)}</h2><div class="samples">{figures}</div>')
    return "".join(parts)


TAB_PAGES = {
    "overview": overview,
    "configuration": configuration,
    "artifacts": artifacts,
    "log": console,
    "scalars": scalars,
    "plots": plots,
    "debug": debug_samples,
}


def url_path(uri: Any) -> str:
    """The path of a stored URI; "" for anything that is not one (stored data may be malformed)."""
    try:
        return urlsplit(uri).path if isinstance(uri, str) else ""
    except ValueError:
        return ""


def _sample_order(event: Document) -> tuple[int, str]:
    iteration = event.get("iter")
    return (-iteration if isinstance(iteration, int) else 0, str(event.get("variant", "")))


def _sample(reader: Reader, event: Document) -> str:
    """One debug sample: the image, video, audio or HTML page (in a sandboxed frame) itself when the view
    serves it, always a link."""
    href = reader.href(event.get("url"))
    name = unquote(url_path(event.get("url")).rsplit("/", 1)[-1]) or "(no file)"
    suffix = url_path(href).lower() if reader.is_own_file(href) else ""
    if href and suffix.endswith(IMAGE_SUFFIXES):
        shown = f'<a href="{h.esc(href)}"><img src="{h.esc(href)}" alt="{h.esc(event.get("variant"))}"></a>'
    elif href and suffix.endswith(VIDEO_SUFFIXES):
        shown = f'<video controls preload="metadata" src="{h.esc(href)}"></video>'
    elif href and suffix.endswith(AUDIO_SUFFIXES):
        shown = f'<audio controls preload="metadata" src="{h.esc(href)}"></audio>'
    elif frame := reader.frame_href(href):
        shown = (
            f'<iframe class="media" sandbox="{FRAME_SANDBOX}" src="{h.esc(frame)}" '
            f'referrerpolicy="no-referrer" loading="lazy" title="{h.esc(event.get("variant"))}"></iframe>'
        )
    else:
        shown = ""
    target = h.link(href, name) if href else h.esc(name)
    caption = f"{h.esc(event.get('variant'))} · iteration {h.esc(event.get('iter'))} · {target}"
    kind = "sample page" if shown.startswith("<iframe") else "sample"
    return f'<figure class="{kind}">{shown}<figcaption>{caption}</figcaption></figure>'


# --- models -------------------------------------------------------------------------------------------


def model_href(model: Document) -> str:
    return f"/projects/{h.url_part(project_id_of(model))}/models/{h.url_part(model['id'])}"


def model_link(model: Document) -> str:
    return h.link(model_href(model), model.get("name") or model["id"])


def models_page(reader: Reader, project_id: str) -> str:
    project = reader.project(project_id)
    found = [m for m in reader.models() if project is None or m.get("project") == project_id]
    found.sort(key=lambda m: str(m.get("created") or ""), reverse=True)
    rows = [
        [
            model_link(m),
            h.esc(m.get("framework")),
            h.tags(m.get("tags")),
            "published" if m.get("ready") else "draft",
            task_link(reader, m.get("task")),
            h.esc(reader.project_name(m.get("project"))),
            h.when(m.get("created")),
            download(reader, m.get("uri")),
        ]
        for m in found
    ]
    title = f"Models of {project.get('name')}" if project else "Models"
    headers = ["Name", "Framework", "Tags", "State", "Task", "Project", "Created", "File"]
    return h.page(title, f"<h1>{h.esc(title)}</h1>" + h.table(headers, rows))


def model_page(reader: Reader, model_id: str) -> str:
    model = reader.model(model_id)
    metadata = model.get("metadata") or {}
    rows = [
        ["ID", h.esc(model["id"])],
        ["Framework", h.esc(model.get("framework"))],
        ["Tags", h.tags(model.get("tags"))],
        ["State", "published" if model.get("ready") else "draft"],
        ["Task", task_link(reader, model.get("task"))],
        ["Project", h.esc(reader.project_name(model.get("project")))],
        ["Created", h.when(model.get("created"))],
        ["File", download(reader, model.get("uri"))],
        ["Comment", h.esc(model.get("comment") or "")],
    ]
    meta_rows = [
        [h.esc(key), h.esc(item.get("value") if isinstance(item, dict) else item)]
        for key, item in sorted(metadata.items())
    ]
    body = (
        f"<h1>{h.esc(model.get('name'))}</h1>"
        + h.table(["Field", "Value"], rows, css="info")
        + "<h2>Metadata</h2>"
        + h.table(["Key", "Value"], meta_rows)
    )
    return h.page(str(model.get("name") or model_id), body)


# --- serving ------------------------------------------------------------------------------------------
