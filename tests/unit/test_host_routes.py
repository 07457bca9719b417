"""HTTP trigger routes as the Functions host builds them (prefix + "/" + route, ASP.NET Core's template rules
and messages) and matches them (RoutePatternMatcher), and the order it tries them in (function names)."""

from __future__ import annotations

import azure.functions as func
import pytest

from devstack.host.errors import HostError
from devstack.host.functions import index
from devstack.host.routes import RouteError, RouteTemplate, request_path

ROUTING = "Microsoft.AspNetCore.Routing"
CONSTRAINTS = "instance of 'Microsoft.AspNetCore.Routing.Constraints."
CONSECUTIVE = (
    "The route template separator character '/' cannot appear consecutively. "
    "It must be separated by either a parameter or a literal value."
)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("api/hello", "/api/hello", {}),
        ("api/hello", "/API/Hello/", {}),
        ("api/hello", "/api/hello/x", None),
        ("api/hello", "/api//hello", None),  # an empty segment never matches
        ("/api/hello", "/api/hello", {}),  # a leading '/' (or '~/') is trimmed
        ("~/api/hello", "/api/hello", {}),
        ("api/hello/{name}", "/api/hello/World", {"name": "World"}),
        ("api/hello/{name}", "/api/hello", None),
        ("api/items/{id:int}", "/api/items/42", {"id": "42"}),
        ("api/items/{id:int}", "/api/items/-7", {"id": "-7"}),
        ("api/items/{id:int}", "/api/items/abc", None),
        ("api/items/{id:int}", "/api/items/99999999999", None),
        ("api/items/{id:long}", "/api/items/99999999999", {"id": "99999999999"}),
        ("api/items/{id:INT}", "/api/items/5", {"id": "5"}),  # constraint names ignore case
        ("api/items/{id:int}/{part?}", "/api/items/1", {"id": "1"}),
        ("api/items/{id:int}/{part?}", "/api/items/1/x", {"id": "1", "part": "x"}),
        ("api/list/{page=1}", "/api/list", {"page": "1"}),
        ("api/list/{page=1}", "/api/list/3", {"page": "3"}),
        ("api/files/{*path}", "/api/files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("api/files/{**path}", "/api/files/a/b", {"path": "a/b"}),
        ("api/files/{*path}", "/api/files", {}),
        ("api/files/{*path}", "/api/files/a//b/", {"path": "a//b/"}),  # taken as it is, to the end
        ("api/{*route}", "/api", {}),
        ("api/{*route}", "/apix", None),
        # Complex segments: literals found from the right, so the last '.' splits.
        ("api/dl/{file}.{ext}", "/api/dl/report.tar.gz", {"file": "report.tar", "ext": "gz"}),
        ("api/dl/{file}.{ext?}", "/api/dl/report.txt", {"file": "report", "ext": "txt"}),
        ("api/dl/{file}.{ext?}", "/api/dl/report", {"file": "report"}),
        ("api/dl/{file}.{ext?}", "/api/dl/report.", None),
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
        ("api/d/{x:double}", "/api/d/NaN", {"x": "NaN"}),  # double.TryParse takes NaN
        ("api/d/{x:decimal}", "/api/d/1.5e3", None),  # decimal takes no exponent
        ("api/d/{x:double}", "/api/d/one", None),
        ("api/t/{when:datetime}", "/api/t/2026-11-29", {"when": "2026-11-29"}),
        ("api/f/{name:file}", "/api/f/a.txt", {"name": "a.txt"}),
        ("api/f/{name:nonfile}", "/api/f/a.txt", None),
        ("api/re/{code:regex(^[a-z]{{2}}\\d$)}", "/api/re/ab1", {"code": "ab1"}),
        ("api/re/{code:regex(^[a-z]{{2}}\\d$)}", "/api/re/abc1", None),
        ("api/re/{code:regex(a,b)}", "/api/re/xa,by", {"code": "xa,by"}),  # one argument, commas and all
        ("api/brace/{{x}}", "/api/brace/{x}", {}),
        ("", "/", {}),
        ("", "/x", None),
    ],
)
def test_match(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate(template).match(path) == expected


def test_parameters_and_values_with_spaces_and_encoded_slashes() -> None:
    route = RouteTemplate("/api/{a}/{b:int}/{*rest}")
    assert route.parameters == ["a", "b", "rest"]
    assert route.match("/api/hello world/3/x y") == {"a": "hello world", "b": "3", "rest": "x y"}
    # Kestrel decodes the path but for %2F: an encoded '/' stays inside its segment.
    assert request_path("/api/a%2Fb/%33/c%20d") == "/api/a%2Fb/3/c d"
    assert route.match(request_path("/api/a%2Fb/3/c")) == {"a": "a%2Fb", "b": "3", "rest": "c"}


def error_of(template: str) -> str:
    with pytest.raises(RouteError) as caught:
        RouteTemplate(template, "fn")
    return str(caught.value)


def test_the_host_message_for_a_doubled_slash() -> None:
    """What the Functions host logs when ASP.NET refuses a route (Utility.FlattenException)."""
    assert error_of("api//{*route}") == (
        f"{ROUTING}: An error occurred while creating the route with name 'fn' and template "
        f"'api//{{*route}}'. {ROUTING}: {CONSECUTIVE} (Parameter 'routeTemplate'). {ROUTING}: {CONSECUTIVE}"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("api//x", CONSECUTIVE),
        ("//api", CONSECUTIVE),
        ("api/x//", CONSECUTIVE),
        ("~api", "The route template cannot start with a '~' character unless followed by a '/'."),
        ("api/{*rest}/x", "A catch-all parameter can only appear as the last segment of the route template."),
        ("api/{id}/{ID}", "The route parameter name 'ID' appears more than one time in the route template."),
        ("api/{id", "There is an incomplete parameter in the route template."),
        ("api/id}", "There is an incomplete parameter in the route template."),
        ("api/{a{b}", "In a route parameter, '{' and '}' must be escaped with '{{' and '}}'."),
        ("api/{}", "The route parameter name '' is invalid."),
        ("api/{a/b}", "The route parameter name 'a/b' is invalid."),
        ("api/{x?=3}", "The route parameter name 'x?' is invalid."),
        ("api/{x=3?}", "An optional parameter cannot have default value."),
        ("api/{*x?}", "A catch-all parameter cannot be marked optional."),
        ("api/a?b", "The literal section 'a?b' is invalid. Literal sections cannot contain the '?'"),
        ("api/x{*rest}", "cannot contain a catch-all parameter."),
        ("api/{a}{b}", "A path segment cannot contain two consecutive parameters."),
        ("api/{a}-{b?}", "In the segment '{a}-{b?}', the optional parameter 'b' is preceded by an invalid"),
        ("api/{a?}.{b}", "In the segment '{a?}.{b}', optional parameter 'a' is followed by '.'."),
        (
            "api/{id:frobnicate}",
            "The constraint entry 'id' - 'frobnicate' on the route 'api/{id:frobnicate}' could not be "
            "resolved by the constraint resolver of type 'DefaultInlineConstraintResolver'.",
        ),
        ("api/{n:int(3)}", "type 'IntRouteConstraint' with the following number of parameters: 1."),
        ("api/{n:length}", "type 'LengthRouteConstraint' with the following number of parameters: 0."),
        ("api/{n:min(a)}", f"{CONSTRAINTS}MinRouteConstraint'"),
        ("api/{n:range(6,5)}", f"{CONSTRAINTS}RangeRouteConstraint'"),
        ("api/{n:regex([)}", f"{CONSTRAINTS}RegexInlineRouteConstraint'"),
    ],
)
def test_templates_aspnet_refuses(template: str, message: str) -> None:
    text = error_of(template)
    assert text.startswith(
        f"{ROUTING}: An error occurred while creating the route with name 'fn' and template '{template}'."
    )
    assert message in text


@pytest.mark.parametrize("template", ["api/{a}.{b?}", "api/{=a}", "api/{a-b.c}", "api/{n:Regex(^x)}", "~/a"])
def test_templates_aspnet_takes(template: str) -> None:
    RouteTemplate(template)


def http_app(*routes: tuple[str, str | None]) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for name, route in routes:

        def handler(req: func.HttpRequest) -> str:
            return ""

        handler.__name__ = name
        app.route(route=route, methods=["GET"])(handler)
    return app


def test_prefix_and_route_are_joined_as_they_are() -> None:
    """WebJobsRouteBuilder: routePrefix + "/" + route, nothing trimmed (python-worker#1310)."""
    with pytest.raises(HostError) as caught:
        index(http_app(("http_app_func", "/{*route}")), {}, route_prefix="api")
    message = str(caught.value)
    assert message.startswith("A host error has occurred during startup operation '")
    assert (
        "Microsoft.AspNetCore.Routing: An error occurred while creating the route with name 'http_app_func' "
        "and template 'api//{*route}'." in message
    )
    assert CONSECUTIVE in message
    # No prefix: the template is the route itself, and ASP.NET trims one leading '/'.
    (spec,) = index(http_app(("http_app_func", "/{*route}")), {}, route_prefix="")
    assert spec.route is not None
    assert spec.route.template == "/{*route}"
    # A prefix that ends with '/' (host.json "routePrefix": "api/") doubles the slash too.
    with pytest.raises(HostError, match="template 'api//things'"):
        index(http_app(("things", "things")), {}, route_prefix="api/")
    (spec,) = index(http_app(("things", None)), {}, route_prefix="api")
    assert spec.route is not None
    assert spec.route.template == "api/things"  # no route: the function's name


def test_routes_are_tried_in_function_name_order() -> None:
    """The host orders functions by name, ignoring case, and tries their routes in that order
    (azure-functions-host#9876): a catch-all named first takes a path a literal route named later
    would match."""
    specs = index(
        http_app(("b_literal", "order/literal"), ("A_catch", "order/{*rest}"), ("c_last", "order/other")),
        {},
    )
    assert [spec.name for spec in specs] == ["A_catch", "b_literal", "c_last"]
    first = next(spec for spec in specs if spec.route is not None and spec.route.match("/api/order/literal"))
    assert first.name == "A_catch"
    # Ordinal after upper-casing: '_' (0x5F) sorts after letters, as in .NET's OrdinalIgnoreCase.
    names = [spec.name for spec in index(http_app(("http_app_func", "a"), ("httpx", "b")), {})]
    assert names == ["httpx", "http_app_func"]


def test_routes_in_the_hosts_space_or_conflicting_are_refused() -> None:
    """ScriptHost.ValidateHttpFunction/HttpRoutesConflict, whatever the prefix."""
    for route in ("admin/mine", "/Administration", "runtime"):
        with pytest.raises(HostError, match=r"The specified route conflicts with one or more built in"):
            index(http_app(("mine", route)), {}, route_prefix="api")
    with pytest.raises(
        HostError,
        match=r"The 'second' function is in error: The route specified conflicts with the route defined by "
        r"function 'first'\.",
    ):
        index(http_app(("first", "same/{id}"), ("second", "/SAME/{id}/")), {})
