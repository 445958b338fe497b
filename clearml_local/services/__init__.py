"""One module per ClearML service; importing this package registers every endpoint."""

from clearml_local.services import auth, events, models, projects, queues, server, tasks, workers

__all__ = ["auth", "events", "models", "projects", "queues", "server", "tasks", "workers"]
