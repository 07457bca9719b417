"""Access tokens: issued by the managed identity endpoint, checked by every other endpoint.

Tokens are JWTs signed with a key that lives only in the state directory, so
clients that decode tokens (azure-containerregistry reads `exp`) work unchanged.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from .errors import ArmError

TOKEN_LIFETIME_SECONDS = 3600
ARM_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")
ACR_AUDIENCE = "https://containerregistry.azure.net"
DEVSTACK_PRINCIPAL = "devstack-managed-identity"


def _norm(audience: str) -> str:
    return audience.rstrip("/").removesuffix("/.default").lower()


class TokenService:
    CACHE_SIZE = 4096

    def __init__(self, signing_key: str, tenant_id: str, issuer: str) -> None:
        self._key = signing_key
        self._tenant = tenant_id
        self._issuer = issuer
        # Clients reuse a token for its lifetime: verify the signature once, re-check expiry each time.
        self._verified: dict[str, dict[str, Any]] = {}

    def issue(self, audience: str, subject: str = DEVSTACK_PRINCIPAL, **claims: Any) -> tuple[str, int]:
        now = int(time.time())
        expires = now + TOKEN_LIFETIME_SECONDS
        payload = {
            "aud": audience,
            "iss": self._issuer,
            "sub": subject,
            "oid": subject,
            "tid": self._tenant,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm="HS256"), expires

    def decode(self, token: str) -> dict[str, Any]:
        """Decode and check signature and expiry; raises jwt exceptions."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached["exp"] + 30 < time.time():
                del self._verified[token]
                raise jwt.ExpiredSignatureError("Signature has expired")
            return cached
        claims: dict[str, Any] = jwt.decode(
            token,
            self._key,
            algorithms=["HS256"],
            options={"verify_aud": False, "require": ["exp", "aud"]},
            leeway=30,
        )
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def check_arm(self, authorization: str | None, arm_endpoint: str) -> dict[str, Any]:
        """Validate an ARM request's bearer token as ARM does (401 with ARM's codes)."""
        if not authorization:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        try:
            claims = self.decode(token.strip())
        except jwt.ExpiredSignatureError as exc:
            raise ArmError(
                401,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from exc
        except jwt.PyJWTError as exc:
            raise ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from exc
        accepted = {_norm(a) for a in (*ARM_AUDIENCES, arm_endpoint)}
        if _norm(str(claims.get("aud", ""))) not in accepted:
            raise ArmError(
                401,
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource "
                f"'{claims.get('aud')}'. It should exactly match with one of the allowed "
                f"audiences '{', '.join(sorted(accepted))}'.",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return claims

    def is_acr_audience(self, audience: str, arm_endpoint: str) -> bool:
        return _norm(audience) in {_norm(a) for a in (*ARM_AUDIENCES, ACR_AUDIENCE, arm_endpoint)}
