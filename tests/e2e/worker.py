"""A second process for the concurrency test: the real trigger against the parent's devstack.

``handle_in_child`` runs in a ``multiprocessing`` spawn child. It builds the service from the
settings the parent passes (the devstack's env), warms its SDK clients with a read-only ``plan``,
waits on ``ready`` (the parent then clears the request log), waits on ``go`` so both children
start together, delivers the event through ``on_key_vault_event`` and reports its decision.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import azure.functions as func

from rotation import bootstrap
from rotation.config import Settings
from rotation.domain.errors import RotationError
from rotation.entrypoints.functions import on_key_vault_event
from rotation.testing import FrozenClock, MemoryAuditSink


def handle_in_child(
    env: dict[str, str], event: dict[str, Any], now: str, ready: Any, go: Any, results: Any
) -> None:
    """Deliver ``event`` once, after both barriers; put ``(decision, error)`` on ``results``."""
    os.environ.update(env)  # the trigger reads ROTATION_VAULTS for intake, as in production
    audit = MemoryAuditSink()
    service = bootstrap.build_service(
        Settings.from_env(env), clock=FrozenClock(datetime.fromisoformat(now)), audit=audit
    )
    bootstrap.get_handler = lambda: service  # type: ignore[assignment]
    data = event["data"]
    service.plan(env["ROTATION_VAULTS"], data["ObjectName"])  # build clients, answer challenges
    ready.wait(timeout=60)
    go.wait(timeout=60)
    error = None
    try:
        on_key_vault_event.build().get_user_function()(
            func.EventGridEvent(event_time=None, data_version="1", **event)
        )
    except RotationError as exc:
        error = f"{type(exc).__name__}: retryable={exc.retryable}"
    results.put((str(audit.records[-1].decision) if audit.records else None, error))
