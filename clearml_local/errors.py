"""ClearML-style API errors: an HTTP status, a result subcode and a message naming the problem.

The state layer raises the named classes below; the HTTP layer turns any ``ApiError`` into an error envelope.
Subcodes follow the real server where it has one (101 invalid task id, 102 invalid model id, 110 invalid task
status, ...).
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
    kind, subcode = "model", 102


class InvalidProjectId(InvalidId):
    kind, subcode = "project", 103


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


class ModelIsPublished(ApiError):
    subcode = 105

    def __init__(self, model_id: str, what: str) -> None:
        super().__init__(f"Model {model_id} is published: {what}")


class NameTaken(ApiError):
    status = 409

    def __init__(self, kind: str, name: str, subcode: int) -> None:
        super().__init__(f"{kind} with the same name already exists: name={name}", subcode=subcode)


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


def missing_field(field: str) -> ApiError:
    return MissingField(field)


def wrong_type(field: str, expected: str, value: object) -> ApiError:
    return InvalidField(f"Validation error: field '{field}' must be {expected}, got {type(value).__name__}")


def unauthorized(message: str) -> ApiError:
    return Unauthorized(message)


def unknown_endpoint(endpoint: str) -> ApiError:
    return UnknownEndpoint(endpoint)
