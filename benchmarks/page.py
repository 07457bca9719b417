"""The operators' page on a repository of 5,000 tags, in headless chromium (tests/browser's browser).

Called by benchmarks.api with its host and repository: the time from asking for a view to the view having
rendered every read it made (app.js sets body[data-state=ready]), for the first and the last page of
tags, loaded afresh and reached by following the page's own links, against the API's own answer time
for the same page. Prints figures, asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import time
from urllib.parse import quote

from benchmarks.summary import summary

CHROMIUM = os.environ.get("DOCKMASTER_CHROMIUM", "/usr/bin/chromium")
ROUNDS = 10
READY = "body[data-state=ready]"


def measure_page(
    base: str, key: str, registry: str, repository: str, last_page_after: str, api_ms: float
) -> None:
    from playwright.sync_api import sync_playwright

    view = f"#/registries/{quote(registry, safe='')}/repositories/{quote(repository, safe='')}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{base}/api/ui/#code={key}")
        page.wait_for_selector(READY, state="attached")

        def load(fragment: str) -> float:
            started = time.perf_counter()
            page.goto(f"{base}/api/ui/{fragment}")
            page.reload()  # a fresh document each round, the files revalidated by ETag
            page.wait_for_selector(READY, state="attached")
            return (time.perf_counter() - started) * 1000

        def navigate(fragment: str) -> float:
            page.evaluate("document.body.dataset.state = 'navigating'")
            started = time.perf_counter()
            page.evaluate(f"window.location.hash = {fragment[1:]!r}")
            page.wait_for_selector(READY, state="attached")
            return (time.perf_counter() - started) * 1000

        results = {}
        last = f"{view}?last={quote(last_page_after, safe='')}&page=50"
        for label, fragment in (("first page", view), ("page 50 of 50", last)):
            loads = [load(fragment) for _ in range(ROUNDS)]
            hops = [navigate(fragment if i % 2 else "#/") for i in range(2 * ROUNDS)][1::2]
            rows = page.locator("tbody tr").count()
            results[label] = (statistics.median(loads), statistics.median(hops), rows)
            print(
                f"page, tags view, {label}: {rows} rows; a fresh load {statistics.median(loads):.0f} ms, "
                f"following a link {statistics.median(hops):.0f} ms (medians of {ROUNDS}); "
                f"the API's answer alone {api_ms:.0f} ms"
            )
        browser.close()
    first_hop = results["first page"][1]
    summary(
        "page: tags view of 5,000 tags, first page (chromium)",
        f"{first_hop:.0f} ms by link, {results['first page'][0]:.0f} ms fresh",
        f"{first_hop / api_ms:.1f}× the API's {api_ms:.0f} ms",
        f"page 50: {results['page 50 of 50'][1]:.0f} ms by link; 100 rows a page",
    )
