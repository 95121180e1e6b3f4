"""A second process for the concurrency test: the real trigger against the parent's devstack.

``handle_in_child`` runs in a ``multiprocessing`` spawn child. It builds the service from the
settings the parent passes (the devstack's env) over the real adapters, warms its SDK clients
with a read-only ``plan``, waits on ``ready`` (the parent then clears the request log), waits on
``go`` so both children start together, delivers the event through ``on_key_vault_event`` and
reports its decision.

The gateway is the real ``ArmApimGateway`` behind ``MeetBeforeFirstWrite``: each child's first
write waits (bounded) until the other child is about to write too. That makes the worst case,
both runs having read APIM before either writes, happen every time instead of by luck. A run
that serialises (a lease, a conditional read) simply times out of the meeting and goes on.
"""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import datetime
from typing import Any

import azure.functions as func

from rotation import bootstrap
from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.credentials import StaticTokenCredential
from rotation.config import Settings
from rotation.domain.errors import RotationError
from rotation.entrypoints.functions import on_key_vault_event
from rotation.testing import FrozenClock, MemoryAuditSink

_WRITES = frozenset({"put_certificate", "update_backend_certificates", "delete_certificate"})
MEET_TIMEOUT = 5.0


class MeetBeforeFirstWrite:
    """The real gateway; the first write waits on ``meet`` (both children about to write)."""

    def __init__(self, real: ArmApimGateway, meet: Any) -> None:
        self.real, self.meet, self.met = real, meet, False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)
        if name not in _WRITES or self.met:
            return method
        self.met = True
        # BrokenBarrierError: the other run did not get this far concurrently; nothing to force.
        with contextlib.suppress(threading.BrokenBarrierError):
            self.meet.wait(timeout=MEET_TIMEOUT)
        return method


def handle_in_child(
    env: dict[str, str],
    event: dict[str, Any],
    now: str,
    barriers: tuple[Any, Any, Any],
    results: Any,
) -> None:
    """Deliver ``event`` once, after ``ready`` and ``go``; put ``(decision, error)`` on
    ``results``. ``meet`` is the two children's before-first-write barrier."""
    ready, go, meet = barriers
    os.environ.update(env)  # the trigger reads ROTATION_VAULTS for intake, as in production
    settings = Settings.from_env(env)
    real = ArmApimGateway(
        StaticTokenCredential(env["ROTATION_DEVSTACK_TOKEN"]),
        base_url=settings.arm_endpoint,
        connection_verify=env["ROTATION_DEVSTACK_CA_BUNDLE"],
        retry_total=settings.http_retries,
    )
    audit = MemoryAuditSink()
    service = bootstrap.build_service(
        settings,
        clock=FrozenClock(datetime.fromisoformat(now)),
        audit=audit,
        gateway=MeetBeforeFirstWrite(real, meet),
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
