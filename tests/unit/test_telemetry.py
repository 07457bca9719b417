"""Telemetry stays off (and its heavy imports unloaded) without a connection string."""

from __future__ import annotations

import subprocess
import sys


def test_off_without_connection_string() -> None:
    code = (
        "import os, sys; os.environ.pop('APPLICATIONINSIGHTS_CONNECTION_STRING', None);"
        "from shared import telemetry; assert telemetry.configure() is False;"
        "assert 'azure.monitor.opentelemetry' not in sys.modules; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


def test_function_app_import_is_light() -> None:
    # FastAPI (and the pydantic it brings) loads on the first HTTP request, not at indexing: see shared/api.
    code = (
        "import sys, function_app;"
        "heavy = [m for m in ('azure.identity', 'azure.mgmt.containerregistry', 'azure.data.tables',"
        " 'pydantic', 'fastapi', 'yaml', 'azure.monitor.opentelemetry') if m in sys.modules];"
        "print(','.join(heavy) or 'none')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "none", result.stderr
