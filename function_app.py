"""Dockmaster's Functions app: registrations only. The logic lives in shared/."""

import azure.functions as func

from triggers import events, queues

app = func.FunctionApp()
app.register_functions(events.bp)
app.register_functions(queues.bp)
