"""What the web view reads from the store, in the shapes its pages show: experiments with their durations and
last metrics, dataset lineage and file lists, pipeline step graphs, clearml-serving configuration. Reading
only: nothing here changes a document."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clearml_local.state.tasks import IN_PROGRESS
from clearml_local.storage import Document, Store
from clearml_local.webview.files import PREFIX, FileLinks
from clearml_local.webview.html import seconds_between

LOG_LINES = 10_000
SERVING_OBJECTS = ("endpoints", "canary", "model_monitoring", "metric_logging")
# HOCON that could read files or the environment when parsed is shown as text, never parsed.
_UNSAFE_HOCON = re.compile(r"\binclude\b|\$\{")


class NotFound(Exception):
    """A page for an id or a route that does not exist (a 404 page)."""


@dataclass(frozen=True)
class Reader:
    """Read access to one store for the pages (and, when given, to the file server's objects)."""

    store: Store
    files: FileLinks | None = None

    def href(self, uri: Any) -> str | None:
        """A stored URI as a link target: the view's own path of an object on this backend's file server,
        other http(s) URIs as they are, nothing for any other scheme (a ``javascript:`` URI is no link)."""
        if not isinstance(uri, str) or not uri.lower().startswith(("http://", "https://")):
            return None
        own = self.files.view_path(uri) if self.files else None
        return own or uri

    def is_own_file(self, href: str | None) -> bool:
        """Whether a link target is served by the view itself (so a page may show it inline)."""
        return self.files is not None and isinstance(href, str) and href.startswith(PREFIX)

    def frame_href(self, href: str | None) -> str | None:
        """Where the view frames an HTML page it serves (``href`` from ``href``), else None."""
        return self.files.frame_path(href) if self.files is not None and self.is_own_file(href) else None

    def task(self, task_id: str) -> Document:
        doc = self.store.peek("tasks", task_id)
        if doc is None:
            raise NotFound(f"No experiment with id {task_id}")
        return doc

    def model(self, model_id: str) -> Document:
        doc = self.store.peek("models", model_id)
        if doc is None:
            raise NotFound(f"No model with id {model_id}")
        return doc

    def project(self, project_id: str) -> Document | None:
        """The project of a route; ``*`` (all projects) is None. An unknown id is a 404."""
        if project_id == "*":
            return None
        doc = self.store.peek("projects", project_id)
        if doc is None:
            raise NotFound(f"No project with id {project_id}")
        return doc

    def project_name(self, project_id: Any) -> str:
        doc = self.store.peek("projects", project_id) if isinstance(project_id, str) else None
        return str(doc.get("name", "")) if doc else ""

    def tasks(self) -> list[Document]:
        return self.store.all("tasks")

    def tasks_of(self, kind: Callable[[Document], bool], project_id: str | None) -> list[Document]:
        """The tasks of one kind (datasets, pipeline runs...) in a route's project (all: None or ``*``)."""
        project = self.project(project_id) if project_id else None
        return [t for t in self.tasks() if kind(t) and (project is None or t.get("project") == project_id)]

    def models(self) -> list[Document]:
        return self.store.all("models")

    def projects(self) -> list[Document]:
        return self.store.all("projects")

    def count_events(self, task_id: str, kind: str) -> int:
        return self.store.count_events(task_id, [kind])

    def events(self, task_id: str, kind: str, limit: int | None = None) -> list[Document]:
        if limit is None:
            return [event for _, event in self.store.query_events([task_id], [kind], order="seq")]
        newest = self.store.query_events([task_id], [kind], order="seq DESC", limit=limit)
        return [event for _, event in reversed(newest)]


def task_seconds(task: Document) -> float | None:
    """How long a task ran (until now's last update while it still runs)."""
    end = task.get("completed") or (task.get("last_update") if task.get("status") == IN_PROGRESS else None)
    return seconds_between(task.get("started"), end)


def last_metrics(task: Document) -> list[tuple[str, str, Any]]:
    """(metric, variant, last value) of a task, sorted by name."""
    found = []
    for variants in (task.get("last_metrics") or {}).values():
        if isinstance(variants, dict):
            for entry in variants.values():
                if isinstance(entry, dict):
                    found.append(
                        (str(entry.get("metric", "")), str(entry.get("variant", "")), entry.get("value"))
                    )
    return sorted(found, key=lambda item: (item[0], item[1]))


def has_tag(doc: Document, tag: str) -> bool:
    return tag in (doc.get("system_tags") or [])


def is_dataset(task: Document) -> bool:
    return has_tag(task, "dataset") and task.get("type") == "data_processing"


def is_pipeline(task: Document) -> bool:
    return has_tag(task, "pipeline") and task.get("type") == "controller"


def is_serving(task: Document) -> bool:
    return has_tag(task, "serving-control-plane")


def configuration_value(task: Document, name: str) -> str | None:
    item = (task.get("configuration") or {}).get(name)
    value = item.get("value") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def json_object(text: str | None) -> dict[str, Any]:
    """A stored JSON object, or {} for anything else (stored data is not trusted to be well formed)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class DatasetVersion:
    task_id: str
    name: str
    version: str
    parents: list[str]


def dataset_lineage(task: Document) -> list[DatasetVersion]:
    """The versions a dataset is built from and itself, parents first, from its ``Dataset Struct``."""
    struct = json_object(configuration_value(task, "Dataset Struct"))
    by_index = {key: node for key, node in struct.items() if isinstance(node, dict)}
    versions = []
    for node in by_index.values():
        parents = [by_index[p].get("job_id") for p in node.get("parents") or [] if p in by_index]
        versions.append(
            DatasetVersion(
                str(node.get("job_id", "")),
                str(node.get("name", "")),
                str(node.get("version", "")),
                [str(p) for p in parents if p],
            )
        )
    return versions


def dataset_files(task: Document) -> list[tuple[str, str, str]]:
    """(file name, size in bytes, hash) rows of a dataset's ``Dataset Content`` preview."""
    text = configuration_value(task, "Dataset Content")
    if not text:
        return []
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    return [
        (row[0], row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "") for row in rows[1:] if row
    ]


@dataclass(frozen=True)
class PipelineStep:
    name: str
    parents: list[str]
    task_id: str
    status: str
    seconds: float | None


def pipeline_steps(controller: Document, reader: Reader) -> list[PipelineStep]:
    """The steps of a pipeline run from its ``Pipeline`` configuration, with each step task's own status."""
    nodes = json_object(configuration_value(controller, "Pipeline"))
    steps = []
    for name, node in nodes.items():
        if not isinstance(node, dict):
            continue
        task_id = str(node.get("executed") or node.get("job_id") or "")
        task = reader.store.peek("tasks", task_id) if task_id else None
        state = str((task or {}).get("status") or node.get("status") or "pending")
        seconds = task_seconds(task) if task else _node_seconds(node)
        parents = [str(p) for p in node.get("parents") or [] if isinstance(p, str)]
        steps.append(PipelineStep(str(name), parents, task_id if task else "", state, seconds))
    return steps


def _node_seconds(node: dict[str, Any]) -> float | None:
    started, ended = node.get("job_started"), node.get("job_ended")
    if isinstance(started, int | float) and isinstance(ended, int | float):
        return max(0.0, float(ended) - float(started))
    return None


def serving_config(task: Document) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """Each clearml-serving configuration object: its text and, when it is safe to parse, its contents."""
    found = {}
    for name in SERVING_OBJECTS:
        text = configuration_value(task, name) or ""
        found[name] = (text, parse_hocon(text))
    return found


def parse_hocon(text: str) -> dict[str, Any] | None:
    """clearml-serving's HOCON as plain data; None when it cannot or must not be parsed."""
    if not text.strip():
        return {}
    if _UNSAFE_HOCON.search(text) or len(text) > 1_000_000:
        return None
    from clearml.utilities.pyhocon import ConfigFactory

    try:
        with warnings.catch_warnings():  # the vendored pyhocon calls pyparsing's deprecated names
            warnings.simplefilter("ignore", DeprecationWarning)
            parsed = ConfigFactory.parse_string(text, resolve=False).as_plain_ordered_dict()
    except Exception:  # pyhocon raises many kinds; unparsable text is simply shown as text
        return None
    return json_object(json.dumps(parsed, default=str))
