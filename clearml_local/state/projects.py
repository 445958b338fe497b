"""Projects: a tree named by full path (``a/b/.datasets/c``); parents are created implicitly. Deleting a
project deletes or disowns its tasks and models through their collections."""

from __future__ import annotations

from typing import Any, ClassVar

from clearml_local.errors import BadRequest, InvalidProjectId, NameTaken, NotEmpty
from clearml_local.query import build_filter, natural_key, pattern_search
from clearml_local.state.base import ARCHIVED, Collection, new_id, now_iso
from clearml_local.storage import Document

INVALID_NAME_SUBCODE = 407
CANNOT_UPDATE_LOCATION, SAME_SOURCE_AND_DESTINATION, MOVED_UNDER_ITSELF, MERGED_INTO_CHILD = (
    408,
    410,
    411,
    412,
)
# Why a project cannot be deleted without force: the real server's subcodes.
HAS_TASKS, HAS_MODELS, HAS_DATASETS, HAS_PIPELINES = 402, 405, 406, 413
DATASET_TAG, PIPELINE_TAG = "dataset", "pipeline"
# The folders the SDK keeps dataset and pipeline projects in (not themselves datasets or pipelines).
DATASETS_FOLDER, PIPELINES_FOLDER = ".datasets", ".pipelines"


def normalize(name: str) -> str:
    """The full path without spaces around its parts; 400 for an empty part (``/``, ``a//b``: the real
    server drops empty parts, this backend refuses what is most likely a mistake)."""
    parts = [p.strip() for p in name.split("/")]
    if not all(parts):
        raise BadRequest(f"Invalid project name {name!r}: empty path component", subcode=INVALID_NAME_SUBCODE)
    return "/".join(parts)


def location(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""


class ProjectBackend(Collection):
    collection = "projects"
    missing = InvalidProjectId
    references: ClassVar[dict[str, str]] = {"parent": "projects", "user": "users"}

    def check_id(self, project_id: Any) -> str | None:
        """The one project-id check: None for no project, the id when it exists, else 400."""
        if project_id in (None, ""):
            return None
        if not isinstance(project_id, str) or not self.exists(project_id):
            raise InvalidProjectId(project_id)
        return project_id

    def find(self, name: str) -> Document | None:
        return next((doc for doc in self.all() if doc["name"] == name), None)

    def ensure(self, name: str, **fields: Any) -> str:
        """The id of the project with this full path, creating it and its parents as needed."""
        name = normalize(name)
        existing = self.find(name)
        if existing:
            return str(existing["id"])
        parent_id = self.ensure(name.rsplit("/", 1)[0]) if "/" in name else None
        stamp = now_iso()
        doc: Document = {
            "id": new_id(),
            "name": name,
            "basename": name.rsplit("/", 1)[-1],
            "description": fields.get("description") or "",
            "user": self.state.identity.user_id,
            "company": self.state.identity.company_id,
            "created": stamp,
            "last_update": stamp,
            "tags": fields.get("tags") or [],
            "system_tags": fields.get("system_tags") or [],
            "default_output_destination": fields.get("default_output_destination"),
            "parent": parent_id,
        }
        self.store.put(self.collection, doc)
        return str(doc["id"])

    def create(self, name: str, fields: dict[str, Any]) -> str:
        name = normalize(name)
        with self.store.transaction():
            if self.find(name):
                raise NameTaken("Project", name)
            return self.ensure(name, **fields)

    def update(self, project_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change a project's fields; a new name must keep its location (``move`` changes that) and renames
        its subprojects too."""
        with self.store.transaction():
            doc = self.load(project_id, "project")
            changed = {
                k: fields[k]
                for k in ("description", "tags", "system_tags", "default_output_destination")
                if k in fields
            }
            old_name = doc["name"]
            if fields.get("name"):
                new_name = normalize(fields["name"])
                if location(new_name) != location(old_name):
                    raise BadRequest(
                        f"Cannot update project location to {new_name!r}: use projects.move",
                        subcode=CANNOT_UPDATE_LOCATION,
                    )
                if new_name != old_name and self.find(new_name):
                    raise NameTaken("Project", new_name)
                changed["name"], changed["basename"] = new_name, new_name.rsplit("/", 1)[-1]
            doc.update(changed)
            self.save(doc)
            if doc["name"] != old_name:
                self._rename_descendants(old_name, doc["name"])
        return changed

    def _rename_descendants(self, old_name: str, new_name: str) -> int:
        renamed = 0
        for child in self.all():
            if child["name"].startswith(old_name + "/"):
                self.save({**child, "name": new_name + child["name"][len(old_name) :]})
                renamed += 1
        return renamed

    def move(self, project_id: str, new_location: str | None) -> int:
        """Put a project (with its subprojects) under another location, created as needed; how many moved."""
        with self.store.transaction():
            doc = self.load(project_id, "project")
            parent_id = self.ensure(new_location) if new_location and normalize(new_location) else None
            if parent_id == doc["id"] or (parent_id and parent_id in self.descendants(doc["id"])):
                raise BadRequest(
                    f"Project {project_id} cannot be moved under itself", subcode=MOVED_UNDER_ITSELF
                )
            return self._reposition(doc, parent_id)

    def _reposition(self, doc: Document, parent_id: str | None) -> int:
        parent = self.store.peek(self.collection, parent_id) if parent_id else None
        old_name = doc["name"]
        new_name = "/".join(filter(None, ((parent or {}).get("name"), doc["basename"])))
        if new_name != old_name and self.find(new_name):
            raise NameTaken("Project", new_name)
        self.save({**doc, "name": new_name, "parent": parent_id})
        return 1 + self._rename_descendants(old_name, new_name)

    def merge(self, source_id: str, destination_id: str | None) -> tuple[int, int]:
        """Move the unarchived tasks and models and the subprojects of a project into another, and delete
        it. (moved entities, moved subprojects)"""
        if source_id == destination_id:
            raise BadRequest(
                "Project source and destination are the same", subcode=SAME_SOURCE_AND_DESTINATION
            )
        with self.store.transaction():
            self.view(source_id, "project")
            if destination_id:
                self.view(destination_id, "destination_project")
                if destination_id in self.descendants(source_id):
                    raise BadRequest("Project cannot be merged into its child", subcode=MERGED_INTO_CHILD)
            entities = 0
            for backend in (self.state.tasks, self.state.models):
                for item in backend.all():
                    if item.get("project") == source_id and ARCHIVED not in (item.get("system_tags") or []):
                        backend.move([item["id"]], destination_id)
                        entities += 1
            children = [p for p in self.all() if p.get("parent") == source_id]
            for child in children:
                self._reposition(child, destination_id)
            self.store.delete(self.collection, source_id)
        return entities, len(children)

    def descendants(self, project_id: str) -> set[str]:
        """The project and all its subprojects."""
        root = self.store.peek(self.collection, project_id)
        if root is None:
            return {project_id}
        prefix = root["name"] + "/"
        return {project_id} | {p["id"] for p in self.all() if p["name"].startswith(prefix)}

    def under(self, doc: Document, parent_ids: set[str], shallow: bool) -> bool:
        if shallow:
            return doc.get("parent") in parent_ids
        prefixes = [p["name"] + "/" for pid in parent_ids if (p := self.store.peek(self.collection, pid))]
        return any(doc["name"].startswith(prefix) for prefix in prefixes)

    def contents(self, project_id: str) -> tuple[set[str], list[Document], list[Document]]:
        ids = self.descendants(self.view(project_id, "project")["id"])
        return ids, self.state.tasks.in_projects(ids), self.state.models.in_projects(ids)

    def _special(self, ids: set[str], tag: str, folder: str) -> set[str]:
        """The dataset (or pipeline) projects among ``ids``: tagged so, and not the folder holding them."""
        found = (self.store.peek(self.collection, i) for i in ids)
        return {
            p["id"]
            for p in found
            if p and tag in (p.get("system_tags") or []) and p.get("basename") != folder
        }

    def _blockers(self, project_id: str) -> dict[str, Any]:
        """What keeps a project from being deleted without force, counted as ``validate_delete`` does."""
        ids, tasks, models = self.contents(project_id)
        pipelines = self._special(ids, PIPELINE_TAG, PIPELINES_FOLDER)
        datasets = self._special(ids, DATASET_TAG, DATASETS_FOLDER)
        regular = ids - pipelines - datasets
        active = [t for t in tasks if ARCHIVED not in (t.get("system_tags") or [])]
        return {
            "pipelines": len(
                {t["project"] for t in active if t["project"] in pipelines and t["type"] == "controller"}
            ),
            "datasets": len({t["project"] for t in active if t["project"] in datasets}),
            "tasks": sum(1 for t in tasks if t["project"] in regular),
            "non_archived_tasks": sum(1 for t in active if t["project"] in regular),
            "models": sum(1 for m in models if m.get("project") in regular),
            "non_archived_models": sum(
                1
                for m in models
                if m.get("project") in regular and ARCHIVED not in (m.get("system_tags") or [])
            ),
        }

    def delete(self, project_id: str, force: bool, delete_contents: bool) -> dict[str, Any]:
        """Delete a project and its subprojects. Without force, active pipelines, datasets with versions,
        unarchived tasks or models refuse it; their tasks and models are deleted with ``delete_contents``,
        else kept without a project."""
        with self.store.transaction():
            blockers = self._blockers(project_id)
            if not force:
                for count, subcode, what in (
                    ("pipelines", HAS_PIPELINES, "pipelines with active controllers"),
                    ("datasets", HAS_DATASETS, "non-empty datasets"),
                    ("non_archived_tasks", HAS_TASKS, "tasks"),
                    ("non_archived_models", HAS_MODELS, "models"),
                ):
                    if blockers[count]:
                        raise NotEmpty(
                            f"Project {project_id} has {blockers[count]} {what}: use force=true", subcode
                        )
            ids, tasks, models = self.contents(project_id)
            urls: dict[str, list[str]] = {"model_urls": [], "event_urls": [], "artifact_urls": []}
            if delete_contents:
                for model in models:
                    if model.get("uri"):
                        urls["model_urls"].append(model["uri"])
                    self.state.models.delete(model["id"], force=True)
                for task in tasks:
                    reply = self.state.tasks.delete(task["id"], force=True, return_file_urls=True)
                    for key, found in reply["urls"].items():
                        urls[key].extend(found)
            else:
                self.state.tasks.move([t["id"] for t in tasks], None)
                self.state.models.move([m["id"] for m in models], None)
            for sub_id in ids:
                self.store.delete(self.collection, sub_id)
        reply = {
            "deleted": len(ids),
            "disassociated_tasks": 0 if delete_contents else len(tasks),
            "deleted_tasks": len(tasks) if delete_contents else 0,
            "deleted_models": len(models) if delete_contents else 0,
        }
        if delete_contents:
            reply["urls"] = {key: sorted(set(found)) for key, found in urls.items()}
        return reply

    def validate_delete(self, project_id: str) -> dict[str, int]:
        return {**self._blockers(project_id), "reports": 0, "non_archived_reports": 0}

    # --- summaries over the tasks and models of projects ---------------------------------------------------

    def all_tags(
        self,
        kinds: tuple[str, ...],
        project_ids: list[str] | None = None,
        where: dict[str, Any] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Every tag and system tag in use on the ``kinds`` of documents (tasks, models, projects) that
        match the ``where`` filter, within the given projects and their subprojects when given."""
        within = set().union(*(self.descendants(p) for p in project_ids)) if project_ids else None
        wanted = build_filter(where or {})
        backends = {"tasks": self.state.tasks, "models": self.state.models, "projects": self}
        tags: set[str] = set()
        system_tags: set[str] = set()
        for kind in kinds:
            for doc in backends[kind].all():
                place = doc["id"] if kind == "projects" else doc.get("project")
                if (within is not None and place not in within) or not wanted(doc):
                    continue
                tags.update(doc.get("tags") or [])
                system_tags.update(doc.get("system_tags") or [])
        return sorted(tags), sorted(system_tags)

    def _tasks_under(self, project_id: str | None) -> list[Document]:
        if not project_id:
            return self.state.tasks.all()
        return self.state.tasks.in_projects(self.descendants(project_id))

    def metric_variants(
        self, project_id: str | None, task_ids: list[str] | None = None
    ) -> list[dict[str, str]]:
        """The (metric, variant) pairs the tasks of a project (or of all, or the tasks named) reported, with
        their hashes."""
        seen: dict[tuple[str, str], dict[str, str]] = {}
        tasks = self._tasks_under(project_id)
        if task_ids:
            tasks = [task for task in tasks if task["id"] in set(task_ids)]
        for task in tasks:
            for metric_hash, variants in (task.get("last_metrics") or {}).items():
                for variant_hash, entry in variants.items():
                    key = (entry.get("metric", ""), entry.get("variant", ""))
                    seen[key] = {
                        "metric": key[0],
                        "variant": key[1],
                        "metric_hash": metric_hash,
                        "variant_hash": variant_hash,
                    }
        return list(seen.values())

    def hyper_parameter_names(self, project_id: str | None) -> list[dict[str, str]]:
        found: set[tuple[str, str]] = set()
        for task in self._tasks_under(project_id):
            for section, params in (task.get("hyperparams") or {}).items():
                found.update((section, name) for name in params)
        return [{"section": s, "name": n} for s, n in sorted(found)]

    def hyperparam_values(
        self, project_ids: list[str], section: str, name: str, include_subprojects: bool, pattern: str | None
    ) -> list[str]:
        """The distinct values of one hyperparameter over the tasks of projects (or all), in numeric order;
        ``pattern`` keeps those it matches."""
        tasks = self._tasks_in(project_ids, include_subprojects)
        values = {
            str(param.get("value", ""))
            for task in tasks
            if (param := ((task.get("hyperparams") or {}).get(section) or {}).get(name)) is not None
        }
        if pattern:
            matches = pattern_search(pattern, "pattern")
            values = {v for v in values if matches(v)}
        return sorted(values, key=natural_key)

    def task_parents(
        self, project_ids: list[str], include_subprojects: bool, state: str | None, name: str | None
    ) -> list[dict[str, Any]]:
        """The parents of the tasks of projects (or of all), by name: those named like ``name``, of active
        or archived children when ``state`` says, each with its project's id and name."""
        tasks = self._tasks_in(project_ids, include_subprojects)
        if state in ("active", "archived"):
            tasks = [t for t in tasks if (ARCHIVED in (t.get("system_tags") or [])) == (state == "archived")]
        found = (self.store.peek("tasks", pid) for pid in {t.get("parent") for t in tasks if t.get("parent")})
        matches = pattern_search(name, "task_name") if name else None
        parents = [p for p in found if p and (matches is None or matches(p["name"]))]
        replies = []
        for parent in sorted(parents, key=lambda p: p["name"]):
            reply: dict[str, Any] = {"id": parent["id"], "name": parent["name"]}
            project = self.store.peek(self.collection, parent.get("project") or "")
            if project is not None:
                reply["project"] = {"id": project["id"], "name": project["name"]}
            replies.append(reply)
        return replies

    def _tasks_in(self, project_ids: list[str], include_subprojects: bool) -> list[Document]:
        if not project_ids:
            return self.state.tasks.all()
        ids = set(project_ids)
        if include_subprojects:
            ids = set().union(*(self.descendants(p) for p in project_ids))
        return self.state.tasks.in_projects(ids)
