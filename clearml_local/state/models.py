"""Models: registered model documents (weights live on the file server, the document keeps the URI)."""

from __future__ import annotations

from typing import Any

from clearml_local.errors import BadRequest, InvalidModelId, ModelIsPublished
from clearml_local.state.base import Collection, new_id, now_iso
from clearml_local.state.tasks import COMPLETED, STOPPED
from clearml_local.storage import Document

EDITABLE = (
    "uri",
    "name",
    "comment",
    "tags",
    "system_tags",
    "framework",
    "design",
    "labels",
    "ready",
    "project",
    "parent",
    "task",
)
# What a published model keeps: its weights and what describes them.
FROZEN_WHEN_PUBLISHED = ("uri", "design", "labels")


def metadata_items(items: Any) -> dict[str, dict[str, Any]]:
    """``{key: {key, type, value}}`` from the list (or mapping) of metadata items a request carries."""
    if items is None:
        return {}
    if isinstance(items, dict):
        items = list(items.values())
    out = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("key"):
            raise BadRequest("Validation error: every metadata item needs a 'key'")
        out[item["key"]] = {"key": item["key"], "type": item.get("type") or "str", "value": item.get("value")}
    return out


class ModelBackend(Collection):
    collection = "models"
    missing = InvalidModelId

    def new_document(self, fields: dict[str, Any]) -> Document:
        stamp = now_iso()
        project = fields.get("project")
        if not project and fields.get("task"):
            task = self.store.peek("tasks", fields["task"])
            project = task.get("project") if task else None
        return {
            "id": new_id(),
            "name": fields.get("name") or "",
            "user": self.state.identity.user_id,
            "company": self.state.identity.company_id,
            "created": stamp,
            "last_update": stamp,
            "task": fields.get("task"),
            "parent": fields.get("parent"),
            "project": self.state.projects.check_id(project),
            "comment": fields.get("comment") or "",
            "tags": fields.get("tags") or [],
            "system_tags": fields.get("system_tags") or [],
            "framework": fields.get("framework"),
            "design": fields.get("design") or {},
            "labels": fields.get("labels") or {},
            "uri": fields.get("uri"),
            "ready": bool(fields.get("ready", False)),
            "metadata": metadata_items(fields.get("metadata")),
            "last_iteration": fields.get("iteration") or 0,
        }

    def create(self, fields: dict[str, Any]) -> str:
        with self.store.transaction():
            model = self.new_document(fields)
            self.store.put(self.collection, model)
        return str(model["id"])

    def edit(self, model_id: Any, fields: dict[str, Any], force: bool = False) -> dict[str, Any]:
        """Change fields; a published model's weights, design and labels stay unless ``force``."""

        def apply(model: Document) -> dict[str, Any]:
            frozen = [k for k in FROZEN_WHEN_PUBLISHED if k in fields and fields[k] != model.get(k)]
            if model.get("ready") and frozen and not force:
                raise ModelIsPublished(model["id"], f"its {', '.join(frozen)} cannot change")
            changed = {k: fields[k] for k in EDITABLE if k in fields}
            if "project" in changed:
                changed["project"] = self.state.projects.check_id(changed["project"])
            if "metadata" in fields:
                changed["metadata"] = metadata_items(fields["metadata"])
            if fields.get("iteration") is not None:
                changed["last_iteration"] = fields["iteration"]
            model.update(changed)
            return changed

        return self.change(model_id, apply, "model")

    def update_for_task(self, task_id: str, fields: dict[str, Any]) -> tuple[str, bool, dict[str, Any]]:
        """The task's output model, ``override_model_id`` or a new one: (model id, created, fields)."""
        with self.store.transaction():
            task = self.state.tasks.view(task_id)
            name = fields.get("name") or task["name"]
            override = fields.get("override_model_id")
            if override:
                self.view(override, "override_model_id")
                model_id, created = override, False
            else:
                model_id = self.create({**fields, "name": name, "project": task.get("project")})
                created = True
            changes = {k: v for k, v in fields.items() if k in ("uri", "comment", "tags", "system_tags")}
            changed = self.edit(model_id, changes)
            self.state.tasks.set_model(task_id, "output", name, model_id)
        return model_id, created, changed

    def mark_ready(self, model_id: Any) -> bool:
        """Make a model ready (published); False when there is no such model."""
        if not isinstance(model_id, str) or not self.exists(model_id):
            return False
        self.change(model_id, lambda model: model.update(ready=True) or {"ready": True})
        return True

    def publish(self, model_id: str, publish_task: bool) -> dict[str, Any]:
        """The one model publish: ready, and its task published too when asked and finished."""
        with self.store.transaction():
            model = self.view(model_id, "model")
            self.mark_ready(model_id)
            task_id = model.get("task")
            published_task: dict[str, Any] = {}
            task = self.store.peek("tasks", task_id) if isinstance(task_id, str) else None
            if publish_task and task is not None and task["status"] in (COMPLETED, STOPPED):
                fields = self.state.tasks.publish(task_id)
                published_task = {"id": task_id, "data": {"updated": 1, "fields": fields}}
        return {"updated": 1, "published_task": published_task}

    def delete(self, model_id: str, force: bool) -> dict[str, Any]:
        """Delete a model (a published one only with force); tasks stop referring to it."""
        with self.store.transaction():
            model = self.view(model_id, "model")
            if model.get("ready") and not force:
                raise ModelIsPublished(model_id, "delete it with force=true")
            self.store.delete(self.collection, model_id)
            self.state.tasks.forget_model(model_id)
        return {"deleted": True, "url": model.get("uri")}

    def of_task(self, task: Document) -> list[Document]:
        """The models a task made or names as its output."""
        outputs = {ref.get("model") for ref in (task.get("models") or {}).get("output", [])}
        return [m for m in self.all() if m.get("task") == task["id"] or m["id"] in outputs]

    def detach(self, model_id: str) -> None:
        """Cascade of its task's deletion or reset: the model stays, without the task."""
        model = self.store.peek(self.collection, model_id)
        if model is not None:
            self.store.put(self.collection, {**model, "task": None})

    def output_of(self, task_id: str) -> Document:
        outputs = self.state.tasks.view(task_id).get("models", {}).get("output") or []
        if not outputs:
            raise BadRequest(f"No output model for task {task_id}", subcode=InvalidModelId.subcode)
        return self.view(outputs[-1]["model"], "model")

    def set_metadata(self, model_id: str, items: Any, replace: bool) -> None:
        def apply(model: Document) -> dict[str, Any]:
            current = {} if replace else model.get("metadata") or {}
            current.update(metadata_items(items))
            model["metadata"] = current
            return {"metadata": current}

        self.change(model_id, apply, "model")

    def delete_metadata(self, model_id: str, keys: list[str]) -> None:
        def apply(model: Document) -> dict[str, Any]:
            for key in keys:
                model.get("metadata", {}).pop(key, None)
            return {"metadata": model.get("metadata", {})}

        self.change(model_id, apply, "model")

    def move(self, model_ids: list[str], project_id: str | None) -> str | None:
        with self.store.transaction():
            for model_id in model_ids:
                self.edit(model_id, {"project": project_id})
        return project_id

    def in_projects(self, project_ids: set[str]) -> list[Document]:
        return [m for m in self.all() if m.get("project") in project_ids]
