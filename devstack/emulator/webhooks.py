"""A sink for incoming webhooks (Teams, Slack): it records what the services would receive.

POST /_devstack/webhooks/{name} takes a message as the service does and answers as it does: a name
starting `slack` answers 200 `ok` (text/plain), as a Slack incoming webhook; any other (`teams`) answers
202 with no body, as Teams' Workflows webhook ("When a Teams webhook request is received"). Refusals are
stricter than what is documented (FIDELITY.md): a body that is not a JSON object is 400
`invalid_payload`; a Slack message with neither `text` nor `blocks` is 400 `no_text`; a Teams message over
28 KB is 413. GET (what was received, oldest first) and DELETE (forget) take the admin key, like
/_devstack/faults. Nothing here is Azure's: the sink stands for services outside Azure.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
MAX_BODY = 1_000_000
TEAMS_MAX_BYTES = 28_000
KEPT = 500  # messages kept per name, the oldest dropped first


class WebhookSink:
    def __init__(self, refused: Callable[[Request], Response | None]) -> None:
        self._refused = refused  # the admin-key check (Faults._refused)
        self.received: dict[str, list[dict[str, Any]]] = defaultdict(list)

    async def receive(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not NAME.fullmatch(name):
            return PlainTextResponse("invalid_webhook_name", 404)
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("payload_too_large", 413)
        try:
            message = json.loads(body)
        except ValueError:
            return PlainTextResponse("invalid_payload", 400)
        if not isinstance(message, dict):
            return PlainTextResponse("invalid_payload", 400)
        if refusal := self._check(name, message, body):
            return refusal
        kept = self.received[name]
        kept.append({"receivedAt": dt.datetime.now(dt.UTC).isoformat(), "body": message})
        del kept[:-KEPT]
        return PlainTextResponse("ok") if name.startswith("slack") else Response(status_code=202)

    @staticmethod
    def _check(name: str, message: dict[str, Any], body: bytes) -> Response | None:
        if name.startswith("slack"):
            if not message.get("text") and not message.get("blocks"):
                return PlainTextResponse("no_text", 400)
            return None
        if len(body) > TEAMS_MAX_BYTES:
            return PlainTextResponse("The message size limit is 28 KB.", 413)
        return None

    async def admin(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        name = request.path_params["name"]
        if request.method == "DELETE":
            self.received.pop(name, None)
            return Response(status_code=204)
        return JSONResponse({"value": list(self.received.get(name, []))})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/_devstack/webhooks/{name}", self.receive, methods=["POST"]),
            Route("/_devstack/webhooks/{name}/received", self.admin, methods=["GET", "DELETE"]),
        ]
