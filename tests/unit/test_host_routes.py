"""HTTP trigger route templates: parameters, constraints, optional and catch-all parts, precedence."""

from __future__ import annotations

import pytest

from devstack.host.routes import RouteError, RouteTemplate


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("api/hello", "/api/hello", {}),
        ("api/hello", "/API/Hello/", {}),
        ("api/hello", "/api/hello/x", None),
        ("api/hello/{name}", "/api/hello/World", {"name": "World"}),
        ("api/hello/{name}", "/api/hello", None),
        ("api/items/{id:int}", "/api/items/42", {"id": "42"}),
        ("api/items/{id:int}", "/api/items/-7", {"id": "-7"}),
        ("api/items/{id:int}", "/api/items/abc", None),
        ("api/items/{id:int}", "/api/items/99999999999", None),
        ("api/items/{id:long}", "/api/items/99999999999", {"id": "99999999999"}),
        ("api/items/{id:int}/{part?}", "/api/items/1", {"id": "1"}),
        ("api/items/{id:int}/{part?}", "/api/items/1/x", {"id": "1", "part": "x"}),
        ("api/list/{page=1}", "/api/list", {"page": "1"}),
        ("api/list/{page=1}", "/api/list/3", {"page": "3"}),
        ("api/files/{*path}", "/api/files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("api/files/{**path}", "/api/files/a/b", {"path": "a/b"}),
        ("api/files/{*path}", "/api/files", {}),
        ("api/{*route}", "/api", {}),
        ("api/dl/{file}.{ext}", "/api/dl/report.tar.gz", {"file": "report", "ext": "tar.gz"}),
        ("api/v{version:int}/x", "/api/v2/x", {"version": "2"}),
        ("api/v{version:int}/x", "/api/vX/x", None),
        ("api/flag/{on:bool}", "/api/flag/True", {"on": "True"}),
        ("api/flag/{on:bool}", "/api/flag/yes", None),
        (
            "api/g/{id:guid}",
            "/api/g/6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            {"id": "6f9619ff-8b86-d011-b42d-00cf4fc964ff"},
        ),
        ("api/g/{id:guid}", "/api/g/nope", None),
        ("api/a/{name:alpha}", "/api/a/abc", {"name": "abc"}),
        ("api/a/{name:alpha}", "/api/a/ab1", None),
        ("api/n/{n:int:min(1):max(10)}", "/api/n/10", {"n": "10"}),
        ("api/n/{n:int:min(1):max(10)}", "/api/n/0", None),
        ("api/r/{n:range(5,6)}", "/api/r/6", {"n": "6"}),
        ("api/r/{n:range(5,6)}", "/api/r/7", None),
        ("api/l/{s:length(2)}", "/api/l/ab", {"s": "ab"}),
        ("api/l/{s:length(2,3)}", "/api/l/abcd", None),
        ("api/l/{s:minlength(2):maxlength(3)}", "/api/l/a", None),
        ("api/d/{x:double}", "/api/d/1.5e3", {"x": "1.5e3"}),
        ("api/d/{x:double}", "/api/d/nan", None),
        ("api/t/{when:datetime}", "/api/t/2026-11-29", {"when": "2026-11-29"}),
        ("api/re/{code:regex(^[a-z]{{2}}\\d$)}", "/api/re/ab1", {"code": "ab1"}),
        ("api/re/{code:regex(^[a-z]{{2}}\\d$)}", "/api/re/abc1", None),
        ("api/brace/{{x}}", "/api/brace/{x}", {}),
        ("", "/", {}),
        ("", "/x", None),
    ],
)
def test_match(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate(template).match(path) == expected


def test_parameters_and_values_with_spaces() -> None:
    route = RouteTemplate("/api/{a}/{b:int}/{*rest}")
    assert route.parameters == ["a", "b", "rest"]
    assert route.match("/api/hello world/3/x y") == {"a": "hello world", "b": "3", "rest": "x y"}


def test_precedence_literals_then_constrained_then_plain_then_catch_all() -> None:
    templates = ["api/{*route}", "api/items/{slug}", "api/items/{id:int}", "api/items/new", "api/{a}/{b}"]
    ordered = sorted((RouteTemplate(t) for t in templates), key=lambda route: route.precedence)
    assert [route.template for route in ordered] == [
        "api/items/new",
        "api/items/{id:int}",
        "api/items/{slug}",
        "api/{a}/{b}",
        "api/{*route}",
    ]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("api/{*rest}/x", "must be the last segment"),
        ("api/{id}/{ID}", "appears twice"),
        ("api/{id:frobnicate}", "not supported"),
        ("api/{id", "unterminated"),
        ("api/id}", "unmatched"),
        ("api//x", "empty segment"),
        ("api/{1abc}", "not a valid parameter name"),
        ("api/{x?=3}", "cannot be optional and have a default"),
        ("api/{file?}.{ext}", "complex segment"),
        ("api/{n:min(a)}", "integer argument"),
        ("api/{n:int(3)}", "takes no argument"),
        ("api/{n:regex([)}", "not a valid pattern"),
    ],
)
def test_invalid_templates(template: str, message: str) -> None:
    with pytest.raises(RouteError, match=message):
        RouteTemplate(template)
