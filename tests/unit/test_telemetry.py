"""Telemetry: off (and its heavy imports unloaded) without a connection string; with one, each log record
takes exactly one path to Application Insights.

In Azure the Python worker puts a handler on the root logger that hands every record to the Functions host
(azure_functions_worker.dispatcher: AsyncLoggingHandler, one RpcLog per record), and the host, in its
default telemetry mode, sends those to Application Insights. The distro must not add a second exporter
of the same records. The checks run the real distro in a child process (it sets process-wide providers),
with the worker's handler stood in by a handler on the root logger.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# A syntactically valid connection string whose endpoint refuses: nothing leaves the machine.
CONNECTION = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=https://127.0.0.1:9/;LiveEndpoint=https://127.0.0.1:9/"
)

PATHS = """
import json, logging, os, sys
os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"] = sys.argv[1]
os.environ["APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL"] = "true"  # nothing leaves the machine
os.environ["APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED"] = "true"
for name in ("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
             "PYTHON_ENABLE_OPENTELEMETRY", "OTEL_LOGS_EXPORTER"):
    os.environ.pop(name, None)

class WorkerForwarding(logging.Handler):
    # What the worker attaches to the root logger once its gRPC channel is up.
    def emit(self, record):
        pass

root = logging.getLogger()
root.setLevel(logging.INFO)
root.addHandler(WorkerForwarding())

from shared import telemetry
configured = telemetry.configure()

reached = []
logger = logging.getLogger("dockmaster.verification")
chain = []
current = logger
while current is not None:
    chain.extend(current.handlers)
    current = current.parent if current.propagate else None
for handler in chain:
    original = handler.handle
    def handle(record, handler=handler, original=original):
        reached.append(type(handler).__name__)
        return original(record)
    handler.handle = handle
logger.info("verdict for %s", "repo@sha256:abc")

from opentelemetry import _logs
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
print(json.dumps({
    "configured": configured,
    "reached": reached,
    "log_provider": type(_logs.get_logger_provider()).__name__,
    "fastapi_instrumented": FastAPIInstrumentor().is_instrumented_by_opentelemetry,
}))
sys.stdout.flush()
os._exit(0)  # no shutdown flush towards the refusing endpoint
"""


def run(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_off_without_connection_string() -> None:
    code = (
        "import os, sys; os.environ.pop('APPLICATIONINSIGHTS_CONNECTION_STRING', None);"
        "from shared import telemetry; assert telemetry.configure() is False;"
        "assert 'azure.monitor.opentelemetry' not in sys.modules; print('ok')"
    )
    assert run(code) == "ok"


def test_function_app_import_is_light() -> None:
    # FastAPI (and the pydantic it brings) loads on the first HTTP request, not at indexing: see shared/api.
    code = (
        "import sys, function_app;"
        "heavy = [m for m in ('azure.identity', 'azure.mgmt.containerregistry', 'azure.data.tables',"
        " 'pydantic', 'fastapi', 'yaml', 'azure.monitor.opentelemetry') if m in sys.modules];"
        "print(','.join(heavy) or 'none')"
    )
    assert run(code) == "none"


def test_a_dockmaster_record_takes_one_path_the_workers() -> None:
    found = json.loads(run(PATHS, CONNECTION))
    assert found["configured"] is True
    assert found["reached"] == ["WorkerForwarding"], "one handler: the worker's, towards the host"
    assert found["log_provider"] != "LoggerProvider", "no OpenTelemetry log pipeline in the worker"
    assert found["fastapi_instrumented"] is False, "the host records each HTTP invocation as a request"


def test_the_host_exports_the_workers_logs() -> None:
    # The path above ends in the host only in its default telemetry mode; in OpenTelemetry mode it drops
    # the worker's records once the worker says it exports them itself (WorkerOpenTelemetryEnabled).
    host = json.loads((REPO_ROOT / "host.json").read_text())
    assert host.get("telemetryMode", "ApplicationInsights").lower() == "applicationinsights"


def test_a_worker_configured_distro_is_not_configured_twice() -> None:
    code = (
        "import os, sys; os.environ['APPLICATIONINSIGHTS_CONNECTION_STRING'] = sys.argv[1];"
        "os.environ['PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY'] = 'true';"
        "from shared import telemetry; print(telemetry.configure(),"
        " 'azure.monitor.opentelemetry' in sys.modules)"
    )
    assert run(code, CONNECTION) == "False False"
