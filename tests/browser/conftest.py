"""The operators' page in a real browser: Debian's chromium, headless, driven by Playwright.

The app runs on devstack's local Functions host with a registry of its own (events wired, podman
logged in) and cleanup on in dry run for this module's labs only. Every page a test opens is watched:
a request to another origin, a console error (a CSP violation is one) or an uncaught exception fails
the test. Screenshots of each view go to $DOCKMASTER_SCREENSHOTS (default .artifacts/screenshots).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from azure.data.tables import TableClient
from playwright.sync_api import Browser, Page, sync_playwright

from devstack import stack
from devstack.host.keys import HostKeys
from devstack.stack import REPO_ROOT
from tests.support.e2e import App, podman_logged_in
from tests.support.paths import POLICY
from tests.support.stack import group_of, new_registry, wire_app

CHROMIUM = os.environ.get("DOCKMASTER_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("DOCKMASTER_SCREENSHOTS", REPO_ROOT / ".artifacts" / "screenshots"))
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"


@dataclass
class Site:
    app: App
    key: str
    labs: str  # the prefix of this module's lab resource groups (CLEANUP_NAME_PATTERNS)

    @property
    def url(self) -> str:
        return self.app.base_url

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-functions-key": self.key}, timeout=120)


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    origin: str
    problems: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)  # console errors a test provokes on purpose

    def open(self, fragment: str = "#/") -> None:
        self.page.goto(f"{self.origin}/api/ui/{fragment}")
        self.ready()

    def ready(self) -> None:
        """Wait until the view has rendered every read it made (app.js sets data-state=ready)."""
        self.page.wait_for_selector("body[data-state=ready]", state="attached")

    def click(self, locator: Any) -> None:
        """Follow a link to another view and wait for it."""
        self.page.evaluate("document.body.dataset.state = 'navigating'")
        locator.click()
        self.ready()

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def audit(self) -> list[dict[str, Any]]:
        """axe-core's WCAG 2 A/AA violations on the page as it is now."""
        # Evaluated through the DevTools protocol: a <script> tag would (rightly) be refused by the CSP.
        self.page.evaluate(AXE.read_text())
        result: dict[str, Any] = self.page.evaluate(
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})"
        )
        return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]} for v in result["violations"]]


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
