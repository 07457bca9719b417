"""func.AsgiFunctionApp as azure-functions ships it: its catch-all route is "/{*route}", which the host joins
to the route prefix as "api//{*route}". ASP.NET refuses that template, so the host must not start."""

from __future__ import annotations

import azure.functions as func
from starlette.applications import Starlette

app = func.AsgiFunctionApp(app=Starlette(), http_auth_level=func.AuthLevel.FUNCTION)
