"""ARM over HTTP: management locks at subscription, resource-group and resource scope (locks.json,
2020-05-01: ManagementLocks_*AtSubscriptionLevel, *AtResourceGroupLevel, *AtResourceLevel)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import EmulatorConfig
from ..errors import ArmError, not_found
from ..store import Store
from .groups import ResourceGroups
from .locks import Locks
from .paging import indexed_page
from .routing import ArmRouter, Handler, read_json

LOCK_VERSIONS = {"2015-01-01", "2016-09-01", "2020-05-01"}
LOCKS = "/providers/Microsoft.Authorization/locks"
SUBSCRIPTION = "/subscriptions/{sub}"
GROUP = SUBSCRIPTION + "/resourcegroups/{rg}"
RESOURCE = GROUP + "/providers/{namespace}/{resource_type}/{resource}"


def check_filter(request: Request) -> None:
    # The spec documents a `$filter` without its grammar, and the SDK sends none unless asked: a filter
    # is refused rather than ignored, so a caller relying on one learns it here (stricter than Azure).
    raw = request.query_params.get("$filter")
    if raw:
        raise ArmError(
            400,
            "InvalidFilterInQueryString",
            f"Invalid $filter '{raw}' specified in the query string: devstack lists locks without one.",
        )


class LocksApi:
    """One method per route; the scope (subscription, group or resource) is checked to exist first."""

    def __init__(self, locks: Locks, groups: ResourceGroups, store: Store, config: EmulatorConfig) -> None:
        self.locks = locks
        self.groups = groups
        self.store = store
        self.config = config

    def register(self, router: ArmRouter) -> None:
        routes: list[tuple[str, str, Handler]] = []
        for scope in (SUBSCRIPTION, GROUP, RESOURCE):
            routes += [
                ("PUT", scope + LOCKS + "/{name}", self.put),
                ("GET", scope + LOCKS + "/{name}", self.get),
                ("DELETE", scope + LOCKS + "/{name}", self.delete),
                ("GET", scope + LOCKS, self.list),
            ]
        for method, template, handler in routes:
            router.add(method, template, LOCK_VERSIONS, "locks")(handler)

    def scope(self, sub: str, rg: str | None = None, **resource: str) -> str:
        """The id of what the lock sits on, as stored; 404 when it does not exist."""
        self.groups.check_subscription(sub)
        if rg is None:
            return f"/subscriptions/{sub}"
        group = self.groups.get(sub, rg)
        if not resource:
            return group["id"]
        kind = f"{resource['namespace']}/{resource['resource_type']}"
        found = self.store.find(f"{group['id']}/providers/{kind}/{resource['resource']}")
        if found is None or found[1].get("type", "").lower() != kind.lower():
            raise not_found(kind, resource["resource"], group["name"])
        return str(found[1]["id"])

    async def put(
        self, request: Request, sub: str, name: str, rg: str | None = None, **resource: str
    ) -> Response:
        scope = self.scope(sub, rg, **resource)
        lock, created = self.locks.put(scope, name, await read_json(request))
        return JSONResponse(lock, status_code=201 if created else 200)

    async def get(
        self, request: Request, sub: str, name: str, rg: str | None = None, **resource: str
    ) -> Response:
        return JSONResponse(self.locks.get(self.scope(sub, rg, **resource), name))

    async def delete(
        self, request: Request, sub: str, name: str, rg: str | None = None, **resource: str
    ) -> Response:
        return Response(status_code=200 if self.locks.delete(self.scope(sub, rg, **resource), name) else 204)

    async def list(self, request: Request, sub: str, rg: str | None = None, **resource: str) -> Response:
        """The locks at the scope and at every scope below it, paged in id order."""
        scope = self.scope(sub, rg, **resource)
        check_filter(request)
        return indexed_page(
            self.config, request, lambda after, limit: self.locks.at_and_below(scope, after, limit)
        )
