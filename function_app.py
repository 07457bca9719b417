"""Dockmaster's Functions app: registrations only. The logic lives in shared/."""

import azure.functions as func

from shared.api import asgi, extend_link_request, health_request
from triggers import events, queues, resource_events, timers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(events.bp)
app.register_functions(queues.bp)
app.register_functions(resource_events.bp)
app.register_functions(timers.bp)
app.register_functions(timers.retention_bp)

# The HTTP API: FastAPI through azure.functions' AsgiMiddleware, which buffers the request and the response.
# FastAPI loads on the first HTTP request (shared/api/__init__.py), not when the host indexes this module.
# Not func.AsgiFunctionApp: it registers the route "/{*route}", which the host joins to the route prefix as
# "api//{*route}", a template ASP.NET Core refuses, so the host would not start (python-worker#1310).
# The route here joins as "api/{*route}"; FastAPI's paths (under /api) are unchanged.
http = func.AsgiMiddleware(asgi)  # type: ignore[no-untyped-call]  # azure-functions leaves it untyped


@app.route(route="{*route}", methods=list(func.HttpMethod), auth_level=func.AuthLevel.FUNCTION)
async def http_app_func(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    response: func.HttpResponse = await http.handle_async(req, context)
    return response


# Liveness must answer without a key, so GET api/health is its own ANONYMOUS function handing a request
# to the same FastAPI route (one implementation). It must be tried before the catch-all: Azure's host tries
# routes in function-name order, ignoring case (azure-functions-host#9876), and "health" sorts before
# "http_app_func". Keep both names so (tests/unit/test_api_app.py checks it). It hands FastAPI GET
# /api/health whatever URL arrived (health_request): the URL carries the caller's Host header.
@app.route(route="health", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    response: func.HttpResponse = await http.handle_async(health_request(req), context)
    return response


# A warning's one-click extend link (shared/cleanup/links.py) must work without a key: the link's HMAC is
# the authority. Its own ANONYMOUS function, named to sort before "http_app_func" (see health above); it
# hands FastAPI only the link's token (extend_link_request). GET answers a confirmation page, POST extends.
@app.route(
    route="cleanup/extend-link",
    methods=[func.HttpMethod.GET, func.HttpMethod.POST],
    auth_level=func.AuthLevel.ANONYMOUS,
)
async def cleanup_extend_link(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    response: func.HttpResponse = await http.handle_async(extend_link_request(req), context)
    return response


# The operators' page (shared/web): files that hold no data, the same for everyone, so served without a
# key; the page calls the API with the reader's own function key or sign-in. Named to sort before
# "http_app_func" (see health above); GET only, and only the files shared/web lists.
@app.route(route="ui/{*path}", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS)
def console(req: func.HttpRequest) -> func.HttpResponse:
    from shared import web  # on the first request for the page, not at indexing (cold start)

    answer = web.serve(req.route_params.get("path") or "", req.headers.get("If-None-Match"))
    return func.HttpResponse(answer.body, status_code=answer.status, headers=answer.headers)
