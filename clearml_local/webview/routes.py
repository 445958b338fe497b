"""The web view's routes: ClearML's UI paths (the ones the SDK prints and the lists around them), the JSON the
charts load, and the static scripts. ``WebView.handle`` turns a GET path into a ``Response`` and never raises
for bad input: unknown routes and ids are 404 pages, malformed paths 400."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from clearml_local.storage import Store
from clearml_local.webview import assets, datasets, pages, pipelines, serving
from clearml_local.webview import html as h
from clearml_local.webview.data import NotFound, Reader, json_object
from clearml_local.webview.files import FileLinks, FileNotServed, FileObject

# First path segments that belong to the web view; everything else is the API's.
WEB_ROOTS = frozenset(
    {"", "projects", "datasets", "pipelines", "models", "serving", "webview", "favicon.ico"}
)
MAX_PATH = 2048
MAX_QUERY = 4096
MAX_SEGMENT = 256


SECURITY_HEADERS = {
    # Scripts only from this server: markup that slipped into a page still could not run.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class BadPath(Exception):
    """A path or query the view cannot read (400)."""


def is_web_path(raw_path: str) -> bool:
    """Whether a request path (before ``?``) belongs to the web view rather than the API."""
    first = raw_path.lstrip("/").split("/", 1)[0]
    return first in WEB_ROOTS


BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")  # unquote() leaves such a '%' as it is


def split_path(raw_path: str) -> tuple[str, ...]:
    """The decoded path segments; a 400 for over-long paths, bad percent-encoding or non-UTF-8."""
    if len(raw_path) > MAX_PATH:
        raise BadPath("path too long")
    segments = []
    for part in raw_path.split("/"):
        if not part:
            continue
        if BAD_PERCENT.search(part):
            raise BadPath("bad percent-encoding in the path")
        try:
            text = unquote(part, errors="strict")
        except UnicodeDecodeError:
            raise BadPath("path is not UTF-8") from None
        if len(text) > MAX_SEGMENT or any(ord(c) < 32 for c in text):
            raise BadPath("bad path segment")
        segments.append(text)
    return tuple(segments)


def parse_query(raw_query: str) -> dict[str, str]:
    if len(raw_query) > MAX_QUERY:
        raise BadPath("query string too long")
    try:
        pairs = parse_qsl(raw_query, errors="strict", max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise BadPath("query string cannot be read") from None
    return {key: value[:200] for key, value in pairs}


class WebView:
    """Renders the pages of one store."""

    def __init__(self, store: Store, files: FileLinks | None = None) -> None:
        self.reader = Reader(store, files)

    def serve_files(self, root: Path, url: str) -> None:
        """Link the file server's objects (under ``root``, URIs starting with ``url``) through the view."""
        self.reader = Reader(self.reader.store, FileLinks(root, url))

    def handle(self, raw_path: str, raw_query: str) -> Response:
        try:
            segments = split_path(raw_path)
            query = parse_query(raw_query)
            return self.route(segments, query)
        except BadPath as err:
            return html_response(400, h.error_page(400, f"Bad request: {err}"))
        except (NotFound, FileNotServed) as err:
            return html_response(404, h.error_page(404, str(err)))

    def route(self, s: tuple[str, ...], query: dict[str, str]) -> Response:
        r = self.reader
        handler = _match(s, query, r)
        if handler is None:
            raise NotFound("No page at this address")
        result = handler()
        return result if isinstance(result, Response) else html_response(200, result)


def _match(s: tuple[str, ...], query: dict[str, str], r: Reader) -> Callable[[], Any] | None:
    """The page function of a path (ClearML's UI route shapes), or None."""
    n = len(s)
    if n == 0 or s == ("projects",):
        return lambda: pages.projects_page(r)
    head = s[0]
    if head == "projects" and n == 2:  # ClearML's UI opens a project on its experiments
        return lambda: pages.experiments_page(r, s[1], query)
    if head == "projects" and n >= 3 and s[2] == "experiments":
        if n == 3:
            return lambda: pages.experiments_page(r, s[1], query)
        return lambda: _experiment(r, s[1], s[3], s[4:])
    if head == "projects" and n >= 3 and s[2] == "models":
        if n == 3:
            return lambda: pages.models_page(r, s[1])
        return lambda: pages.model_page(r, s[3])
    if s == ("models",):
        return lambda: pages.models_page(r, "*")
    if head == "datasets":
        return _dataset_route(s, r)
    if head == "pipelines":
        return _pipeline_route(s, r)
    if head == "serving" and n <= 2:
        return (lambda: serving.serving_list_page(r)) if n == 1 else (lambda: serving.serving_page(r, s[1]))
    if head == "webview":
        return _webview_route(s, r)
    return None


def _experiment(r: Reader, project_id: str, task_id: str, rest: tuple[str, ...]) -> str:
    r.project(project_id)  # an unknown project in the address is a 404 too
    return pages.experiment_page(r, task_id, rest)


def _dataset_route(s: tuple[str, ...], r: Reader) -> Callable[[], Any] | None:
    if s == ("datasets",):
        return lambda: datasets.datasets_page(r)
    if len(s) == 4 and s[1] == "simple" and s[3] == "experiments":
        return lambda: datasets.datasets_page(r, s[2])
    if len(s) >= 5 and s[1] == "simple" and s[3] == "experiments":
        return lambda: datasets.dataset_page(r, s[4])
    return None


def _pipeline_route(s: tuple[str, ...], r: Reader) -> Callable[[], Any] | None:
    if s == ("pipelines",):
        return lambda: pipelines.pipelines_page(r)
    if len(s) == 3 and s[2] == "experiments":
        return lambda: pipelines.pipelines_page(r, s[1])
    if len(s) >= 4 and s[2] == "experiments":
        return lambda: pipelines.pipeline_page(r, s[3])
    return None


def _webview_route(s: tuple[str, ...], r: Reader) -> Callable[[], Any] | None:
    if s == ("webview", "static", "view.js"):
        return lambda: Response(200, "text/javascript; charset=utf-8", assets.VIEW_JS.encode())
    if s == ("webview", "static", "plotly.min.js"):
        return _plotly
    if len(s) >= 3 and s[1] == "files" and r.files is not None:
        return lambda: _sent(r.files.lookup(s[2:]))
    if len(s) >= 3 and s[1] == "frames" and r.files is not None:
        return lambda: _sent(r.files.lookup_frame(s[2:]))
    if len(s) == 5 and s[1:3] == ("api", "tasks") and s[4] in ("scalars", "plots"):
        return (lambda: _scalars(r, s[3])) if s[4] == "scalars" else (lambda: _plots(r, s[3]))
    return None


def _plotly() -> Response:
    script = assets.plotly_js()
    if script is None:
        raise NotFound("plotly.js is not installed (pip install the pinned plotly package)")
    return Response(200, "text/javascript; charset=utf-8", script, {"Cache-Control": "max-age=86400"})


def _sent(found: FileObject) -> Response:
    return Response(200, found.content_type, found.path.read_bytes(), found.headers)


def _scalars(r: Reader, task_id: str) -> Response:
    r.task(task_id)
    series: dict[str, dict[str, dict[str, Any]]] = {}
    for event in r.events(task_id, "training_stats_scalar"):
        if event.get("iter") == -(2**31):  # single values ("Summary") are not series
            continue
        metric, variant = str(event.get("metric", "")), str(event.get("variant", ""))
        line = series.setdefault(metric, {}).setdefault(variant, {"name": variant, "x": [], "y": []})
        line["x"].append(event.get("iter", 0))
        line["y"].append(event.get("value"))
    return json_response(series)


def _plots(r: Reader, task_id: str) -> Response:
    r.task(task_id)
    plots = [
        {
            "metric": str(event.get("metric", "")),
            "variant": str(event.get("variant", "")),
            "iter": event.get("iter", 0),
            "figure": json_object(event.get("plot_str") if isinstance(event.get("plot_str"), str) else None),
        }
        for event in r.events(task_id, "plot")
    ]
    return json_response(plots)


def html_response(status: int, text: str) -> Response:
    return Response(status, HTML, text.encode())


def json_response(data: Any) -> Response:
    """JSON for the charts; NaN and infinities (valid in stored events, not in JSON) become null."""
    return Response(200, "application/json", json.dumps(finite(data), default=str).encode())


def finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value
