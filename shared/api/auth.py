"""Optional app roles on top of the function key.

The Functions host checks the function key before the API sees a request. When
DOCKMASTER_API_ROLES is true, App Service authentication (Entra ID, see infra/) sits in front as
well and hands the signed-in caller over in `X-MS-CLIENT-PRINCIPAL`: base64 JSON with `claims`
[{typ, val}], app roles as `roles` claims (or the `role_typ` the document names). Reads need
`Dockmaster.Read`, changes `Dockmaster.Operate`; the roles are independent of each other.
Only trust this header behind App Service authentication, which strips any copy a client sends:
that is why infra/ turns the setting on exactly when authentication is on.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from ..config import get_settings
from ..errors import Forbidden, Unauthorized

READ = "Dockmaster.Read"
OPERATE = "Dockmaster.Operate"
PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
MAX_PRINCIPAL_BYTES = 16 * 1024
ROLE_CLAIMS = frozenset({"roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})


@dataclass(frozen=True)
class Principal:
    name: str | None
    roles: frozenset[str]


def parse_principal(header: str) -> Principal:
    if len(header) > MAX_PRINCIPAL_BYTES:
        raise Unauthorized(f"{PRINCIPAL_HEADER} is larger than {MAX_PRINCIPAL_BYTES} bytes")
    try:
        document = json.loads(base64.b64decode(header + "=" * (-len(header) % 4), validate=True))
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: JSON nested too deep
        raise Unauthorized(f"{PRINCIPAL_HEADER} is not base64-encoded JSON") from None
    claims = document.get("claims") if isinstance(document, dict) else None
    if not isinstance(claims, list):
        raise Unauthorized(f"{PRINCIPAL_HEADER} has no list of claims")
    role_types = set(ROLE_CLAIMS)
    if isinstance(document.get("role_typ"), str):
        role_types.add(document["role_typ"])
    name_type = document.get("name_typ") or "name"
    roles, name = set(), None
    for claim in claims:
        if not isinstance(claim, dict) or not isinstance(claim.get("val"), str):
            continue
        if claim.get("typ") in role_types:
            roles.add(claim["val"])
        elif claim.get("typ") == name_type and name is None:
            name = claim["val"]
    return Principal(name, frozenset(roles))


def require(role: str) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency: the caller must hold `role` when roles are switched on."""

    async def check(request: Request) -> None:
        if not get_settings().api_roles:
            return
        header = request.headers.get(PRINCIPAL_HEADER)
        if not header:
            raise Unauthorized(
                f"this API requires a caller signed in with Entra ID ({PRINCIPAL_HEADER} is missing)"
            )
        principal = parse_principal(header)
        if role not in principal.roles:
            who = f"'{principal.name}'" if principal.name else "the caller"
            raise Forbidden(f"{who} lacks the app role {role}", detail={"requiredRole": role})

    check.__name__ = f"require_{role.replace('.', '_').lower()}"
    return check
