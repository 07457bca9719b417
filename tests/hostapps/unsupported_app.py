"""Bindings the devstack host does not provide: start-up must fail naming them."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.blob_trigger(arg_name="blob", path="uploads/{name}", connection="AzureWebJobsStorage")
def on_upload(blob: func.InputStream) -> None:
    pass


@app.route(route="fine")
@app.table_output(arg_name="row", table_name="rows", connection="AzureWebJobsStorage")
def with_table(req: func.HttpRequest, row: func.Out[str]) -> func.HttpResponse:
    return func.HttpResponse("unreachable")
