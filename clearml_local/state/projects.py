"""Projects: a tree named by full path (``a/b/.datasets/c``); parents are created implicitly. Deleting a
project deletes or disowns its tasks and models through their collections."""

from __future__ import annotations

from typing import Any

from clearml_local.errors import BadRequest, InvalidProjectId, NameTaken, NotEmpty
from clearml_local.query import natural_key, pattern_matches
from clearml_local.state.base import ARCHIVED, Collection, new_id, now_iso
from clearml_local.storage import Document

INVALID_NAME_SUBCODE = 407
# Why a project cannot be deleted without force: the real server's subcodes.
HAS_TASKS, HAS_MODELS, HAS_DATASETS, HAS_PIPELINES = 402, 405, 406, 413
DATASET_TAG, PIPELINE_TAG = "dataset", "pipeline"
# The folders the SDK keeps dataset and pipeline projects in (not themselves datasets or pipelines).
DATASETS_FOLDER, PIPELINES_FOLDER = ".datasets", ".pipelines"


def normalize(name: str) -> str:
    parts = [p.strip() for p in name.split("/")]
    if any(not p for p in parts):
        raise BadRequest(f"Invalid project name {name!r}: empty path component", subcode=INVALID_NAME_SUBCODE)
    return "/".join(parts)


class ProjectBackend(Collection):
    collection = "projects"
    missing = InvalidProjectId

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
        def apply(doc: Document) -> dict[str, Any]:
            changed = {
                k: fields[k]
                for k in ("description", "tags", "system_tags", "default_output_destination")
                if k in fields
            }
            if fields.get("name"):
                new_name = normalize(fields["name"])
                if new_name != doc["name"] and self.find(new_name):
                    raise NameTaken("Project", new_name)
                changed["name"], changed["basename"] = new_name, new_name.rsplit("/", 1)[-1]
            doc.update(changed)
            return changed

        return self.change(project_id, apply, "project")

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

    def all_tags(self) -> tuple[list[str], list[str]]:
        """Every tag and system tag in use on tasks, models and projects."""
        tags: set[str] = set()
        system_tags: set[str] = set()
        for backend in (self.state.tasks, self.state.models, self):
            for doc in backend.all():
                tags.update(doc.get("tags") or [])
                system_tags.update(doc.get("system_tags") or [])
        return sorted(tags), sorted(system_tags)

    def _tasks_under(self, project_id: str | None) -> list[Document]:
        if not project_id:
            return self.state.tasks.all()
        return self.state.tasks.in_projects(self.descendants(project_id))

    def metric_variants(self, project_id: str | None) -> list[dict[str, str]]:
        """The (metric, variant) pairs the tasks of a project (or of all) reported, with their hashes."""
        seen: dict[tuple[str, str], dict[str, str]] = {}
        for task in self._tasks_under(project_id):
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
        if not project_ids:
            tasks = self.state.tasks.all()
        else:
            ids = set(project_ids)
            if include_subprojects:
                ids = set().union(*(self.descendants(p) for p in project_ids))
            tasks = self.state.tasks.in_projects(ids)
        values = {
            str(param.get("value", ""))
            for task in tasks
            if (param := ((task.get("hyperparams") or {}).get(section) or {}).get(name)) is not None
        }
        if pattern:
            values = {v for v in values if pattern_matches(pattern, "pattern", v)}
        return sorted(values, key=natural_key)

    def task_parents(self) -> list[dict[str, str]]:
        parent_ids = {t.get("parent") for t in self.state.tasks.all() if t.get("parent")}
        parents = [self.store.peek("tasks", pid) for pid in parent_ids]
        return [{"id": p["id"], "name": p["name"]} for p in parents if p]
