"""The cleanup timer blueprint alone, as function_app registers it (schedule from %CLEANUP_SCHEDULE%)."""

from __future__ import annotations

import azure.functions as func

from triggers import timers

app = func.FunctionApp()
app.register_functions(timers.bp)
