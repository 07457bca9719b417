"""Dockmaster's one exception hierarchy; the one table that turns Azure's answers into it (`from_azure`,
`from_status`); and the single place errors become HTTP statuses.

What each class tells a trigger: `Retryable` and `AccessDenied` fail the invocation, so the platform
redelivers (and the failure is logged with what to fix); `InvalidInput` is acknowledged, because the
same input will never succeed; `NotFound` and `Conflict` are answers the caller decides on.
"""

from __future__ import annotations

from typing import Any


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


class LengthRequired(InvalidInput):
    status = 411
    code = "LengthRequired"


class UnsupportedMediaType(InvalidInput):
    status = 415
    code = "UnsupportedMediaType"


class Unauthorized(DockmasterError):
    status = 401
    code = "Unauthorized"


class Forbidden(DockmasterError):
    status = 403
    code = "Forbidden"


class AccessDenied(DockmasterError):
    """Azure refused the app's own identity (401/403): a role assignment is missing or not yet effective.

    Not the API caller's fault (that is `Forbidden`), not worth acknowledging: the invocation fails and is
    retried, so the work is done once the role is assigned; the message names the role."""

    status = 502
    code = "DependencyAccessDenied"


class NotFound(DockmasterError):
    status = 404
    code = "NotFound"


class Conflict(DockmasterError):
    status = 409
    code = "Conflict"


class FailedVerification(Conflict):
    """The image's verdict is `failed` (it is quarantined): Dockmaster will not run it."""

    code = "ImageFailedVerification"


class Retryable(DockmasterError):
    """A dependency failed in a way worth retrying (unreachable, throttled, 5xx).

    Triggers let it propagate so the platform redelivers; nothing is recorded as passed.
    """

    status = 503
    code = "DependencyUnavailable"


# The roles (as infra/ assigns them) that each kind of Azure operation needs, named in AccessDenied.
TASKS_ROLE = "Container Registry Tasks Contributor on the registry"
REGISTRY_ARM_ROLE = (
    "Microsoft.ContainerRegistry/registries/read on the registry (in Container Registry Tasks Contributor)"
)
REGISTRY_DATA_ROLE = (
    "AcrPull and AcrPush on the registry "
    "(Container Registry Repository Writer and Catalog Lister in ABAC mode)"
)
CLEANUP_ROLE = "the Dockmaster cleanup role on the subscription (infra/modules/cleanup-role.bicep)"
TABLES_ROLE = "Storage Table Data Contributor on the storage account"
QUEUES_ROLE = "Storage Queue Data Contributor on the storage account"
EVENTS_ROLE = "EventGrid Data Sender on the events topic"


def from_status(
    status: int | None,
    doing: str,
    *,
    service: str,
    role: str,
    code: str | None = None,
    message: str | None = None,
) -> DockmasterError:
    """The one table: an Azure service's answer (`status` None: no answer at all) as Dockmaster's error.

    408, 429, 5xx and no answer → Retryable (the SDK already waited out Retry-After a bounded number of
    times); 401/403 → AccessDenied naming `role`; 404 → NotFound; 409 and 412 (an ETag precondition) →
    Conflict; any other 4xx → InvalidInput (the request itself is wrong: sending it again will not help).
    """
    said = f"{status} {code}" if code and code != str(status) else f"{status}"
    if status is None:
        return Retryable(f"{doing}: {service} is unreachable or did not answer{f' ({code})' if code else ''}")
    if status in (408, 429) or status >= 500:
        return Retryable(f"{doing}: {service} answered {said}")
    if status in (401, 403):
        return AccessDenied(
            f"{doing}: {service} refused the app's identity ({said}); it needs {role}",
            detail={"requiredRole": role},
        )
    if status == 404:
        return NotFound(f"{doing}: not found ({said})")
    if status in (409, 412):
        return Conflict(f"{doing}: {service} answered {said}{f': {message}' if message else ''}")
    if 400 <= status < 500:
        return InvalidInput(
            f"{doing}: {service} rejected the request ({said}){f': {message}' if message else ''}"
        )
    return DockmasterError(f"{doing}: {service} answered {said}")  # 1xx-3xx where an error was expected


def azure_code(error: BaseException) -> str | None:
    """The service's own error code (`ScopeLocked`, `TableNotFound`, …) if the answer carried one."""
    inner = getattr(error, "error", None)
    code = getattr(inner, "code", None) or getattr(error, "error_code", None)
    return str(code) if code else None


def from_azure(error: BaseException, doing: str, *, service: str, role: str) -> DockmasterError:
    """An exception of an Azure SDK client (azure.core's hierarchy) through the table of `from_status`.

    A credential that cannot get a token at all (ClientAuthenticationError without an HTTP answer) is
    AccessDenied too: the identity is missing or not allowed, and nothing about the request will change."""
    from azure.core.exceptions import ClientAuthenticationError

    status: int | None = getattr(error, "status_code", None)
    if status is None and (
        isinstance(error, ClientAuthenticationError) or type(error).__name__ == "CredentialUnavailableError"
    ):
        return AccessDenied(
            f"{doing}: the app's identity could not get a token for {service} ({type(error).__name__})",
            detail={"requiredRole": role},
        )
    code = azure_code(error) if status is not None else type(error).__name__
    message: Any = getattr(error, "message", None) if status is not None else None
    return from_status(status, doing, service=service, role=role, code=code, message=_first_line(message))


def _first_line(message: object) -> str | None:
    if not message:
        return None
    line = str(message).strip().splitlines()[0]
    return line if len(line) <= 300 else line[:300] + "…"


def http_status(error: BaseException) -> int:
    return error.status if isinstance(error, DockmasterError) else 500


def error_body(error: BaseException) -> dict[str, object]:
    if isinstance(error, DockmasterError):
        body: dict[str, object] = {"code": error.code, "message": error.message}
        if error.detail is not None:
            body["detail"] = error.detail
        return {"error": body}
    return {"error": {"code": "InternalError", "message": "An unexpected error occurred."}}
