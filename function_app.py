"""The Azure Functions app: a registry only (triggers live in rotation.entrypoints.functions).

Importing it reads no settings and touches no network, so the host can always index it.
"""

from __future__ import annotations

import azure.functions as func

from rotation.entrypoints.functions import bp

app = func.FunctionApp()
app.register_functions(bp)
