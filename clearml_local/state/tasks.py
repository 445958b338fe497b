"""Tasks: documents, their life cycle (one transition table), hyperparameters, configuration, artifacts and
model references. Cascades to queues, models and events go through those collections."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

from clearml_local.errors import (
    BadRequest,
    InvalidField,
    InvalidTaskId,
    InvalidTaskStatus,
    TaskCannotBeDeleted,
)
from clearml_local.state.base import ARCHIVED, Collection, new_id, now_iso
from clearml_local.storage import Document

CREATED, QUEUED, IN_PROGRESS = "created", "queued", "in_progress"
STOPPED, FAILED, COMPLETED, PUBLISHED, CLOSED = "stopped", "failed", "completed", "published", "closed"
ALL_STATUSES = frozenset({CREATED, QUEUED, IN_PROGRESS, STOPPED, FAILED, COMPLETED, PUBLISHED, CLOSED})


@dataclass(frozen=True)
class Transition:
    target: str
    allowed_from: frozenset[str]
    # the task timestamp the transition sets to now, if any
    stamp: str | None = None


# The task state machine: which status each action leads to and from which statuses it may start without
# force. Finishing actions are open to every unpublished status: clients report completed/failed/stopped
# after whatever the task went through (the pipeline marks a completed step failed, agents stop queued ones).
_UNPUBLISHED = ALL_STATUSES - {PUBLISHED}
TRANSITIONS: dict[str, Transition] = {
    "started": Transition(IN_PROGRESS, frozenset({CREATED, QUEUED, IN_PROGRESS, STOPPED, FAILED}), "started"),
    "completed": Transition(COMPLETED, _UNPUBLISHED, "completed"),
    "failed": Transition(FAILED, _UNPUBLISHED, "completed"),
    "stopped": Transition(STOPPED, _UNPUBLISHED, "completed"),
    "closed": Transition(CLOSED, _UNPUBLISHED, "completed"),
    "publish": Transition(PUBLISHED, frozenset({COMPLETED, STOPPED, PUBLISHED}), "published"),
    "reset": Transition(CREATED, _UNPUBLISHED),
    "enqueue": Transition(QUEUED, frozenset({CREATED, STOPPED, FAILED, QUEUED})),
}
# Leaving a queue (dequeue, queue cleared or deleted) is no transition of the table: the task goes back to
# the status it had when it was enqueued, and a task that is not queued is left as it is.
EDITABLE_STATUSES = frozenset({CREATED, IN_PROGRESS})
# The system tag of a task run from a developer's machine (dropped when it is enqueued for an agent).
DEVELOPMENT = "development"
# The name the real server gives an input model set the old way (execution.model).
INPUT_MODEL_NAME = "Input Model"
# What references to a deleted task or model begin with.
DELETED = "__DELETED__"
# The hyperparameter section editable in any status (user properties).
PROPERTIES_SECTION = "properties"
# The status message that asks the worker running a task to abort it.
STOPPING = "stopping"
# A task whose worker reported within this time is run by a live worker (the real server's default).
WORKER_TASK_TIMEOUT_S = 600
FINISHED = frozenset({COMPLETED, FAILED, STOPPED})

TASK_TYPES = (
    "training",
    "testing",
    "inference",
    "data_processing",
    "application",
    "monitor",
    "controller",
    "optimizer",
    "service",
    "qc",
    "custom",
)
EDITABLE_FIELDS = (
    "name",
    "status",
    "tags",
    "system_tags",
    "type",
    "comment",
    "parent",
    "project",
    "execution",
    "hyperparams",
    "configuration",
    "script",
    "models",
    "container",
    "runtime",
    "output",
)
# Sections every task has, so that SDK code reading e.g. task.data.execution.artifacts never meets None.
EMPTY_SCRIPT = {
    "binary": "python",
    "repository": "",
    "tag": "",
    "branch": "",
    "version_num": "",
    "entry_point": "",
    "working_dir": "",
    "requirements": {},
    "diff": "",
}
EMPTY_EXECUTION = {"parameters": {}, "model_desc": {}, "model_labels": {}, "framework": None, "artifacts": []}


@dataclass(frozen=True)
class Cleanup:
    """What deleting or resetting a task did to its models and children, and the URLs of its outputs."""

    updated_children: int
    updated_models: int
    deleted_models: int
    urls: dict[str, list[str]]


@dataclass(frozen=True)
class ResetResult:
    fields: dict[str, Any]
    dequeued: dict[str, Any]
    cleanup: Cleanup


class TaskBackend(Collection):
    collection = "tasks"
    missing = InvalidTaskId
    references: ClassVar[dict[str, str]] = {
        "project": "projects",
        "parent": "tasks",
        "execution.queue": "queues",
        "user": "users",
    }

    # --- create, edit ---------------------------------------------------------------------------------

    def new_document(self, fields: dict[str, Any]) -> Document:
        """A complete task document from create-request fields (checked, not stored)."""
        stamp = now_iso()
        identity = self.state.identity
        return {
            "id": new_id(),
            "name": fields["name"],
            "user": identity.user_id,
            "company": identity.company_id,
            "type": _task_type(fields.get("type")),
            "status": CREATED,
            "comment": fields.get("comment") or "",
            "created": stamp,
            "started": None,
            "completed": None,
            "active_duration": None,
            "parent": fields.get("parent"),
            "project": self.state.projects.check_id(fields.get("project")),
            "output": {"destination": fields.get("output_dest"), **(fields.get("output") or {})},
            "execution": _with_artifacts({**EMPTY_EXECUTION, **(fields.get("execution") or {})}),
            "container": fields.get("container") or {},
            "models": {"input": [], "output": [], **(fields.get("models") or {})},
            "script": fields.get("script") or dict(EMPTY_SCRIPT),
            "tags": fields.get("tags") or [],
            "system_tags": fields.get("system_tags") or [],
            "status_changed": stamp,
            "status_message": "",
            "status_reason": "",
            "published": None,
            "last_worker": None,
            "last_update": stamp,
            "last_change": stamp,
            "last_changed_by": identity.user_id,
            "last_iteration": 0,
            "last_metrics": {},
            "hyperparams": fields.get("hyperparams") or {},
            "configuration": fields.get("configuration") or {},
            "runtime": fields.get("runtime") or {},
        }

    def create(self, fields: dict[str, Any]) -> str:
        with self.store.transaction():
            task = self.new_document(fields)
            self.store.put(self.collection, task)
        return str(task["id"])

    def edit(self, task_id: str, fields: dict[str, Any], force: bool) -> dict[str, Any]:
        """Replace whole fields (``tasks.edit`` semantics); only created or running tasks without force."""

        def apply(task: Document) -> dict[str, Any]:
            self._require(task, EDITABLE_STATUSES, "edit", force)
            changed = {k: fields[k] for k in EDITABLE_FIELDS if k in fields}
            if "project" in changed:
                changed["project"] = self.state.projects.check_id(changed["project"])
            if "type" in changed:
                changed["type"] = _task_type(changed["type"])
            if "status" in changed and changed["status"] not in ALL_STATUSES:
                raise InvalidField(
                    f"Validation error: field 'status' must be a task status, got {changed['status']!r}"
                )
            if "output_dest" in fields:
                task.setdefault("output", {})["destination"] = fields["output_dest"]
            if "execution" in changed:
                changed["execution"] = _with_artifacts(
                    {"artifacts": task["execution"].get("artifacts", []), **changed["execution"]}
                )
            if "script" in changed:
                changed["script"] = changed["script"] or dict(EMPTY_SCRIPT)
            if "models" in changed:
                changed["models"] = {"input": [], "output": [], **changed["models"]}
            task.update(changed)
            return changed

        return self.change(task_id, apply)

    def update(self, task_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """``tasks.update``: name, tags, comment and project, in any status."""

        def apply(task: Document) -> dict[str, Any]:
            changed = {k: fields[k] for k in ("name", "tags", "system_tags", "comment") if k in fields}
            if "project" in fields:
                changed["project"] = self.state.projects.check_id(fields["project"])
            if "output__error" in fields:
                task.setdefault("output", {})["error"] = fields["output__error"]
            task.update(changed)
            return changed

        return self.change(task_id, apply)

    def set_requirements(self, task_id: str, requirements: dict[str, Any]) -> dict[str, Any]:
        def apply(task: Document) -> dict[str, Any]:
            task["script"]["requirements"] = requirements
            return {"script.requirements": requirements}

        return self.change(task_id, apply)

    def move(self, task_ids: list[str], project_id: str | None) -> str | None:
        project_id = self.state.projects.check_id(project_id)
        with self.store.transaction():
            for task_id in task_ids:
                self.change(task_id, lambda task: task.update(project=project_id) or {"project": project_id})
        return project_id

    # --- life cycle ---------------------------------------------------------------------------------------

    def _require(self, task: Document, allowed: frozenset[str], action: str, force: bool) -> None:
        if task["status"] not in allowed and not force:
            raise InvalidTaskStatus(task["id"], task["status"], action)

    def _move_to(self, task: Document, action: str, reason: str = "", message: str = "") -> dict[str, Any]:
        """Apply one transition of the table to a loaded task (the caller checked it is allowed)."""
        transition = TRANSITIONS[action]
        stamp = now_iso()
        fields: dict[str, Any] = {
            "status": transition.target,
            "status_changed": stamp,
            "status_reason": reason,
            "status_message": message,
        }
        if transition.stamp:
            fields[transition.stamp] = stamp
        if transition.target in FINISHED and task.get("started"):
            fields["active_duration"] = _seconds_since(task["started"])
        if transition.target == QUEUED:
            task["system_tags"] = [t for t in task.get("system_tags") or [] if t != DEVELOPMENT]
        task.update(fields)
        return fields

    def transition(
        self, task_id: str, action: str, force: bool = False, reason: str = "", message: str = ""
    ) -> dict[str, Any]:
        """started/completed/failed/stopped/closed: the table decides; leaving a queue is a cascade."""

        def apply(task: Document) -> dict[str, Any]:
            self._require(task, TRANSITIONS[action].allowed_from, action, force)
            self._leave_queue(task)
            fields = self._move_to(task, action, reason, message)
            if action == "started":
                task["last_worker"] = self.state.worker or task.get("last_worker")
                fields["last_worker"] = task["last_worker"]
            return fields

        return self.change(task_id, apply)

    def complete(
        self, task_id: str, force: bool, publish: bool, reason: str = "", message: str = ""
    ) -> tuple[dict[str, Any], bool]:
        """``tasks.completed``, and its ``publish`` flag: (fields, whether the task was published)."""
        with self.store.transaction():
            fields = self.transition(task_id, "completed", force, reason, message)
            if not publish:
                return fields, False
            return {**fields, **self.publish(task_id, force, reason, message)}, True

    def stop(self, task_id: str, force: bool, reason: str = "") -> dict[str, Any]:
        """The real server's rule: a task a live worker runs (not a development one) is asked to stop (the
        worker sees ``stopping`` and aborts it); any other task, queued ones included, is stopped now."""

        def apply(task: Document) -> dict[str, Any]:
            self._require(task, TRANSITIONS["stopped"].allowed_from, "stop", force)
            if task["status"] == QUEUED:
                self._leave_queue(task, forget=True)
            elif DEVELOPMENT not in (task.get("system_tags") or []) and _run_by_worker(task):
                fields = {"status": task["status"], "status_message": STOPPING, "status_reason": reason}
                task.update(fields)
                return fields
            user = self.state.identity.user_name
            return self._move_to(task, "stopped", reason, f"Stopped by {user}")

        return self.change(task_id, apply)

    def publish(
        self,
        task_id: str,
        force: bool = False,
        reason: str = "",
        message: str = "",
        publish_model: bool = True,
    ) -> dict[str, Any]:
        """The one task publish: the task becomes published and (unless told otherwise) its output models
        ready."""

        def apply(task: Document) -> dict[str, Any]:
            self._require(task, TRANSITIONS["publish"].allowed_from, "publish", force)
            for ref in task["models"].get("output", []) if publish_model else []:
                self.state.models.mark_ready(ref.get("model"))
            return self._move_to(task, "publish", reason, message)

        return self.change(task_id, apply)

    def reset(self, task_id: str, force: bool, reason: str = "", clear_all: bool = False) -> ResetResult:
        """Back to created: out of its queue, without outputs, metrics or events; its draft output models
        are deleted (published ones only lose the task) and the URLs of what it uploaded are listed."""
        with self.store.transaction():
            task = self.load(task_id)
            self._require(task, TRANSITIONS["reset"].allowed_from, "reset", force)
            removed = self._leave_queue(task, forget=True)
            cleanup = self._cleanup(task, force, update_children=False)
            task["execution"]["artifacts"] = [
                a for a in task["execution"].get("artifacts", []) if a.get("mode") == "input"
            ]
            if clear_all:
                task["execution"] = dict(EMPTY_EXECUTION)
                task["script"] = dict(EMPTY_SCRIPT)
            task["models"]["output"] = []
            task["output"] = {"destination": (task.get("output") or {}).get("destination")}
            task.update(last_metrics={}, last_iteration=0, runtime={}, last_worker=None, enqueue_status=None)
            self.state.events.delete_for_task(task["id"])
            fields = self._move_to(task, "reset", reason or "reset", "reset")
            task.update(started=None, completed=None, published=None, active_duration=None)
            self.save(task)
        return ResetResult(fields, {"removed": removed} if removed else {}, cleanup)

    def enqueue(
        self, task_id: str, queue_id: str | None, queue_name: str | None, force: bool
    ) -> dict[str, Any]:
        with self.store.transaction():
            queue = self.state.queues.resolve(queue_id, queue_name)

            def apply(task: Document) -> dict[str, Any]:
                self._require(task, TRANSITIONS["enqueue"].allowed_from, "enqueue", force)
                if task["status"] != QUEUED:
                    task["enqueue_status"] = task["status"]
                self._leave_queue(task)
                self.state.queues.push(queue["id"], task["id"])
                task["execution"]["queue"] = queue["id"]
                return {**self._move_to(task, "enqueue"), "execution.queue": queue["id"]}

            return self.change(task_id, apply)

    def dequeue(self, task_id: str, new_status: str | None = None, reason: str = "") -> dict[str, Any]:
        """Out of its queue, back to the status it had before it was enqueued (or ``new_status``); a task
        that is not queued is left as it is (``{}``). ``execution.queue`` keeps naming the queue, as on the
        real server: clearml-agent dequeues every task it runs (``new_status=in_progress``), and the task
        still records where it ran from."""
        if new_status is not None and new_status not in ALL_STATUSES:
            raise BadRequest(f"Validation error: invalid task status {new_status!r}", subcode=12)

        def apply(task: Document) -> dict[str, Any]:
            if task["status"] not in (QUEUED, IN_PROGRESS):
                return {}
            self._leave_queue(task)
            return self._return_from_queue(task, reason, new_status)

        return self.change(task_id, apply)

    def removed_from_queue(self, task_id: str, queue_id: str, reason: str) -> bool:
        """Cascade of a queue's removal of the task (remove, clear, delete): a task still queued there goes
        back to the status it had before; True when it did."""
        task = self.store.peek(self.collection, task_id)
        if task is None or (task.get("execution") or {}).get("queue") != queue_id:
            return False

        def apply(doc: Document) -> dict[str, Any]:
            doc["execution"]["queue"] = None
            return self._return_from_queue(doc, reason)

        self.change(task_id, apply)
        return True

    def ping(self, task_id: str) -> None:
        """The task is alive: its ``last_update`` is now."""
        self.change(task_id, lambda task: {}, "task")

    def archive(self, task_id: str, reason: str = "", message: str = "") -> dict[str, Any]:
        """Archive as the real server does: out of its queue (a queued task back to its status before, a
        running one stopped), the reason and message recorded, the ``archived`` system tag added."""

        def apply(task: Document) -> dict[str, Any]:
            fields: dict[str, Any] = {}
            if task["status"] in (QUEUED, IN_PROGRESS):
                self._leave_queue(task, forget=True)
                aborted = STOPPED if task["status"] == IN_PROGRESS else None
                fields = self._return_from_queue(task, reason, aborted)
            tags = [t for t in task.get("system_tags") or [] if t != ARCHIVED]
            task.update(status_message=message, status_reason=reason, system_tags=[*tags, ARCHIVED])
            return {
                **fields,
                "status_message": message,
                "status_reason": reason,
                "system_tags": task["system_tags"],
            }

        return self.change(task_id, apply, "task")

    def set_execution_queue(self, task_id: str, queue_id: str) -> None:
        def apply(task: Document) -> dict[str, Any]:
            task["execution"]["queue"] = queue_id
            return {"execution.queue": queue_id}

        self.change(task_id, apply)

    def worker_report(self, task_id: str, worker_id: str) -> Document | None:
        """A worker reported it runs the task: it is the task's ``last_worker`` (see ``tasks.stop``)."""
        if not isinstance(task_id, str) or not self.exists(task_id):
            return None

        def apply(task: Document) -> dict[str, Any]:
            task.update(last_worker=worker_id, last_worker_report=now_iso())
            return {"last_worker": worker_id}

        self.change(task_id, apply)
        return self.view(task_id)

    def _return_from_queue(
        self, task: Document, reason: str, new_status: str | None = None
    ) -> dict[str, Any]:
        stamp = now_iso()
        fields = {
            "status": new_status or task.get("enqueue_status") or CREATED,
            "status_changed": stamp,
            "status_reason": reason,
            "status_message": "",
        }
        task.update(fields, enqueue_status=None)
        return fields

    def _leave_queue(self, task: Document, forget: bool = False) -> int:
        """Take the task out of its queue's entries (how many); ``execution.queue`` keeps naming the queue
        it ran from unless ``forget`` (dequeue, reset)."""
        queue_id = (task.get("execution") or {}).get("queue")
        removed = self.state.queues.remove(queue_id, task["id"]) if queue_id else 0
        if forget:
            task["execution"]["queue"] = None
        return removed

    # --- clone, delete -------------------------------------------------------------------------------

    def clone(self, source_id: str, options: dict[str, Any]) -> tuple[str, dict[str, str] | None]:
        """A new created task from ``source_id`` with the ``new_task_*`` overrides, as the real server makes
        it: the source is its parent unless the source has one, its development and archived tags are not
        copied, an overriding input model must exist (and with ``validate_references`` every reference must).
        (id, new project)"""
        with self.store.transaction():
            source = self.load(source_id)
            project, new_project = options.get("new_task_project") or source.get("project"), None
            if not options.get("new_task_project") and options.get("new_project_name"):
                project = self.state.projects.ensure(options["new_project_name"])
                new_project = {"id": project, "name": options["new_project_name"]}
            overrides = dict(options.get("execution_overrides") or {})
            input_models = options.get("new_task_input_models")
            execution_model = overrides.pop("model", None)
            if not input_models and execution_model:
                input_models = [{"name": INPUT_MODEL_NAME, "model": execution_model}]
            execution = copy.deepcopy(source.get("execution") or {})
            execution.update(overrides)
            execution["queue"] = None
            execution["artifacts"] = [a for a in execution.get("artifacts", []) if a.get("mode") == "input"]
            if isinstance(execution.get("model_labels"), dict):
                execution["model_labels"] = {k: int(v) for k, v in execution["model_labels"].items()}
            models = {"input": copy.deepcopy(input_models or source["models"].get("input", [])), "output": []}
            self._check_references(
                models["input"] if options.get("validate_references") or input_models else [],
                options.get("new_task_parent") if not options.get("validate_references") else None,
            )
            source_parent = source.get("parent")
            fields = {
                "name": options.get("new_task_name") or source["name"],
                "type": source["type"],
                "comment": options.get("new_task_comment") or source.get("comment"),
                "tags": options.get("new_task_tags") or source.get("tags"),
                "system_tags": options.get("new_task_system_tags")
                or [t for t in source.get("system_tags") or [] if t not in (DEVELOPMENT, ARCHIVED)],
                "parent": options.get("new_task_parent")
                or (
                    source_parent if source_parent and not source_parent.startswith(DELETED) else source["id"]
                ),
                "project": project,
                "execution": execution,
                "models": models,
                "script": source.get("script"),
                "container": options.get("new_task_container") or source.get("container"),
                "hyperparams": options.get("new_task_hyperparams") or source.get("hyperparams"),
                "configuration": options.get("new_task_configuration") or source.get("configuration"),
                "runtime": source.get("runtime") or {},
                "output": {"destination": (source.get("output") or {}).get("destination")},
            }
            if options.get("validate_references") and fields["parent"]:
                self.view(fields["parent"], "parent")
            task = self.new_document(fields)
            self.store.put(self.collection, task)
        return str(task["id"]), new_project

    def _check_references(self, input_models: list[dict[str, Any]], parent: Any) -> None:
        for ref in input_models:
            self.state.models.view(ref.get("model"), "models.input.model")
        if parent:
            self.view(parent, "new_task_parent")

    def delete(self, task_id: str, force: bool, return_file_urls: bool = False) -> dict[str, Any]:
        """Delete a task (only a draft or archived one without force): its queue entry, events and draft
        output models go; published models and children stay without it."""
        with self.store.transaction():
            task = self.load(task_id)
            if task["status"] != CREATED and ARCHIVED not in (task.get("system_tags") or []) and not force:
                raise TaskCannotBeDeleted(task["id"], f"it is {task['status']} (use force=true)")
            self._leave_queue(task)
            cleanup = self._cleanup(task, force)
            self.store.delete(self.collection, task["id"])
            deleted_events = self.state.events.delete_for_task(task["id"])
        reply: dict[str, Any] = {
            "deleted": True,
            "updated_children": cleanup.updated_children,
            "updated_models": cleanup.updated_models,
            "deleted_models": cleanup.deleted_models,
            "events": {"deleted": deleted_events},
        }
        if return_file_urls:
            reply["urls"] = cleanup.urls
        return reply

    def _cleanup(self, task: Document, force: bool, update_children: bool = True) -> Cleanup:
        """What deleting or resetting a task does to what it made (the real server's rules): published
        children or models need force; draft models are deleted unless another task uses them as input."""
        children = [t for t in self.all() if t.get("parent") == task["id"]]
        if not force and any(child["status"] == PUBLISHED for child in children):
            raise TaskCannotBeDeleted(task["id"], "it has published children (use force=true)")
        models = self.state.models.of_task(task)
        published = [m for m in models if m.get("ready")]
        if published and not force:
            raise TaskCannotBeDeleted(task["id"], "it has published output models (use force=true)")
        in_use = {
            ref.get("model")
            for other in self.all()
            if other["id"] != task["id"]
            for ref in (other.get("models") or {}).get("input", [])
        }
        deleted = [m for m in models if not m.get("ready") and m["id"] not in in_use]
        for model in deleted:
            self.state.models.delete(model["id"], force=True)
        deleted_ids = {m["id"] for m in deleted}
        for model in models:
            if model["id"] not in deleted_ids:
                self.state.models.detach(model["id"])
        if update_children:
            for child in children:
                self.store.put(self.collection, {**child, "parent": None})
        artifact_urls = [
            a["uri"]
            for a in (task.get("execution") or {}).get("artifacts", [])
            if a.get("mode", "output") == "output" and a.get("uri")
        ]
        return Cleanup(
            updated_children=len(children) if update_children else 0,
            updated_models=len(published) if update_children else 0,
            deleted_models=len(deleted),
            urls={
                "model_urls": sorted({m["uri"] for m in deleted if m.get("uri")}),
                "event_urls": [],
                "artifact_urls": artifact_urls,
            },
        )

    # --- hyperparameters and configuration ----------------------------------------------------------------

    def _require_editable(self, task: Document, force: bool, sections: list[Any]) -> None:
        """Parameters and configuration change only on a draft task (a running one with force); the
        ``properties`` section in any status."""
        if sections and all(str(section).lower() == PROPERTIES_SECTION for section in sections):
            return
        self._require(task, EDITABLE_STATUSES if force else frozenset({CREATED}), "edit", False)

    def edit_hyper_params(
        self, task_id: str, items: list[dict[str, Any]], replace: str, force: bool = False
    ) -> None:
        def apply(task: Document) -> dict[str, Any]:
            self._require_editable(task, force, [item.get("section") for item in items])
            params = task.setdefault("hyperparams", {})
            if replace == "all":
                params.clear()
            if replace == "section":
                for section in {item.get("section") for item in items}:
                    params.pop(section, None)
            for item in items:
                if not item.get("section"):
                    raise BadRequest("Validation error: every hyperparam needs a 'section'")
                section = params.setdefault(item["section"], {})
                if item.get("name") is None:
                    continue
                entry = {
                    "section": item["section"],
                    "name": item["name"],
                    "value": item.get("value") or "",
                    "type": item.get("type"),
                    "description": item.get("description"),
                }
                section[item["name"]] = {k: v for k, v in entry.items() if v is not None}
            return {"hyperparams": params}

        self.change(task_id, apply)

    def delete_hyper_params(self, task_id: str, items: list[dict[str, Any]], force: bool = False) -> int:
        deleted = 0

        def apply(task: Document) -> dict[str, Any]:
            nonlocal deleted
            self._require_editable(task, force, [item.get("section") for item in items])
            params = task.setdefault("hyperparams", {})
            for item in items:
                section, name = item.get("section"), item.get("name")
                if section in params and name is None:
                    deleted += len(params.pop(section))
                elif section in params and name in params[section]:
                    del params[section][name]
                    deleted += 1
            return {"hyperparams": params}

        self.change(task_id, apply)
        return deleted

    def hyper_params(self, task_id: str) -> list[dict[str, Any]]:
        sections = self.view(task_id, "tasks").get("hyperparams") or {}
        return [dict(param) for section in sections.values() for param in section.values()]

    def edit_configuration(
        self, task_id: str, items: list[dict[str, Any]], replace: bool, force: bool = False
    ) -> None:
        def apply(task: Document) -> dict[str, Any]:
            self._require_editable(task, force, [])
            config = task.setdefault("configuration", {})
            if replace:
                config.clear()
            for item in items:
                if not item.get("name"):
                    raise BadRequest("Validation error: every configuration item needs a 'name'")
                config[item["name"]] = {
                    k: item[k] for k in ("name", "value", "type", "description") if item.get(k) is not None
                }
            return {"configuration": config}

        self.change(task_id, apply)

    def delete_configuration(self, task_id: str, names: list[str], force: bool = False) -> int:
        deleted = 0

        def apply(task: Document) -> dict[str, Any]:
            nonlocal deleted
            self._require_editable(task, force, [])
            config = task.setdefault("configuration", {})
            for name in names:
                deleted += config.pop(name, None) is not None
            return {"configuration": config}

        self.change(task_id, apply)
        return deleted

    def configuration(self, task_id: str) -> dict[str, Any]:
        return dict(self.view(task_id, "tasks").get("configuration") or {})

    # --- artifacts and model references ---------------------------------------------------------------------

    def add_or_update_artifacts(self, task_id: str, items: list[dict[str, Any]]) -> int:
        def apply(task: Document) -> dict[str, Any]:
            current = {_artifact_key(a): a for a in task["execution"].get("artifacts", [])}
            for artifact in _artifacts(items):
                current[_artifact_key(artifact)] = artifact
            task["execution"]["artifacts"] = _artifacts(current.values())
            return {"execution.artifacts": task["execution"]["artifacts"]}

        self.change(task_id, apply)
        return len(items)

    def delete_artifacts(self, task_id: str, items: list[dict[str, Any]]) -> int:
        keys = {_artifact_key(a) for a in _artifacts(items)}
        deleted = 0

        def apply(task: Document) -> dict[str, Any]:
            nonlocal deleted
            current = task["execution"].get("artifacts", [])
            kept = [a for a in current if _artifact_key(a) not in keys]
            deleted = len(current) - len(kept)
            task["execution"]["artifacts"] = kept
            return {"execution.artifacts": kept}

        self.change(task_id, apply)
        return deleted

    def set_model(
        self, task_id: str, kind: str, name: str, model_id: str, iteration: int | None = None
    ) -> None:
        """Point the task's input or output model ``name`` at ``model_id`` (replacing one of that name)."""

        def apply(task: Document) -> dict[str, Any]:
            refs = task["models"].setdefault(kind, [])
            ref = {"name": name, "model": model_id, "updated": now_iso()}
            index = next((i for i, r in enumerate(refs) if r.get("name") == name), None)
            if index is None:
                refs.append(ref)
            else:
                refs[index] = ref  # a model of that name is replaced where it stands
            if iteration is not None:
                task["last_iteration"] = max(task.get("last_iteration") or 0, iteration)
            return {f"models.{kind}": refs}

        self.change(task_id, apply)

    def delete_models(self, task_id: str, items: list[dict[str, Any]]) -> int:
        deleted = 0

        def apply(task: Document) -> dict[str, Any]:
            nonlocal deleted
            for item in items:
                refs = task["models"].setdefault(item.get("type") or "output", [])
                kept = [r for r in refs if r.get("name") != item.get("name")]
                deleted += len(refs) - len(kept)
                refs[:] = kept
            return {"models": task["models"]}

        self.change(task_id, apply)
        return deleted

    def forget_model(self, model_id: str, tombstone: str) -> None:
        """Cascade of a model's deletion: tasks using it as input, and published tasks that made it, name
        ``tombstone`` instead; other tasks drop it from their outputs."""
        for task in self.all():
            refs = task.get("models") or {}
            if not any(
                r.get("model") == model_id for kind in ("input", "output") for r in refs.get(kind, [])
            ):
                continue
            keep_output = task["status"] == PUBLISHED
            models = {
                "input": [
                    {**r, "model": tombstone} if r.get("model") == model_id else r for r in refs["input"]
                ],
                "output": [
                    {**r, "model": tombstone} if r.get("model") == model_id else r
                    for r in refs.get("output", [])
                    if keep_output or r.get("model") != model_id
                ],
            }
            self.store.put(self.collection, {**task, "models": models})

    def using_input_model(self, model_id: str) -> list[str]:
        """The tasks that use a model as input."""
        return [
            t["id"]
            for t in self.all()
            if any(r.get("model") == model_id for r in (t.get("models") or {}).get("input", []))
        ]

    def raise_iteration(self, task_id: str, iteration: int) -> None:
        """The task's ``last_iteration`` rises to ``iteration`` (never falls)."""

        def apply(task: Document) -> dict[str, Any]:
            task["last_iteration"] = max(task.get("last_iteration") or 0, iteration)
            return {"last_iteration": task["last_iteration"]}

        self.change(task_id, apply, "task")

    def in_projects(self, project_ids: set[str]) -> list[Document]:
        return [t for t in self.all() if t.get("project") in project_ids]


def _artifact_key(artifact: dict[str, Any]) -> tuple[str, str]:
    return (str(artifact.get("key")), str(artifact.get("mode") or "output"))


def _artifacts(items: Any) -> list[dict[str, Any]]:
    """Artifacts with their mode (output unless said), one per key and mode, in key order (the real
    server keeps them in a map by key and mode)."""
    by_key = {}
    for item in items or []:
        if not isinstance(item, dict) or not item.get("key"):
            raise InvalidField("Validation error: every artifact needs a 'key'")
        artifact = {**item, "mode": item.get("mode") or "output"}
        by_key[_artifact_key(artifact)] = artifact
    return [by_key[key] for key in sorted(by_key)]


def _with_artifacts(execution: dict[str, Any]) -> dict[str, Any]:
    return {**execution, "artifacts": _artifacts(execution.get("artifacts"))}


def _task_type(value: Any) -> str:
    if value is None:
        return "training"
    if value not in TASK_TYPES:
        raise InvalidField(f"Validation error: field 'type' must be one of {list(TASK_TYPES)}, got {value!r}")
    return str(value)


def _run_by_worker(task: Document) -> bool:
    """A worker reported running the task within ``WORKER_TASK_TIMEOUT_S`` (``workers.status_report``; a
    client's worker header at ``tasks.started`` names ``last_worker`` but is no live worker)."""
    reported = task.get("last_worker_report")
    if not task.get("last_worker") or not reported:
        return False
    return _seconds_since(str(reported), default=WORKER_TASK_TIMEOUT_S) < WORKER_TASK_TIMEOUT_S


def _seconds_since(iso: str, default: int = 0) -> int:
    try:
        begin = dt.datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return default
    return max(0, int((dt.datetime.now(dt.UTC) - begin).total_seconds()))
