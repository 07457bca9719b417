"""Errors in the shapes Azure answers with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


class ArmError(Exception):
    """An ARM error: `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message}},
            status_code=self.status,
            headers={"x-ms-failure-cause": "gateway", **self.headers},
        )


class AcrError(Exception):
    """An ACR data-plane error: `{"errors": [{"code", "message", "detail"}]}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return JSONResponse({"errors": [error]}, status_code=self.status, headers=self.headers)


def require_location(body: Mapping[str, Any]) -> str:
    """The `location` every tracked resource's create names."""
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    return location


def not_found(kind: str, name: str, group: str | None = None) -> ArmError:
    if kind == "resourceGroup":
        return ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
    where = f" under resource group '{group}'" if group else ""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}'{where} was not found.",
    )
