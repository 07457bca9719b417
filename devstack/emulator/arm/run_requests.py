"""ACR Tasks run requests (EncodedTaskRunRequest, DockerBuildRequest) turned into task steps, without HTTP."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from devstack.executor import SourceRegistryTask
from devstack.taskfile import RunContext, Step, Task, TaskError, parse

from ..errors import ArmError
from .records import RegistryResource
from .registry_resources import ABAC

# SourceRegistryCredentials.identity is in the Tasks API from 2025-03-01-preview; with an older
# api-version ACR never sees it, and the run has no identity to log in with.
IDENTITY_VERSIONS = {"2025-03-01-preview"}
CALLER = "[caller]"
LOGIN_MODES = ("None", "Default")
MAX_TIMEOUT = 28800
MIN_TIMEOUT = 300
DEFAULT_TIMEOUT = 3600


def _decode(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ArmError(400, "InvalidParameter", f"'{field}' is required.")
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ArmError(400, "InvalidParameter", f"'{field}' is not valid base64: {exc}") from exc


def _timeout(body: dict[str, Any]) -> int:
    raw = body.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(raw, bool) or not isinstance(raw, int) or not MIN_TIMEOUT <= raw <= MAX_TIMEOUT:
        raise ArmError(
            400,
            "InvalidParameter",
            f"'timeout' must be between {MIN_TIMEOUT} and {MAX_TIMEOUT} seconds.",
        )
    return raw


def _values(body: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in body.get("values") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ArmError(400, "InvalidParameter", "'values' items need a name and a value.")
        values[item["name"]] = str(item.get("value", ""))
    return values


def source_registry_denial(registry: RegistryResource, body: dict[str, Any], version: str) -> str | None:
    """Why a run may not pull from or push to its own registry, or None when it may.

    `credentials.sourceRegistry` says how the run logs in to it: `identity` `[caller]` (the identity that
    scheduled the run), `[system]` or a client id (a task's managed identity: a quick run has none), and
    `loginMode` None (no login at all). In ABAC mode (roleAssignmentMode AbacRepositoryPermissions)
    quick runs and builds lose the default data-plane access they have otherwise (ACR docs, "Azure
    ABAC repository permissions": effects on ACR Tasks, quick builds and quick runs). The caller's own
    role assignments are not modelled: its identity is enough here."""
    credentials = body.get("credentials")
    if credentials is not None and not isinstance(credentials, dict):
        raise ArmError(400, "InvalidParameter", "'credentials' must be an object.")
    source = (credentials or {}).get("sourceRegistry")
    if source is not None and not isinstance(source, dict):
        raise ArmError(400, "InvalidParameter", "'credentials.sourceRegistry' must be an object.")
    source = source or {}
    login_mode = source.get("loginMode")
    if login_mode is not None and login_mode not in LOGIN_MODES:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{login_mode}' of credentials.sourceRegistry.loginMode is invalid. "
            f"Allowed values: {', '.join(LOGIN_MODES)}.",
        )
    identity = source.get("identity") if version in IDENTITY_VERSIONS else None
    if identity is not None and not isinstance(identity, str):
        raise ArmError(400, "InvalidParameter", "'credentials.sourceRegistry.identity' must be a string.")
    if login_mode == "None":
        return "the run does not log in to the registry (credentials.sourceRegistry.loginMode None)"
    if registry["properties"].get("roleAssignmentMode") != ABAC:
        return None
    if identity == CALLER:
        return None
    how = f"identity '{identity}', which a quick run does not have" if identity else "no identity"
    return (
        f"registry {registry['name']} is in ABAC mode (roleAssignmentMode {ABAC}) and the run "
        f"logs in with {how}: set credentials.sourceRegistry.identity to '[caller]'"
    )


def build_task(body: dict[str, Any], context: RunContext, denied: str | None) -> tuple[Task, int, bool]:
    """Turn a run request into task steps; returns (task, timeout, needs_source). `denied`: why the run
    may not pull from or push to its own registry (see source_registry_denial), None if it may."""
    task, timeout, needs_source = _build_task(body, context)
    return SourceRegistryTask(task.steps, task.env, denied=denied), timeout, needs_source


def _build_task(body: dict[str, Any], context: RunContext) -> tuple[Task, int, bool]:
    kind = body.get("type")
    timeout = _timeout(body)
    try:
        if kind == "EncodedTaskRunRequest":
            text = _decode(body.get("encodedTaskContent"), "encodedTaskContent")
            values = _values(body)
            if body.get("encodedValuesContent"):
                import yaml

                extra = yaml.safe_load(_decode(body["encodedValuesContent"], "encodedValuesContent"))
                if isinstance(extra, dict):
                    values.update({str(k): str(v) for k, v in extra.items()})
            return parse(text, context, values), timeout, bool(body.get("sourceLocation"))
        if kind == "DockerBuildRequest":
            images = body.get("imageNames") or []
            if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
                raise ArmError(400, "InvalidParameter", "'imageNames' must be a list of image names.")
            if not body.get("sourceLocation"):
                raise ArmError(400, "InvalidParameter", "'sourceLocation' is required.")
            qualified = [
                i if i.startswith(context.registry + "/") else f"{context.registry}/{i}" for i in images
            ]
            if any(":" not in q.rsplit("/", 1)[-1] for q in qualified):
                qualified = [q if ":" in q.rsplit("/", 1)[-1] else f"{q}:latest" for q in qualified]
            build = ["-f", str(body.get("dockerFilePath") or "Dockerfile")]
            for image in qualified:
                build += ["-t", image]
            for argument in body.get("arguments") or []:
                build += ["--build-arg", f"{argument['name']}={argument.get('value', '')}"]
            if body.get("target"):
                build += ["--target", str(body["target"])]
            if body.get("noCache"):
                build.append("--no-cache")
            build.append(".")
            steps = [Step(kind="build", args=build, id="build", timeout=timeout)]
            if body.get("isPushEnabled", True) and qualified:
                steps.append(Step(kind="push", args=qualified, id="push", timeout=timeout))
            return Task(steps=steps), timeout, True
    except TaskError as exc:
        raise ArmError(400, "InvalidTaskDefinition", f"The task definition is invalid: {exc}") from exc
    raise ArmError(
        400,
        "InvalidRunRequestType",
        f"The run request type '{kind}' is not supported by devstack "
        "(supported: EncodedTaskRunRequest, DockerBuildRequest).",
    )
