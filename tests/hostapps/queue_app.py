"""Queue trigger and queue output bindings on Azurite."""

from __future__ import annotations

import json

import azure.functions as func

from tests.hostapps.recorder import record

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="done", queue_name="%DONE_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage, done: func.Out[str]) -> None:
    body = msg.get_json()
    record(
        "work",
        id=msg.id,
        n=body["n"],
        dequeue_count=msg.dequeue_count,
        inserted=msg.insertion_time.isoformat() if msg.insertion_time else None,
        expires=msg.expiration_time.isoformat() if msg.expiration_time else None,
        pop_receipt=bool(msg.pop_receipt),
        next_visible=msg.time_next_visible.isoformat() if msg.time_next_visible else None,
    )
    if msg.dequeue_count <= body.get("fail_times", 0):
        raise RuntimeError(f"failing message {body['n']} on purpose")
    done.set(json.dumps({"done": body["n"], "dequeue_count": msg.dequeue_count}))


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="done", queue_name="%DONE_QUEUE%", connection="AzureWebJobsStorage")
async def enqueue(req: func.HttpRequest, done: func.Out[str]) -> func.HttpResponse:
    done.set(req.get_body().decode())
    return func.HttpResponse(status_code=202)
