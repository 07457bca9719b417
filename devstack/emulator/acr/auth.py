"""ACR's token flow, without HTTP: an Entra token exchanged for a refresh token, a refresh token (or the
admin user) for an access token of some scopes, and an access token checked against one scope."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any

import jwt

from ..errors import AcrError
from ..tokens import TokenService
from .names import NULL_GUID_USER, SCOPE
from .records import AccessEntry, FrontRegistry


def parse_scopes(raw: str) -> list[AccessEntry]:
    access: list[AccessEntry] = []
    for item in raw.split():
        found = SCOPE.fullmatch(item)
        if not found:
            raise AcrError(400, "UNSUPPORTED", f"invalid scope '{item}'")
        kind, name, actions = found.groups()
        access.append({"type": kind, "name": name, "actions": actions.split(",")})
    return access


def is_granted(access: list[AccessEntry], kind: str, name: str, action: str) -> bool:
    return any(
        entry["type"] == kind
        and entry["name"] in (name, "*")
        and (action in entry["actions"] or "*" in entry["actions"])
        for entry in access
    )


def challenge(registry: FrontRegistry, scope: str | None) -> AcrError:
    """401 with the `WWW-Authenticate` that sends a client to this registry's token endpoint."""
    service = registry.login_server
    header = f'Bearer realm="https://{service}/oauth2/token",service="{service}"'
    if scope:
        header += f',scope="{scope}"'
    return AcrError(401, "UNAUTHORIZED", "authentication required", headers={"WWW-Authenticate": header})


class RegistryAuth:
    def __init__(self, tokens: TokenService, arm_endpoint: str) -> None:
        self._tokens = tokens
        self._arm_endpoint = arm_endpoint

    def _decode(self, token: str) -> dict[str, Any] | None:
        try:
            return self._tokens.decode(token)
        except jwt.PyJWTError:
            return None

    # Checking ------------------------------------------------------------------------------
    def grants(self, registry: FrontRegistry, authorization: str) -> list[AccessEntry] | None:
        """What a request's bearer access token for this registry grants; None without one."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        claims = self._decode(token)
        if claims is None or claims.get("aud") != registry.login_server or claims.get("grant") != "access":
            return None
        access: list[AccessEntry] = claims.get("access", [])
        return access

    def authorize(
        self, registry: FrontRegistry, authorization: str, kind: str, name: str, action: str
    ) -> None:
        scope = f"{kind}:{name}:{action}"
        access = self.grants(registry, authorization)
        if access is None:
            raise challenge(registry, scope)
        if not is_granted(access, kind, name, action):
            error = challenge(registry, scope)
            error.detail = [{"Type": kind, "Name": name, "Action": action}]
            raise error

    # Issuing -------------------------------------------------------------------------------
    def exchange(self, registry: FrontRegistry, form: Mapping[str, str]) -> str:
        """`/oauth2/exchange`: an Entra access token for an ACR refresh token."""
        if form.get("grant_type") != "access_token":
            raise AcrError(400, "UNSUPPORTED", "grant_type must be access_token")
        if form.get("service") != registry.login_server:
            raise AcrError(400, "UNSUPPORTED", f"service must be {registry.login_server}")
        claims = self._decode(form.get("access_token", ""))
        if claims is None:
            raise AcrError(401, "UNAUTHORIZED", "the Entra access token is invalid or expired")
        if not self._tokens.is_acr_audience(str(claims.get("aud", "")), self._arm_endpoint):
            raise AcrError(401, "UNAUTHORIZED", "the Entra access token has the wrong audience")
        refresh, _ = self._tokens.issue(registry.login_server, subject=claims["sub"], grant="refresh")
        return refresh

    def form_subject(self, registry: FrontRegistry, form: Mapping[str, str]) -> str:
        """Whom a POST to `/oauth2/token` speaks for: a refresh token's subject, or the admin user."""
        grant = form.get("grant_type")
        if grant == "refresh_token":
            subject = self.refresh_subject(registry, form.get("refresh_token", ""))
            if not subject:
                raise AcrError(
                    401, "UNAUTHORIZED", "the refresh token is invalid, expired or not for this registry"
                )
            return subject
        if grant == "password":
            if not self.is_admin(registry, form.get("username", ""), form.get("password", "")):
                raise AcrError(401, "UNAUTHORIZED", "invalid username or password")
            return registry.name
        raise AcrError(400, "UNSUPPORTED", "grant_type must be refresh_token or password")

    def basic_subject(self, registry: FrontRegistry, authorization: str) -> str:
        """Basic auth on the token endpoint: the admin user, or (as `docker login` after `az acr login
        --expose-token`) the null GUID user with a refresh token for this registry as its password."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                username, password = "", ""
            if self.is_admin(registry, username, password):
                return registry.name
            if username == NULL_GUID_USER and (subject := self.refresh_subject(registry, password)):
                return subject
        raise AcrError(
            401,
            "UNAUTHORIZED",
            "authentication required",
            headers={"WWW-Authenticate": f'Basic realm="{registry.login_server}"'},
        )

    def access_token(self, registry: FrontRegistry, subject: str, scope: str, service: str | None) -> str:
        """An access token for the scopes asked (space-separated), once the subject is known."""
        if service not in (None, registry.login_server):
            raise AcrError(400, "UNSUPPORTED", f"service must be {registry.login_server}")
        access = parse_scopes(scope) if scope else []
        token, _ = self._tokens.issue(registry.login_server, subject=subject, grant="access", access=access)
        return token

    def refresh_subject(self, registry: FrontRegistry, token: str) -> str | None:
        """Whom an ACR refresh token for this registry names; None if it is not one."""
        claims = self._decode(token)
        if claims is None or claims.get("grant") != "refresh" or claims.get("aud") != registry.login_server:
            return None
        return str(claims["sub"])

    @staticmethod
    def is_admin(registry: FrontRegistry, username: str, password: str) -> bool:
        if not registry.admin_user_enabled or username.lower() != registry.name.lower():
            return False
        # As bytes: compare_digest refuses a str outside ASCII, and a password may be anything.
        return any(hmac.compare_digest(password.encode(), p.encode()) for p in registry.admin_passwords)
