"""ClearML-style API errors: an HTTP status, a result subcode and a message naming the problem.

The state layer raises the named classes below; the HTTP layer turns any ``ApiError`` into an error envelope.
Subcodes are the real server's (its ``apierrors/errors.conf``): 101 invalid task id, 201 invalid model id,
401 invalid project id, 110 invalid task status, 801 a unique name taken, ...
"""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    subcode = 0

    def __init__(self, message: str, status: int | None = None, subcode: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = self.status if status is None else status
        self.subcode = self.subcode if subcode is None else subcode


class BadRequest(ApiError):
    pass


class MissingField(ApiError):
    subcode = 11

    def __init__(self, field: str) -> None:
        super().__init__(f"Validation error: field '{field}' is required")


class InvalidField(ApiError):
    subcode = 12


class InvalidId(ApiError):
    kind = "object"

    def __init__(self, ident: object) -> None:
        super().__init__(f"Invalid {self.kind} id: id={ident}")


class InvalidTaskId(InvalidId):
    kind, subcode = "task", 101


class InvalidModelId(InvalidId):
    kind, subcode = "model", 201


class InvalidProjectId(InvalidId):
    kind, subcode = "project", 401


class InvalidQueueId(InvalidId):
    kind, subcode = "queue", 701


class InvalidWorkerId(InvalidId):
    kind, subcode = "worker", 1001


class InvalidTaskStatus(ApiError):
    subcode = 110

    def __init__(self, task_id: str, status: str, action: str) -> None:
        super().__init__(
            f"Invalid task status: cannot {action} task {task_id}, it is {status} (use force=true)"
        )


class TaskCannotBeDeleted(ApiError):
    subcode = 123

    def __init__(self, task_id: str, why: str) -> None:
        super().__init__(f"Task cannot be deleted: task {task_id}: {why}")


class ModelIsPublished(ApiError):
    """The real server's 'model is ready' (a published model)."""

    subcode = 203

    def __init__(self, model_id: str, what: str) -> None:
        super().__init__(f"Model {model_id} is published: {what}")


class ModelInUse(ApiError):
    subcode = 205

    def __init__(self, model_id: str, tasks: int) -> None:
        super().__init__(f"Model {model_id} is the input of {tasks} tasks: delete it with force=true")


class ModelCreatingTaskExists(ApiError):
    subcode = 206

    def __init__(self, model_id: str, task_id: str) -> None:
        super().__init__(
            f"Model {model_id} was made by the published task {task_id}: delete it with force=true"
        )


class NameTaken(ApiError):
    """The real server's 'expected unique data': a unique index refused the value."""

    subcode = 801

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} with the same name already exists: name={name}")


class TaskAlreadyQueued(ApiError):
    subcode = 706

    def __init__(self, task_id: str, queue_id: str) -> None:
        super().__init__(f"Task already queued: task={task_id} queue={queue_id}")


class InvalidScrollId(ApiError):
    subcode = 1104

    def __init__(self, scroll_id: object) -> None:
        super().__init__(f"Invalid scroll id: {str(scroll_id)[:64]} (unknown or expired)")


class TaskNotQueued(ApiError):
    subcode = 703

    def __init__(self, task_id: str, queue_id: str) -> None:
        super().__init__(f"Invalid queue id or task not in queue: task={task_id} queue={queue_id}")


class NotEmpty(ApiError):
    def __init__(self, message: str, subcode: int) -> None:
        super().__init__(message, subcode=subcode)


class Unauthorized(ApiError):
    status, subcode = 401, 20


class UnknownEndpoint(ApiError):
    status = 404

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"Unknown endpoint: {endpoint} is not implemented by the embedded ClearML backend")


# Short forms used where an error is built from a field name.


def bad_request(message: str, subcode: int = 0) -> ApiError:
    return BadRequest(message, subcode=subcode)


def wrong_type(field: str, expected: str, value: object) -> ApiError:
    return InvalidField(f"Validation error: field '{field}' must be {expected}, got {type(value).__name__}")


def unauthorized(message: str) -> ApiError:
    return Unauthorized(message)


def unknown_endpoint(endpoint: str) -> ApiError:
    return UnknownEndpoint(endpoint)
