"""Click through the operators' page in chromium: what an operator sees of a push, a failing check and
a cleanup plan, read from the API with the function key the page is given."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from shared.cleanup.planner import iso
from tests.support.browser import Site, Watched
from tests.support.e2e import local_image, push
from tests.support.images import tag_many


def open_signed_in(watched: Watched, site: Site) -> None:
    # As `make run` prints it: the key in the fragment, which the page moves into the tab's storage.
    watched.open(f"#code={site.key}")
    assert "#code" not in watched.page.url
    assert site.key not in watched.page.url


def test_a_pushed_images_verdict_appears(watched: Watched, site: Site, hello_context: Path) -> None:
    push(site.app, local_image(hello_context), "web/hello:v1")
    verdict = site.app.verdict("web/hello", "v1")
    assert verdict["Status"] == "passed"
    page = watched.page

    open_signed_in(watched, site)
    registry = site.app.registry.name
    expect(page.get_by_role("heading", level=1)).to_have_text("Registries")
    watched.shot("registries")

    watched.click(page.get_by_role("link", name=registry, exact=True))
    watched.click(page.get_by_role("link", name="web/hello", exact=True))
    row = page.get_by_role("row").filter(has=page.get_by_text("v1", exact=True))
    expect(row.locator(".badge")).to_have_text("passed")
    watched.shot("tags")

    watched.click(row.get_by_role("link", name="passed"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("web/hello:v1")
    checks = page.get_by_role("table").first
    for check in json.loads(verdict["Checks"]):
        check_row = checks.get_by_role("row").filter(has=page.get_by_text(check["name"], exact=True))
        expect(check_row.locator(".badge")).to_have_text(check["status"])
    expect(page.locator("pre.log")).not_to_be_empty()
    watched.shot("verdict")

    watched.click(page.get_by_role("link", name=f"Run {verdict['RunId']}"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(verdict["RunId"])
    watched.shot("run")
    assert watched.audit() == []


def test_a_failing_check_shows_its_reason(watched: Watched, site: Site, hello_context: Path) -> None:
    # strict/*: no root user, semver tags (tests/data/policy.yaml); FROM scratch runs as root.
    push(site.app, local_image(hello_context), "strict/web:latest")
    verdict = site.app.verdict("strict/web", "latest")
    failed = {c["name"]: c["reason"] for c in json.loads(verdict["Checks"]) if c["status"] == "failed"}
    assert "runs as root" in failed["user"]
    page = watched.page

    open_signed_in(watched, site)
    watched.click(page.get_by_role("link", name=site.app.registry.name, exact=True))
    watched.click(page.get_by_role("link", name="strict/web", exact=True))
    row = page.get_by_role("row").filter(has=page.get_by_text("latest", exact=True))
    watched.click(row.get_by_role("link", name="failed"))

    for name, reason in failed.items():
        check_row = page.get_by_role("row").filter(has=page.get_by_text(name, exact=True)).first
        expect(check_row.locator(".badge")).to_have_text("failed")
        expect(check_row).to_contain_text(reason)
    watched.shot("verdict-failed")
    assert watched.audit() == []


def test_the_cleanup_plan_shows_a_protected_group_with_its_reason(
    watched: Watched, site: Site, resource_client: Any
) -> None:
    now = dt.datetime.now(dt.UTC)
    labs = {
        f"{site.labs}-expired": {"expiresOn": iso(now - dt.timedelta(hours=2))},
        f"{site.labs}-protected": {"expiresOn": iso(now - dt.timedelta(hours=1)), "do-not-delete": "true"},
        f"{site.labs}-later": {"expiresOn": iso(now + dt.timedelta(days=2))},
    }
    for name, tags in labs.items():
        resource_client.resource_groups.create_or_update(name, {"location": "eastus", "tags": tags})
    with site.api() as api:
        plan = api.post("/api/cleanup/plan", json={}).raise_for_status().json()
        run = (
            api.post("/api/cleanup/execute", json={"planId": plan["planId"], "confirm": True, "dryRun": True})
            .raise_for_status()
            .json()
        )
    decisions = {g["name"]: (g["decision"], g["reason"]) for g in plan["groups"]}
    assert decisions[f"{site.labs}-protected"] == ("protected", "protection tag 'do-not-delete=true'")
    page = watched.page

    open_signed_in(watched, site)
    watched.click(page.get_by_role("link", name="Lab cleanup"))
    latest = page.get_by_role("table", name=f"Labs in plan {run['planId']}")
    for name, (decision, reason) in decisions.items():
        row = latest.get_by_role("row").filter(has=page.get_by_text(name, exact=True))
        expect(row.locator(".badge")).to_have_text(decision)
        expect(row).to_contain_text(reason)
    dated = [g for g in plan["groups"] if g["expiry"]]  # a protected lab's expiry is not read
    expect(page.locator("svg.timeline circle")).to_have_count(len(dated))
    watched.shot("cleanup")

    watched.click(page.get_by_role("link", name=run["runId"]))
    expired = page.get_by_role("row").filter(has=page.get_by_text(f"{site.labs}-expired", exact=True))
    expect(expired.locator(".badge")).to_have_text("would-delete")
    watched.shot("cleanup-run")
    assert watched.audit() == []
    for name in labs:
        resource_client.resource_groups.begin_delete(name, polling=False)


def test_without_a_key_the_page_asks_for_one(watched: Watched, site: Site) -> None:
    watched.allowed.append("status of 401")  # the API's answer to the first read, as the browser logs it
    page = watched.page
    watched.open("#/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert watched.audit() == []

    # Keyboard only: the view's heading has the focus; the sign-in link, then the labelled field follow.
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="/.auth/login/aad")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Function key")).to_be_focused()
    page.keyboard.type(site.key)
    page.evaluate("document.body.dataset.state = 'navigating'")
    page.keyboard.press("Enter")
    watched.ready()
    expect(page.get_by_role("heading", level=1)).to_have_text("Registries")
    expect(page.get_by_role("heading", level=1)).to_be_focused()


def test_the_api_docs_render_from_the_apps_own_files(watched: Watched, site: Site) -> None:
    page = watched.page
    page.goto(f"{site.url}/api/docs?code={site.key}")
    expect(page.get_by_text("/api/registries/{registry}/repositories", exact=True).first).to_be_visible()
    watched.shot("api-docs")


def test_tags_are_read_a_page_at_a_time(watched: Watched, site: Site) -> None:
    tags = [f"t{i:03d}" for i in range(150)]
    # nosmoke/*: verified without a smoke run (each tag's push is an event like any other).
    tag_many(
        str(site.app.devstack.endpoints["registryBackend"]), site.app.registry.name, "nosmoke/many", tags
    )
    page = watched.page

    open_signed_in(watched, site)
    watched.click(page.get_by_role("link", name=site.app.registry.name, exact=True))
    watched.click(page.get_by_role("link", name="nosmoke/many", exact=True))
    rows = page.get_by_role("table", name="Tags of nosmoke/many").locator("tbody tr")
    expect(rows).to_have_count(100)
    expect(rows.first).to_contain_text("t000")
    expect(rows.last).to_contain_text("t099")
    watched.click(page.get_by_role("link", name="Next page"))
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("t100")
    expect(rows.last).to_contain_text("t149")
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    expect(page.get_by_text("Page 2")).to_be_visible()
    watched.shot("tags-paged")
    # Back to the first page with the browser's own button: the page is in the address.
    page.evaluate("document.body.dataset.state = 'navigating'")
    page.go_back()
    watched.ready()
    expect(rows).to_have_count(100)
