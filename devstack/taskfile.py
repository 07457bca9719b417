"""ACR Task files: render the template values and aliases, then parse the steps.

Only the parts of the v1.1.0 task schema devstack executes are accepted; anything
else is refused with a message naming it, so a task never half-runs.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_STEP_TIMEOUT = 600
STEP_KINDS = ("build", "push", "cmd")
STEP_KEYS = {
    "build",
    "push",
    "cmd",
    "id",
    "when",
    "timeout",
    "env",
    "entryPoint",
    "workingDirectory",
    "disableWorkingDirectoryOverride",
    "ignoreErrors",
    "startDelay",
    "retries",
}
TEMPLATE = re.compile(r"\{\{\s*\.(Run|Values)\.([A-Za-z0-9_]+)\s*\}\}")
ALIAS = re.compile(r"\$(Registry|RegistryName|ID|Date|OS|Architecture|SharedVolume)\b")


class TaskError(ValueError):
    """The task definition cannot be run."""


@dataclass(frozen=True)
class RunContext:
    run_id: str
    registry: str  # login server
    registry_name: str
    os: str = "linux"
    architecture: str = "amd64"
    date: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%Sz"))


@dataclass(frozen=True)
class Step:
    kind: str
    args: list[str]
    id: str
    timeout: int = DEFAULT_STEP_TIMEOUT
    env: tuple[str, ...] = ()
    entry_point: str | None = None
    working_directory: str | None = None
    disable_working_directory_override: bool = False
    ignore_errors: bool = False


@dataclass(frozen=True)
class Task:
    steps: list[Step]
    env: tuple[str, ...] = ()


def render(text: str, context: RunContext, values: dict[str, str]) -> str:
    run_values = {
        "ID": context.run_id,
        "Registry": context.registry,
        "RegistryName": context.registry_name,
        "Date": context.date,
        "OS": context.os,
        "Architecture": context.architecture,
        "SharedVolume": "acb_home_vol",
    }

    def template(match: re.Match[str]) -> str:
        scope, key = match.groups()
        source = run_values if scope == "Run" else values
        if key not in source:
            raise TaskError(f"template value .{scope}.{key} is not defined")
        return source[key]

    text = TEMPLATE.sub(template, text)
    return ALIAS.sub(lambda m: run_values[m.group(1)], text)


def _timeout(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise TaskError(f"{where}: timeout must be a positive number of seconds")
    return raw


def _env(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(e, str) and "=" in e for e in raw):
        raise TaskError(f"{where}: env must be a list of KEY=VALUE strings")
    return tuple(raw)


def parse(text: str, context: RunContext, values: dict[str, str] | None = None) -> Task:
    try:
        document = yaml.safe_load(render(text, context, values or {}))
    except yaml.YAMLError as exc:
        raise TaskError(f"the task is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise TaskError("the task must be a YAML mapping with 'steps'")
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise TaskError("the task has no steps")
    steps = []
    for index, raw in enumerate(raw_steps):
        where = f"step {index}"
        if not isinstance(raw, dict):
            raise TaskError(f"{where}: a step must be a mapping")
        unknown = set(raw) - STEP_KEYS
        if unknown:
            raise TaskError(f"{where}: unsupported keys {sorted(unknown)}")
        kinds = [k for k in STEP_KINDS if k in raw]
        if len(kinds) != 1:
            raise TaskError(f"{where}: a step needs exactly one of build, push, cmd")
        kind = kinds[0]
        value = raw[kind]
        if kind == "push":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise TaskError(f"{where}: push takes a list of image names")
            args = list(value)
        else:
            if not isinstance(value, str) or not value.strip():
                raise TaskError(f"{where}: {kind} takes a command line")
            try:
                args = shlex.split(value)
            except ValueError as exc:
                raise TaskError(f"{where}: cannot split '{value}': {exc}") from exc
        steps.append(
            Step(
                kind=kind,
                args=args,
                id=str(raw.get("id") or f"acb_step_{index}"),
                timeout=_timeout(raw.get("timeout", DEFAULT_STEP_TIMEOUT), where),
                env=_env(raw.get("env"), where),
                entry_point=raw.get("entryPoint"),
                working_directory=raw.get("workingDirectory"),
                disable_working_directory_override=bool(raw.get("disableWorkingDirectoryOverride")),
                ignore_errors=bool(raw.get("ignoreErrors")),
            )
        )
    return Task(steps=steps, env=_env(document.get("env"), "task"))


@dataclass(frozen=True)
class BuildArgs:
    tags: list[str]
    dockerfile: str
    context: str
    build_args: list[str]
    target: str | None
    no_cache: bool
    labels: list[str]


def parse_build(args: list[str]) -> BuildArgs:
    """Parse a `build:` step's docker-build command line."""
    tags: list[str] = []
    build_args: list[str] = []
    labels: list[str] = []
    dockerfile = "Dockerfile"
    target = None
    no_cache = False
    positional: list[str] = []
    with_value = {
        "-t",
        "--tag",
        "--image",
        "-f",
        "--file",
        "--build-arg",
        "--target",
        "--label",
        "--platform",
    }
    items = iter(args)
    for item in items:
        name, eq, inline = item.partition("=")
        if item.startswith("-") and eq and name in with_value:
            option, value = name, inline
        elif item in with_value:
            option = item
            following = next(items, None)
            if following is None:
                raise TaskError(f"build: {item} needs a value")
            value = following
        elif item in ("--no-cache", "--pull"):
            no_cache = no_cache or item == "--no-cache"
            continue
        elif item.startswith("-"):
            raise TaskError(f"build: unsupported option {item}")
        else:
            positional.append(item)
            continue
        if option in ("-t", "--tag", "--image"):
            tags.append(value)
        elif option in ("-f", "--file"):
            dockerfile = value
        elif option == "--build-arg":
            build_args.append(value)
        elif option == "--target":
            target = value
        elif option == "--label":
            labels.append(value)
    if len(positional) != 1:
        raise TaskError("build: exactly one build context is required (for example '.')")
    return BuildArgs(tags, dockerfile, positional[0], build_args, target, no_cache, labels)
