"""The OCI documents verification reads, parsed strictly: a field of the wrong type is a `Malformed`
image (a failed verdict with its reason), never an exception in the middle of a check.

Only the fields verification uses are modelled; the rest of each document is ignored. Sources: the OCI
image spec's descriptor, manifest, index and config (image-spec v1.1), and Docker's schema 2 and
container config, whose names (`User`, `Env`, `Labels`) the OCI config reuses.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InvalidInput

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
IMAGE_CONFIG_TYPES = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# buildx lists the provenance of each image as an index entry of platform unknown/unknown annotated so;
# no runtime selects it, so it is not an image to check (and nothing runs it).
REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION = "attestation-manifest"


class Malformed(InvalidInput):
    """The image's own documents are not what the OCI spec says they are: the image fails."""


class _Strict(BaseModel):
    # strict: "5" is not a size, true is not 1; extra fields belong to the spec's other uses.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Platform(_Strict):
    os: str
    architecture: str
    variant: str | None = None

    @property
    def name(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


class Descriptor(_Strict):
    media_type: str = Field(alias="mediaType")
    digest: str = Field(pattern=DIGEST.pattern)
    size: int = Field(ge=0)
    platform: Platform | None = None
    annotations: dict[str, str] | None = None

    @property
    def attestation(self) -> bool:
        return (self.annotations or {}).get(REFERENCE_TYPE) == ATTESTATION and (
            self.platform is None or self.platform.name == "unknown/unknown"
        )


class ImageManifest(_Strict):
    config: Descriptor
    layers: list[Descriptor] = Field(default_factory=list)


class Index(_Strict):
    manifests: list[Descriptor]


class RuntimeConfig(_Strict):
    user: str | None = Field(None, alias="User")
    env: list[str] | None = Field(None, alias="Env")
    labels: dict[str, str] | None = Field(None, alias="Labels")


class ImageConfig(_Strict):
    os: str | None = None
    architecture: str | None = None
    config: RuntimeConfig | None = None

    @property
    def runtime(self) -> RuntimeConfig:
        return self.config or RuntimeConfig()


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], document: Any, what: str) -> M:
    if not isinstance(document, dict):
        raise Malformed(f"{what} is not a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise Malformed(f"{what}: {where}: {first['msg']}") from None


def image_manifest(document: Any) -> ImageManifest:
    return _parse(ImageManifest, document, "the image manifest")


def index(document: Any) -> Index:
    return _parse(Index, document, "the image index")


def image_config(document: Any) -> ImageConfig:
    return _parse(ImageConfig, document, "the image config")
