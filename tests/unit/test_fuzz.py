"""Property-based checks of the parsers that take hostile input: events, policies, task YAML."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import RegistryRef
from shared.errors import ConfigurationError, InvalidInput
from shared.events import parse
from shared.policy import parse_policy
from shared.tasks import cmd_task_yaml, smoke_command

REF = RegistryRef.parse(
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.ContainerRegistry/registries/fuzzreg"
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=40) | JSON,
        "topic": st.sampled_from([REF.resource_id, REF.resource_id.upper(), "/x", ""]) | JSON,
        "eventType": st.sampled_from(
            ["Microsoft.ContainerRegistry.ImagePushed", "Microsoft.ContainerRegistry.ImageDeleted", "x"]
        )
        | JSON,
        "eventTime": st.sampled_from(["2026-11-29T08:00:00Z", "nope"]) | JSON,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "target": st.fixed_dictionaries(
                    {},
                    optional={
                        "repository": st.text(max_size=60) | JSON,
                        "tag": st.text(max_size=60) | JSON,
                        "digest": st.sampled_from(["sha256:" + "a" * 64, "sha256:../x"]) | JSON,
                        "mediaType": st.text(max_size=20),
                        "size": JSON,
                    },
                )
                | JSON
            },
        )
        | JSON,
        "specversion": st.sampled_from(["1.0", ""]),
    },
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(FIELDS | JSON)
def test_event_parser_only_ever_refuses_cleanly(event: Any) -> None:
    try:
        parsed = parse(event, {REF.key: REF})
    except InvalidInput:
        return
    # Whatever got through is a well-formed image event from the configured registry.
    assert parsed.registry == REF
    assert parsed.digest.startswith("sha256:")
    assert ".." not in parsed.repository
    assert parsed.tag is None or " " not in parsed.tag


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | JSON.map(lambda value: yaml.safe_dump(value)))
def test_policy_loader_only_ever_refuses_cleanly(text: str) -> None:
    try:
        policy = parse_policy(text, "fuzz.yaml")
    except ConfigurationError:
        return
    assert policy.rule_for("any/repository") is not None


@settings(max_examples=300)
@given(st.text(max_size=200), st.one_of(st.none(), st.integers(min_value=1, max_value=28800)))
def test_task_yaml_carries_any_command_verbatim(command: str, timeout: int | None) -> None:
    document = yaml.safe_load(cmd_task_yaml(command, timeout))
    (step,) = document["steps"]
    assert step["cmd"] == command
    assert set(step) <= {"cmd", "disableWorkingDirectoryOverride", "timeout"}


@settings(max_examples=300)
@given(st.lists(st.text(max_size=30), max_size=6))
def test_smoke_arguments_stay_arguments(args: list[str]) -> None:
    import shlex

    command = smoke_command("team/app", "sha256:" + "b" * 64, args)
    image, *rest = shlex.split(command)
    assert image == "$Registry/team/app@sha256:" + "b" * 64
    assert rest == args
    assert json.loads(json.dumps(command)) == command
