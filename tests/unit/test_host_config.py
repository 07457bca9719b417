"""host.json, local.settings.json, `%SETTING%` expressions and the host keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.host.config import (
    HostConfig,
    QueueOptions,
    apply_settings,
    load_local_settings,
    parse_timespan,
    resolve_expression,
)
from devstack.host.errors import HostError
from devstack.host.keys import HostKeys


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:30", 30), ("00:05:00", 300), ("01:00:00", 3600), ("1.02:00:00", 93600), ("00:00:00.250", 0.25)],
)
def test_timespan(text: str, seconds: float) -> None:
    assert parse_timespan(text, "x") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30", "5m", "00:00", "aa:bb:cc", "00:00:３0", "00:00:30\x00"])
def test_bad_timespan(text: str) -> None:
    with pytest.raises(HostError, match="TimeSpan"):
        parse_timespan(text, "x")


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "host.json"
    path.write_text(json.dumps(data))
    return path


def test_defaults_without_host_json() -> None:
    config = HostConfig.load(None)
    assert config.route_prefix == "api"
    assert config.function_timeout == 1800
    assert config.queues.batch_size == 16
    assert config.queues.max_dequeue_count == 5
    assert config.queues.visibility_timeout == 0
    assert config.queues.max_polling_interval == 60
    assert config.queues.message_encoding == "base64"


def test_host_json_values(tmp_path: Path) -> None:
    config = HostConfig.load(
        write(
            tmp_path,
            {
                "version": "2.0",
                "functionTimeout": "00:02:00",
                "functions": ["a", "b"],
                "extensions": {
                    "http": {"routePrefix": "/v1/"},
                    "queues": {
                        "batchSize": 4,
                        "newBatchThreshold": 1,
                        "maxDequeueCount": 2,
                        "visibilityTimeout": "00:00:05",
                        "maxPollingInterval": "00:00:02",
                        "messageEncoding": "none",
                    },
                },
            },
        )
    )
    # Kept as written: the host joins "/v1/" + "/" + route, and ASP.NET refuses the doubled '/'.
    assert config.route_prefix == "/v1/"
    assert config.function_timeout == 120
    assert config.functions == ("a", "b")
    assert config.queues == QueueOptions(4, 1, 2.0, 5.0, 2, "none")


def test_empty_route_prefix_and_unlimited_timeout(tmp_path: Path) -> None:
    config = HostConfig.load(
        write(
            tmp_path, {"version": "2.0", "functionTimeout": "-1", "extensions": {"http": {"routePrefix": ""}}}
        )
    )
    assert (config.route_prefix, config.function_timeout) == ("", None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "version"),
        ({"version": "1.0"}, "version"),
        ({"version": "2.0", "extensions": {"queues": {"batchSize": 64}}}, "batchSize"),
        ({"version": "2.0", "extensions": {"queues": {"maxDequeueCount": "5"}}}, "maxDequeueCount"),
        ({"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.01"}}}, "at least"),
        ({"version": "2.0", "extensions": {"queues": {"messageEncoding": "utf8"}}}, "messageEncoding"),
        ({"version": "2.0", "functions": "a"}, "functions"),
    ],
)
def test_invalid_host_json(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(HostError, match=message):
        HostConfig.load(write(tmp_path, data))


def test_batch_threshold_follows_batch_size(tmp_path: Path) -> None:
    config = HostConfig.load(write(tmp_path, {"version": "2.0", "extensions": {"queues": {"batchSize": 2}}}))
    assert config.queues.new_batch_threshold == QueueOptions().new_batch_threshold // 8


def test_local_settings_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "from file", "B": "b", "FLAG": True, "N": 3}})
    )
    values = load_local_settings(path)
    assert values == {"A": "from file", "B": "b", "FLAG": "true", "N": "3"}
    environ = {"A": "from environment"}
    assert apply_settings(values, environ) == ["A"]
    assert environ == {"A": "from environment", "B": "b", "FLAG": "true", "N": "3"}


def test_encrypted_local_settings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(HostError, match="encrypted"):
        load_local_settings(path)


def test_setting_expressions() -> None:
    environ = {"QUEUE": "work", "ENV": "dev"}
    assert resolve_expression("%QUEUE%", environ, "f") == "work"
    assert resolve_expression("%QUEUE%-%ENV%", environ, "f") == "work-dev"
    assert resolve_expression("plain", environ, "f") == "plain"
    with pytest.raises(HostError, match=r"function 'f'.*'%MISSING%' does not resolve"):
        resolve_expression("%MISSING%", environ, "function 'f'")


def test_keys_are_made_once_and_checked_by_level(tmp_path: Path) -> None:
    keys = HostKeys.load_or_create(tmp_path)
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    assert HostKeys.load_or_create(tmp_path) == keys
    assert keys.allows("ANONYMOUS", None)
    assert not keys.allows("FUNCTION", None)
    assert not keys.allows("FUNCTION", "wrong")
    assert not keys.allows("FUNCTION", "ñ")
    assert keys.allows("FUNCTION", keys.function)
    assert keys.allows("FUNCTION", keys.master)
    assert not keys.allows("ADMIN", keys.function)
    assert keys.allows("ADMIN", keys.master)
    assert not keys.allows_webhook(keys.function)
    assert keys.allows_webhook(keys.eventgrid)
    assert keys.allows_webhook(keys.master)
    assert HostKeys.load_or_create(tmp_path / "other") != keys


def test_broken_keys_file(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text("{}")
    with pytest.raises(HostError, match="not a valid keys file"):
        HostKeys.load_or_create(tmp_path)
