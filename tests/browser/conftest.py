"""The operators' page in a real browser: Debian's chromium, headless, driven by Playwright.

The app runs on devstack's local Functions host with a registry of its own (events wired, podman
logged in) and cleanup on in dry run for this module's labs only. Every page a test opens is watched:
a request to another origin, a console error (a CSP violation is one) or an uncaught exception fails
the test. Screenshots of each view go to $DOCKMASTER_SCREENSHOTS (default .artifacts/screenshots).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.data.tables import TableClient
from playwright.sync_api import Browser, sync_playwright

from devstack import stack
from devstack.host.keys import HostKeys
from tests.support.browser import CHROMIUM, Site, Watched
from tests.support.e2e import App, podman_logged_in
from tests.support.paths import POLICY
from tests.support.stack import group_of, new_registry, wire_app


@pytest.fixture(scope="module")
def site(
    devstack: Any,
    resource_client: Any,
    acr_client: Any,
    credential: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    registry = new_registry(resource_client, acr_client, "web", adminUserEnabled=True)
    labs = f"weblab-{uuid.uuid4().hex[:6]}"
    wired = wire_app(
        devstack,
        credential,
        registry,
        POLICY,
        CLEANUP_ENABLED="true",
        CLEANUP_DRY_RUN="true",
        CLEANUP_SCHEDULE="0 0 0 1 1 *",  # the plans here are the tests' own
        CLEANUP_LAB_TAG="",
        CLEANUP_NAME_PATTERNS=f"{labs}-*",
    )
    podman = podman_logged_in(devstack, acr_client, registry, tmp_path_factory.mktemp("podman-web"))
    table = TableClient.from_connection_string(
        devstack.endpoints["storageConnectionString"], wired.table_name
    )
    app = App(registry, wired.url, wired.webhook, table, podman, devstack, wired.settings)
    key = HostKeys.load_or_create(devstack.home / wired.name).function
    yield Site(app, key, labs)
    stack.stop_service(devstack.home, wired.name)
    resource_client.resource_groups.begin_delete(group_of(registry.id), polling=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def watched(browser: Browser, site: Site) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    watched = Watched(page, site.url)
    origin = urlsplit(site.url).netloc

    def on_request(request: Any) -> None:
        if urlsplit(request.url).netloc != origin and not request.url.startswith(("data:", "about:")):
            watched.problems.append(f"request to another origin: {request.url}")

    page.on("request", on_request)
    page.on("pageerror", lambda error: watched.problems.append(f"uncaught: {error}"))

    def on_console(message: Any) -> None:
        if message.type == "error" and not any(part in message.text for part in watched.allowed):
            watched.problems.append(f"console error: {message.text}")

    page.on("console", on_console)
    yield watched
    context.close()
    assert watched.problems == []
