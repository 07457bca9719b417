"""Dockmaster's one exception hierarchy, and the single place errors become HTTP statuses."""

from __future__ import annotations


class DockmasterError(Exception):
    """Base of every error Dockmaster raises on purpose."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str, *, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ConfigurationError(DockmasterError):
    """A setting or the policy file is wrong; the app cannot run correctly until fixed."""

    code = "ConfigurationError"


class InvalidInput(DockmasterError):
    """The caller's input (event, request body, name) is not acceptable; retrying will not help."""

    status = 400
    code = "InvalidInput"


class PayloadTooLarge(InvalidInput):
    status = 413
    code = "PayloadTooLarge"


class UnsupportedMediaType(InvalidInput):
    status = 415
    code = "UnsupportedMediaType"


class Unauthorized(DockmasterError):
    status = 401
    code = "Unauthorized"


class Forbidden(DockmasterError):
    status = 403
    code = "Forbidden"


class NotFound(DockmasterError):
    status = 404
    code = "NotFound"


class Conflict(DockmasterError):
    status = 409
    code = "Conflict"


class Retryable(DockmasterError):
    """A dependency failed in a way worth retrying (unreachable, throttled, 5xx).

    Triggers let it propagate so the platform redelivers; nothing is recorded as passed.
    """

    status = 503
    code = "DependencyUnavailable"


def http_status(error: BaseException) -> int:
    return error.status if isinstance(error, DockmasterError) else 500


def error_body(error: BaseException) -> dict[str, object]:
    if isinstance(error, DockmasterError):
        body: dict[str, object] = {"code": error.code, "message": error.message}
        if error.detail is not None:
            body["detail"] = error.detail
        return {"error": body}
    return {"error": {"code": "InternalError", "message": "An unexpected error occurred."}}
