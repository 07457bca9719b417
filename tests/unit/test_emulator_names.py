"""The emulator's name checks are whole-string matches: a trailing newline, a carriage return, a NUL or a
look-alike digit never makes a name Azure would refuse acceptable (`$` alone matches before a final `\\n`)."""

from __future__ import annotations

import re

import pytest

from devstack.emulator.acr import front as dataplane
from devstack.emulator.arm import groups, registry_resources
from devstack.emulator.errors import AcrError
from devstack.emulator.eventgrid import subscriptions as eventgrid_subscriptions
from devstack.emulator.eventgrid import topics as eventgrid_topics

CHECKS: list[tuple[re.Pattern[str], str]] = [
    (dataplane.REPOSITORY, "team/app"),
    (dataplane.TAG, "v1.2"),
    (dataplane.DIGEST, "sha256:" + "a" * 64),
    (registry_resources.REGISTRY_NAME, "dockmasterdev"),
    (groups.RG_NAME, "az204-acr-rg"),
    (eventgrid_topics.TOPIC_NAME, "verdicts-topic"),
    (eventgrid_topics.SYSTEM_TOPIC_NAME, "registry-events"),
    (eventgrid_subscriptions.SUBSCRIPTION_NAME, "to-the-app"),
    (eventgrid_subscriptions.CONTAINER_NAME, "dead-letters"),
]


@pytest.mark.parametrize(("pattern", "good"), CHECKS, ids=[p.pattern[:24] for p, _ in CHECKS])
@pytest.mark.parametrize("suffix", ["\n", "\r", "\x00", "\r\n"])
def test_a_name_with_a_control_character_is_refused(pattern: re.Pattern[str], good: str, suffix: str) -> None:
    assert pattern.fullmatch(good)
    assert not pattern.fullmatch(good + suffix)
    assert not pattern.fullmatch(suffix + good)


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        (
            dataplane.TAG,
            "v\u0661",
        ),  # ARABIC-INDIC DIGIT ONE: \w would take it, the distribution spec does not
        (dataplane.TAG, "\u00e9t\u00e9"),
        (registry_resources.REGISTRY_NAME, "dockmaster\uff11"),  # FULLWIDTH DIGIT ONE
        (eventgrid_topics.TOPIC_NAME, "topic\u0661"),
    ],
)
def test_ascii_names_refuse_look_alikes(pattern: re.Pattern[str], name: str) -> None:
    assert not pattern.fullmatch(name)


@pytest.mark.parametrize("name", ["team/app\n", "team/app\r", "team\x00/app", "team/\u0430pp"])
def test_repository_names_are_checked_whole(name: str) -> None:
    with pytest.raises(AcrError, match="invalid repository name"):
        dataplane.check_repository(name)


def test_scopes_and_paths_are_parsed_whole() -> None:
    assert dataplane.SCOPE.fullmatch("repository:team/app:pull") is not None
    assert dataplane.SCOPE.fullmatch("repository:team/app:pull\n") is None
    assert dataplane.V2_PATH.fullmatch("team/app/manifests/v1\n") is None
