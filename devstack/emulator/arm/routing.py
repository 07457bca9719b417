"""A small ARM-style router: case-insensitive paths, api-version checked per route."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import ArmError

Handler = Callable[..., Awaitable[Response]]
EMPTY_SEGMENTS = re.compile(r"/{2,}")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    versions: frozenset[str]
    resource_type: str


class ArmRouter:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self, method: str, template: str, versions: set[str], resource_type: str
    ) -> Callable[[Handler], Handler]:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        pattern = re.compile(f"{regex}/?", re.IGNORECASE)

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, handler, frozenset(versions), resource_type))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        # An empty segment is dropped: the SDK sends `providers/{namespace}//{type}` for a resource
        # without a parent (parentResourcePath ""), as azure-cli's `az lock` does, and ARM takes it.
        path = EMPTY_SEGMENTS.sub("/", path)
        allowed = False
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if not found:
                continue
            if route.method == method or (method == "HEAD" and route.method == "HEAD"):
                return route, found.groupdict()
            allowed = True
        if allowed:
            raise ArmError(405, "MethodNotAllowed", f"The requested method '{method}' is not allowed.")
        raise ArmError(
            404,
            "InvalidResourceType",
            f"The resource type could not be found for the path '{path}'.",
        )

    @staticmethod
    def check_api_version(request: Request, route: Route) -> str:
        version = request.query_params.get("api-version")
        if not version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in route.versions:
            supported = ", ".join(sorted(route.versions))
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for API version '{version}' and type "
                f"'{route.resource_type}'. The supported api-versions are '{supported}'.",
            )
        return version


async def read_json(request: Request, required: bool = True) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: "
                "'Unexpected end when deserializing object.'",
            )
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: '{exc}'.",
        ) from exc
    if not isinstance(body, dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'expected a JSON object'.",
        )
    return body
