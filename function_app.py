"""Dockmaster's Functions app: registrations only. The logic lives in shared/."""

import azure.functions as func

from shared.api import asgi
from triggers import events, queues, timers

# The HTTP API: one ASGI function on route {*route}, behind the function key (auth level FUNCTION).
# FastAPI loads on the first HTTP request (shared/api/__init__.py), not when the host indexes this module.
app = func.AsgiFunctionApp(app=asgi, http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(events.bp)
app.register_functions(queues.bp)
app.register_functions(timers.bp)


# An AsgiFunctionApp has one auth level. Liveness must answer without a key, so GET api/health is its
# own ANONYMOUS function handing the request to the same FastAPI route (one implementation). It must be
# matched before the ASGI function's catch-all: ASP.NET precedence (devstack's host) puts the literal
# route first, and Azure's host, which orders routes by function name (azure-functions-host#9876),
# tries "health" before "http_app_func". Keep both names so (tests/unit/test_api_app.py checks it).
@app.route(route="health", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    response: func.HttpResponse = await app.middleware.handle_async(req, context)
    return response
