"""ClearML-style API errors: an HTTP status, a result subcode and a message naming the problem."""

from __future__ import annotations


class ApiError(Exception):
    """Raised by service handlers; the HTTP layer turns it into an error envelope."""

    def __init__(self, status: int, subcode: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.subcode = subcode
        self.message = message


def bad_request(message: str, subcode: int = 0) -> ApiError:
    return ApiError(400, subcode, message)


def missing_field(field: str) -> ApiError:
    return ApiError(400, 11, f"Validation error: field '{field}' is required")


def wrong_type(field: str, expected: str, value: object) -> ApiError:
    return ApiError(
        400, 12, f"Validation error: field '{field}' must be {expected}, got {type(value).__name__}"
    )


def not_found(kind: str, ident: str, subcode: int = 101) -> ApiError:
    # subcodes follow the real server: 101 invalid task id, 102 invalid model id, 103 invalid project id ...
    return ApiError(400, subcode, f"Invalid {kind} id: id={ident}")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, 20, message)


def unknown_endpoint(endpoint: str) -> ApiError:
    return ApiError(
        404, 0, f"Unknown endpoint: {endpoint} is not implemented by the embedded ClearML backend"
    )
