"""The operators' page in a real browser: what tests/browser shares (the site under test, a watched page).

Debian's chromium, headless, driven by Playwright; screenshots of each view go to $DOCKMASTER_SCREENSHOTS
(default .artifacts/screenshots).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from devstack.stack import REPO_ROOT
from tests.support.e2e import App

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
