"""The state layer, as in moto: one class per collection owning its documents and exposing typed methods
(``TaskBackend.enqueue``, ``ModelBackend.publish``, ...), with the task status transitions in one table and
named exceptions (``clearml_local.errors``) that carry ClearML's result codes. Cascades go from one
collection to another through these methods; the service handlers only turn requests into calls.
"""

from __future__ import annotations

from clearml_local.auth_tokens import Identity
from clearml_local.state.events import EventBackend
from clearml_local.state.models import ModelBackend
from clearml_local.state.projects import ProjectBackend
from clearml_local.state.queues import QueueBackend
from clearml_local.state.tasks import TaskBackend
from clearml_local.state.workers import WorkerBackend
from clearml_local.storage import Store


class State:
    """All collections of one store, seen by one caller (whose id stamps what it changes)."""

    def __init__(self, store: Store, identity: Identity, worker: str | None = None) -> None:
        self.store = store
        self.identity = identity
        self.worker = worker
        self.tasks = TaskBackend(self)
        self.models = ModelBackend(self)
        self.projects = ProjectBackend(self)
        self.queues = QueueBackend(self)
        self.workers = WorkerBackend(self)
        self.events = EventBackend(self)
