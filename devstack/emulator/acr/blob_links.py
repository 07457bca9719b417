"""Signed download links and the storage stand-in's errors.

A blob GET on a login server answers 307 with a signed, short-lived link on another host, as ACR sends
downloads to its storage account (a SAS URL on `*.blob.core.windows.net`) or to a dedicated data
endpoint. The link is `/{registry namespace}/{repository}/blobs/{digest}?sv&sr&sp&se&sig`: ACR's carry a
blob SAS, `sv=2018-03-28&sr=b&sp=r&se=<expiry>&sig=...` (MicrosoftDocs/azure-docs#116188).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from starlette.responses import Response

LINK_PATH = re.compile(r"/(?P<ns>[a-z0-9]+)/(?P<name>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})")
LINK_TIME = "%Y-%m-%dT%H:%M:%SZ"
SAS_VERSION = "2018-03-28"
AUTH_FAILED = (
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
    "correctly including the signature."
)
INTERNAL = "Server encountered an internal error. Please try again after some time."


def link_signature(key: str, namespace: str, repository: str, digest: str, expiry: str) -> str:
    """The `sig` of a download link: an HMAC over what it grants (read, until when, which blob)."""
    secret = hmac.new(key.encode(), b"devstack blob download links", hashlib.sha256).digest()
    granted = "\n".join(("r", expiry, namespace, repository, digest)).encode()
    return base64.b64encode(hmac.new(secret, granted, hashlib.sha256).digest()).decode()


class StorageError(Exception):
    """Azure Storage's error: an XML `<Error>` body, the code also in `x-ms-error-code`."""

    def __init__(self, status: int, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail

    def response(self) -> Response:
        request_id = str(uuid.uuid4())
        time = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        detail = (
            self.detail and f"<AuthenticationErrorDetail>{escape(self.detail)}</AuthenticationErrorDetail>"
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}\n"
            f"RequestId:{request_id}\nTime:{time}</Message>{detail or ''}</Error>"
        )
        headers = {"x-ms-error-code": self.code, "x-ms-request-id": request_id, "x-ms-version": SAS_VERSION}
        return Response(body, status_code=self.status, media_type="application/xml", headers=headers)


def authentication_failed(detail: str) -> StorageError:
    return StorageError(403, "AuthenticationFailed", AUTH_FAILED, detail)


@dataclass(frozen=True)
class BlobRef:
    """The blob a link grants, in docker-registry under `/v2/{namespace}/{repository}/blobs/{digest}`."""

    namespace: str
    repository: str
    digest: str

    @property
    def backend_path(self) -> str:
        return f"/v2/{self.namespace}/{self.repository}/blobs/{self.digest}"


class BlobLinks:
    """Issues links for the storage stand-in on `host` and checks them as Azure Storage checks a SAS."""

    def __init__(self, signing_key: str, host: str, lifetime_seconds: float, port: Callable[[], int]) -> None:
        self._key = signing_key
        self._host = host
        self._lifetime = lifetime_seconds
        self._port = port  # the storage stand-in's, known once its listener is up

    def issue(self, blob: BlobRef) -> str:
        expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._lifetime)).strftime(LINK_TIME)
        query = {
            "sv": SAS_VERSION,
            "sr": "b",
            "sp": "r",
            "se": expiry,
            "sig": link_signature(self._key, blob.namespace, blob.repository, blob.digest, expiry),
        }
        link = f"https://{self._host}:{self._port()}/{blob.namespace}/{blob.repository}/blobs/{blob.digest}"
        return f"{link}?{urlencode(query)}"

    def verify(self, path: str, query: Mapping[str, str], method: str) -> BlobRef:
        """The blob a request's link grants, or Azure Storage's refusal (bad path, signature or expiry,
        or a method other than a read: the link grants `sp=r` and nothing else)."""
        found = LINK_PATH.fullmatch(path)
        if found is None:
            raise StorageError(
                400, "InvalidUri", "The requested URI does not represent any resource on the server."
            )
        blob = BlobRef(found.group("ns"), found.group("name"), found.group("digest"))
        expiry, signature = query.get("se", ""), query.get("sig", "")
        try:
            expires = dt.datetime.strptime(expiry, LINK_TIME).replace(tzinfo=dt.UTC)
        except ValueError:
            expires = None
        if expires is None or not signature or query.get("sp") != "r" or query.get("sr") != "b":
            raise authentication_failed("Signature fields not well formed.")
        expected = link_signature(self._key, blob.namespace, blob.repository, blob.digest, expiry)
        if not hmac.compare_digest(signature.encode(), expected.encode()):  # a query may hold any text
            raise authentication_failed("Signature did not match.")
        now = dt.datetime.now(dt.UTC)
        if now >= expires:
            raise authentication_failed(
                "Signature not valid in the specified time frame: "
                f"Expiry [{expires:%a, %d %b %Y %H:%M:%S} GMT] - Current [{now:%a, %d %b %Y %H:%M:%S} GMT]"
            )
        if method not in ("GET", "HEAD"):
            raise StorageError(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            )
        return blob
