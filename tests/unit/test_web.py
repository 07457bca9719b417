"""The operators' page's files (shared/web): only the listed files, with their types, a strict CSP, ETags,
nothing fetched from another origin, and all of them in the deployed package."""

from __future__ import annotations

import json
import re

import azure.functions as func
import pathspec
import pytest

from devstack.stack import REPO_ROOT
from shared import web


@pytest.mark.parametrize("path", sorted(web.ASSETS))
def test_every_listed_file_is_served_with_its_type(path: str) -> None:
    answer = web.serve(path)
    assert answer.status == 200
    assert answer.body
    assert answer.headers["Content-Type"] == web.ASSETS[path][2]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "path", ["../errors.py", "static/app.js", "app.js/..", "__init__.py", "swagger/../app.js", "%2e%2e/x"]
)
def test_anything_else_is_404_in_the_one_error_shape(path: str) -> None:
    answer = web.serve(path)
    assert answer.status == 404
    assert json.loads(answer.body)["error"]["code"] == "NotFound"


def test_the_pages_own_policy_allows_no_inline_script_or_style() -> None:
    policy = web.serve("").headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "unsafe" not in policy
    assert "connect-src 'self'" in policy


def test_a_matching_etag_answers_304_without_the_body() -> None:
    first = web.serve("app.js")
    again = web.serve("app.js", if_none_match=f'"other", {first.headers["ETag"]}')
    assert (again.status, again.body) == (304, b"")
    assert web.serve("app.js", if_none_match='"other"').status == 200


def test_the_page_loads_nothing_from_another_origin() -> None:
    for path in ("", "docs", "app.js", "app.css", "docs.js"):
        text = web.serve(path).body.decode()
        # The only URL in them: the SVG namespace, a name rather than something fetched.
        assert set(re.findall(r"[a-z]+://[^\s\"'`)]+", text)) <= {"http://www.w3.org/2000/svg"}, path


def test_the_page_never_writes_markup_from_data() -> None:
    script = web.serve("app.js").body.decode()
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script
    assert "eval(" not in script


def test_the_files_ship_in_the_function_package() -> None:
    ignored = pathspec.GitIgnoreSpec.from_lines((REPO_ROOT / ".funcignore").read_text().splitlines())
    ours = [f"shared/web/static/{name}" for where, name, _ in web.ASSETS.values() if where == web.OURS]
    assert ours
    assert [path for path in ours if ignored.match_file(path)] == []
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    assert re.search(r"^fastapi-swagger==", requirements, re.MULTILINE)


def test_swagger_ui_is_a_release_that_renders_openapi_3_1() -> None:
    # FastAPI writes OpenAPI 3.1; Swagger UI renders 3.1 from its 5.0 on.
    from shared.api import app

    assert app.api.openapi()["openapi"].startswith("3.1")
    bundle = web.serve("swagger/swagger-ui-bundle.js").body.decode()
    assert "OpenAPI 3.1" in bundle or "3.1.0" in bundle


def test_the_console_function_answers_with_the_files_headers() -> None:
    import function_app

    request = func.HttpRequest(
        "GET",
        "http://localhost/api/ui/app.css",
        headers={},
        params={},
        route_params={"path": "app.css"},
        body=b"",
    )
    answer = function_app.console(request)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/css; charset=utf-8"
    index = func.HttpRequest("GET", "http://localhost/api/ui", headers={}, params={}, body=b"")
    assert b'<script type="module" src="/api/ui/app.js">' in function_app.console(index).get_body()
