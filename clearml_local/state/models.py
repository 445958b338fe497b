"""Models: registered model documents (weights live on the file server, the document keeps the URI)."""

from __future__ import annotations

from typing import Any, ClassVar

from clearml_local.errors import (
    BadRequest,
    InvalidModelId,
    InvalidTaskStatus,
    MissingField,
    ModelCreatingTaskExists,
    ModelInUse,
    ModelIsPublished,
)
from clearml_local.state.base import Collection, new_id, now_iso
from clearml_local.state.tasks import CREATED, DELETED, IN_PROGRESS, PUBLISHED
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
    references: ClassVar[dict[str, str]] = {
        "project": "projects",
        "task": "tasks",
        "parent": "models",
        "user": "users",
    }

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
            "last_change": stamp,
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

    def edit(self, model_id: Any, fields: dict[str, Any]) -> dict[str, Any]:
        """Change fields (a published model too, as on the real server); an ``iteration`` raises the
        iteration of the model's task."""

        def apply(model: Document) -> dict[str, Any]:
            changed = {k: fields[k] for k in EDITABLE if k in fields}
            if "project" in changed:
                changed["project"] = self.state.projects.check_id(changed["project"])
            if "metadata" in fields:
                changed["metadata"] = metadata_items(fields["metadata"])
            if fields.get("iteration") is not None:
                changed["last_iteration"] = fields["iteration"]
                task_id = changed.get("task") or model.get("task")
                if task_id:
                    self.state.tasks.raise_iteration(task_id, fields["iteration"])
            model.update(changed)
            return changed

        return self.change(model_id, apply, "model")

    def update_for_task(self, task_id: str, fields: dict[str, Any]) -> tuple[str, bool, dict[str, Any]]:
        """The task's output model: ``override_model_id``, else its last output model updated, else a new
        one made from the task; the task's ``last_iteration`` rises to ``iteration``. (id, created, fields)"""
        uri, override = fields.get("uri"), fields.get("override_model_id")
        if bool(uri) == bool(override):
            raise MissingField("uri' or 'override_model_id (exactly one)")
        with self.store.transaction():
            task = self.state.tasks.view(task_id, "task")
            if task["status"] not in (CREATED, IN_PROGRESS):
                raise InvalidTaskStatus(task_id, task["status"], "update the output model of")
            outputs = (task.get("models") or {}).get("output") or []
            changes = {k: v for k, v in fields.items() if k in ("uri", "comment", "tags", "system_tags")}
            changed: dict[str, Any] = {}
            if override:
                model_id, created = self.view(override, "override_model_id")["id"], False
            elif outputs and self.exists(outputs[-1]["model"]):
                model_id, created = outputs[-1]["model"], False
                changed = self.edit(model_id, {**changes, "name": fields.get("name") or task["name"]})
            else:
                model_id, created = self.create(_model_from_task(task, fields)), True
            self.state.tasks.set_model(
                task_id, "output", fields.get("name") or task["name"], model_id, fields.get("iteration")
            )
        return model_id, created, changed

    def mark_ready(self, model_id: Any) -> bool:
        """Make a model ready (published); False when there is no such model."""
        if not isinstance(model_id, str) or not self.exists(model_id):
            return False
        self.change(model_id, lambda model: model.update(ready=True) or {"ready": True})
        return True

    def publish(self, model_id: str, publish_task: bool, force_publish_task: bool = False) -> dict[str, Any]:
        """The one model publish (once: a ready model is refused); its task is published too when asked,
        which an unfinished task refuses unless ``force_publish_task``."""
        with self.store.transaction():
            model = self.view(model_id, "model")
            if model.get("ready"):
                raise ModelIsPublished(model_id, "it is published already")
            task_id = model.get("task")
            task = self.store.peek("tasks", task_id) if isinstance(task_id, str) else None
            reply: dict[str, Any] = {"updated": 1}
            if publish_task and task is not None and task["status"] != PUBLISHED:
                fields = self.state.tasks.publish(task_id, force_publish_task)
                reply["published_task"] = {"id": task_id, "data": {"updated": 1, "fields": fields}}
            self.mark_ready(model_id)
        return reply

    def delete(self, model_id: str, force: bool) -> dict[str, Any]:
        """Delete a model; without force not one another task uses as input or one its published task
        made. Tasks refer to it as deleted (a draft task simply loses the output reference)."""
        with self.store.transaction():
            model = self.view(model_id, "model")
            users = self.state.tasks.using_input_model(model_id)
            if users and not force:
                raise ModelInUse(model_id, len(users))
            task_id = model.get("task")
            task = self.store.peek("tasks", task_id) if isinstance(task_id, str) else None
            if task is not None and task["status"] == PUBLISHED and not force:
                raise ModelCreatingTaskExists(model_id, task_id)
            self.store.delete(self.collection, model_id)
            self.state.tasks.forget_model(model_id, f"{DELETED}{model_id}")
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

    def frameworks(self, project_ids: set[str] | None) -> list[str]:
        """The frameworks of the models (of these projects)."""
        models = self.all() if project_ids is None else self.in_projects(project_ids)
        return sorted({m["framework"] for m in models if m.get("framework")})

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


def _model_from_task(task: Document, fields: dict[str, Any]) -> dict[str, Any]:
    """A new output model's fields, described by the task (framework, design, labels, input model)."""
    execution = task.get("execution") or {}
    inputs = (task.get("models") or {}).get("input") or []
    return {
        "name": fields.get("name") or task["name"],
        "uri": fields.get("uri"),
        "comment": fields.get("comment") or f"Created by task `{task['name']}` ({task['id']})",
        "tags": fields.get("tags"),
        "system_tags": fields.get("system_tags"),
        "task": task["id"],
        "project": task.get("project"),
        "framework": execution.get("framework"),
        "design": execution.get("model_desc") or {},
        "labels": execution.get("model_labels") or {},
        "parent": inputs[0].get("model") if inputs else None,
        "iteration": fields.get("iteration"),
    }
