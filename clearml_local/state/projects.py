"""Projects: a tree named by full path (``a/b/.datasets/c``); parents are created implicitly. Deleting a
project deletes or disowns its tasks and models through their collections."""

from __future__ import annotations

from typing import Any

from clearml_local.errors import BadRequest, InvalidProjectId, NameTaken, NotEmpty
from clearml_local.state.base import ARCHIVED, Collection, new_id, now_iso
from clearml_local.storage import Document

NAME_TAKEN_SUBCODE = 701
NOT_EMPTY_SUBCODE = 704
INVALID_NAME_SUBCODE = 403


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
                raise NameTaken("Project", name, NAME_TAKEN_SUBCODE)
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
                    raise NameTaken("Project", new_name, NAME_TAKEN_SUBCODE)
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

    def delete(self, project_id: str, force: bool, delete_contents: bool) -> dict[str, Any]:
        """Delete a project and its subprojects: their tasks and models are deleted with
        ``delete_contents``, else (with force) kept without a project."""
        with self.store.transaction():
            ids, tasks, models = self.contents(project_id)
            if (tasks or models) and not (force or delete_contents):
                name = self.view(project_id)["name"]
                raise NotEmpty(
                    f"Project {name!r} has {len(tasks)} tasks and {len(models)} models: use force",
                    NOT_EMPTY_SUBCODE,
                )
            for sub_id in ids:
                self.store.delete(self.collection, sub_id)
            if delete_contents:
                for task in tasks:
                    self.state.tasks.delete(task["id"], force=True)
                for model in models:
                    self.state.models.delete(model["id"], force=True)
            else:
                self.state.tasks.move([t["id"] for t in tasks], None)
                self.state.models.move([m["id"] for m in models], None)
        disowned = 0 if delete_contents else len(tasks)
        deleted_tasks, deleted_models = (len(tasks), len(models)) if delete_contents else (0, 0)
        return {
            "deleted": len(ids),
            "disassociated_tasks": disowned,
            "deleted_tasks": deleted_tasks,
            "deleted_models": deleted_models,
        }

    def validate_delete(self, project_id: str) -> dict[str, int]:
        _, tasks, models = self.contents(project_id)
        return {
            "tasks": len(tasks),
            "non_archived_tasks": sum(1 for t in tasks if ARCHIVED not in (t.get("system_tags") or [])),
            "models": len(models),
            "non_archived_models": sum(1 for m in models if ARCHIVED not in (m.get("system_tags") or [])),
        }

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

    def task_parents(self) -> list[dict[str, str]]:
        parent_ids = {t.get("parent") for t in self.state.tasks.all() if t.get("parent")}
        parents = [self.store.peek("tasks", pid) for pid in parent_ids]
        return [{"id": p["id"], "name": p["name"]} for p in parents if p]
