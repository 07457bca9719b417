"""Typed records of the registry front: the registry it serves, token grants, attributes and the views
`/acr/v1/` answers with (their keys in ACR's order: the JSON bodies keep it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

ATTRIBUTES = ("deleteEnabled", "writeEnabled", "readEnabled", "listEnabled")
Attribute = Literal["deleteEnabled", "writeEnabled", "readEnabled", "listEnabled"]


@dataclass(frozen=True)
class FrontRegistry:
    """A registry as its front sees it, read from the ARM record (which keeps the admin passwords)."""

    id: str
    name: str
    login_server: str  # also the `service` of its tokens
    namespace: str  # its repositories' prefix in docker-registry
    admin_user_enabled: bool
    admin_passwords: tuple[str, ...]

    @classmethod
    def from_record(cls, record: Mapping[str, Any], namespace: str) -> FrontRegistry:
        properties = record["properties"]
        return cls(
            id=str(record["id"]),
            name=str(record["name"]),
            login_server=str(properties["loginServer"]),
            namespace=namespace,
            admin_user_enabled=bool(properties.get("adminUserEnabled")),
            admin_passwords=tuple(record.get("_passwords") or ()),
        )


class AccessEntry(TypedDict):
    """One grant of an access token, as Docker's token spec writes it in the `access` claim."""

    type: str
    name: str
    actions: list[str]


@dataclass(frozen=True)
class ChangeableAttributes:
    """ACR's changeable attributes of a repository, tag or manifest; all enabled unless set."""

    delete_enabled: bool = True
    write_enabled: bool = True
    read_enabled: bool = True
    list_enabled: bool = True

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> ChangeableAttributes:
        return cls(
            delete_enabled=bool(stored.get("deleteEnabled", True)),
            write_enabled=bool(stored.get("writeEnabled", True)),
            read_enabled=bool(stored.get("readEnabled", True)),
            list_enabled=bool(stored.get("listEnabled", True)),
        )

    def as_json(self) -> dict[str, bool]:
        return {
            "deleteEnabled": self.delete_enabled,
            "writeEnabled": self.write_enabled,
            "readEnabled": self.read_enabled,
            "listEnabled": self.list_enabled,
        }

    def allows(self, attribute: Attribute) -> bool:
        return self.as_json()[attribute]

    @property
    def deletable(self) -> bool:
        """`ACR-LOCK`: "If the image attributes are set with `writeEnabled=false` or `deleteEnabled=false`,
        then it will block image deletion" (Azure/acr#561: write-enabled blocks "both update and delete")."""
        return self.delete_enabled and self.write_enabled

    def patched(self, patch: Mapping[str, bool]) -> ChangeableAttributes:
        return ChangeableAttributes.from_json(
            {**self.as_json(), **{k: v for k, v in patch.items() if k in ATTRIBUTES}}
        )


class TagView(TypedDict):
    name: str
    digest: str
    createdTime: str
    lastUpdateTime: str
    signed: bool
    changeableAttributes: dict[str, bool]


class ManifestView(TypedDict):
    digest: str
    imageSize: int
    createdTime: str
    lastUpdateTime: str
    mediaType: str
    tags: list[str]
    changeableAttributes: dict[str, bool]
    configMediaType: NotRequired[str]
    architecture: NotRequired[str]
    os: NotRequired[str]
    references: NotRequired[list[dict[str, Any]]]


class RepositoryView(TypedDict):
    registry: str
    imageName: str
    createdTime: str
    lastUpdateTime: str
    manifestCount: int
    tagCount: int
    changeableAttributes: dict[str, bool]


class DeletedRepository(TypedDict):
    manifestsDeleted: list[str]
    tagsDeleted: list[str]
