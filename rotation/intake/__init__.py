"""Event intake: the Event Grid / CloudEvents schema, payload parsing and JSON streaming.

Nothing here imports ``azure.functions``: converting the Functions host's types is the
entrypoint's job (``rotation.entrypoints.invocation``).
"""
