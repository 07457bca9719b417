"""OpenTelemetry to Application Insights, switched on by APPLICATIONINSIGHTS_CONNECTION_STRING.

One path per record. Logs go the Functions way only: the Python worker hands every record of the root
logger to the host (azure_functions_worker's AsyncLoggingHandler, one RpcLog per record), and the host,
in its default telemetry mode (host.json `telemetryMode: ApplicationInsights`), sends them to Application
Insights with the invocation's context. Requests too: the host records every invocation, HTTP ones
included. The distro here adds only what the host cannot see: the dependencies the app calls (Azure SDK,
HTTP) as spans. A log handler of the distro next to the worker's would export every record twice, and
FastAPI's server spans would repeat the host's requests.

Configured on first use, never at import: the distro is heavy and cold start is measured.
"""

from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger("dockmaster.telemetry")

# The worker configures the distro itself when one of these is "true" (and tells the host so); a second
# distro in the same process would export everything twice.
WORKER_DISTRO_SETTINGS = ("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "PYTHON_ENABLE_OPENTELEMETRY")


@functools.cache
def configure() -> bool:
    connection = os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if not connection:
        return False
    owned = [name for name in WORKER_DISTRO_SETTINGS if os.environ.get(name, "").lower() == "true"]
    if owned:
        log.warning("telemetry: the worker configures Azure Monitor (%s=true), not this app", owned[0])
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    # No log pipeline: the worker forwards every record to the host, which exports it. The distro reads
    # this setting (its documented switch; it has no argument for it) when configured.
    os.environ["OTEL_LOGS_EXPORTER"] = "none"
    options: dict[str, object] = {
        "connection_string": connection,
        "instrumentation_options": {"fastapi": {"enabled": False}},  # the host records requests
    }
    # Local auth is off on our Application Insights: send telemetry with the app's identity.
    if "AAD" in os.environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""):
        from .clients import credential

        options["credential"] = credential()
    configure_azure_monitor(**options)
    return True
