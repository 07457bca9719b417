"""Schemathesis against the served OpenAPI document: function_app on the real local Functions host.

The schema is the host's own /api/openapi.json (fetched with the function key); every operation gets a
few generated requests, and each response must not be a 5xx, must have a documented status code, and
must conform to the documented response schema. Roles are off, so the function key is the only auth.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.support.api import local_host
from tests.support.paths import POLICY
from tests.support.stack import Devstack

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served(
    devstack: Devstack, registry: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    settings = {
        "DOCKMASTER_REGISTRIES": registry.id,
        "DOCKMASTER_POLICY_PATH": str(POLICY),
        "DOCKMASTER_VERDICTS_TABLE": f"schemaverdicts{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_RUNS_QUEUE": f"schema-runs-{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_API_ROLES": "false",
        "CLEANUP_SCHEDULE": "0 0 * * * *",
    }
    with local_host(devstack, tmp_path_factory.mktemp("schema-host"), settings) as (url, key, _log):
        yield url, key


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, str]) -> Any:
    url, key = served
    return schemathesis.openapi.from_url(
        f"{url}/api/openapi.json", headers={"x-functions-key": key}, timeout=30
    )


def test_every_operation_conforms(api_schema: Any, served: tuple[str, str]) -> None:
    # One hypothesis run per operation, in one test: schemathesis' lazy pytest parametrization
    # (schemathesis.pytest.from_fixture) rewrites pytest-internal node ids that pytest 9 no longer has.
    url, key = served
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 16

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            case.call_and_validate(base_url=url, headers={"x-functions-key": key}, checks=CHECKS, timeout=30)

        try:
            conforms()
        except Exception as error:  # collect every operation's failure, then report them all
            failures[f"{operation.method.upper()} {operation.path}"] = str(error)[:2000]
    assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())
