"""OpenTelemetry to Application Insights, switched on by APPLICATIONINSIGHTS_CONNECTION_STRING.

Configured on first use, never at import: the distro is heavy and cold start is measured.
"""

from __future__ import annotations

import functools
import os


@functools.cache
def configure() -> bool:
    connection = os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if not connection:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, object] = {"connection_string": connection, "logger_name": "dockmaster"}
    # Local auth is off on our Application Insights: send telemetry with the app's identity.
    if "AAD" in os.environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""):
        from .clients import credential

        options["credential"] = credential()
    configure_azure_monitor(**options)
    return True
