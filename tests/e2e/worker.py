"""A second process for the concurrency test: the real trigger against the parent's devstack.

``handle_in_child`` runs in a ``multiprocessing`` spawn child. It builds the service from the
settings the parent passes (the devstack's env, plus the Azurite lock settings) over the real
adapters, warms its SDK clients with a read-only ``plan``, waits on ``ready`` (the parent then
clears the request log), waits on ``go`` so both children start together, delivers the event
through ``on_key_vault_event`` and reports its decision.

The gateway is the real ``ArmApimGateway`` behind ``MeetBeforeFirstWrite``: each child's first
write waits (bounded) until the other child is about to write too. That makes the worst case,
both runs having read APIM before either writes, happen every time instead of by luck.

With ``ROTATION_LOCK=blob`` the child builds the real ``BlobLeaseLock`` from the settings, with
one change: its wait-loop sleep first tells the other child "I am blocked on your lease", which
releases the other from the meeting at once. So a lock that serialises costs no meeting timeout,
and a lock that does not (both runs reach a write) still meets: the worst case is still forced.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import azure.functions as func

from rotation import bootstrap
from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.locks import BlobLeaseLock
from rotation.config import Settings
from rotation.domain.errors import RotationError
from rotation.entrypoints.functions import on_key_vault_event
from rotation.ports import RotationLock
from rotation.testing import FrozenClock, MemoryAuditSink

_WRITES = frozenset({"put_certificate", "update_backend_certificates", "delete_certificate"})
MEET_TIMEOUT = 5.0


class MeetBeforeFirstWrite:
    """The real gateway; the first write tells the other child and waits (bounded) for it."""

    def __init__(self, real: ArmApimGateway, mine: Any, theirs: Any) -> None:
        self.real, self.mine, self.theirs, self.met = real, mine, theirs, False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)
        if name not in _WRITES or self.met:
            return method
        self.met = True
        self.theirs.set()  # "I am about to write"
        # Not set in time: the other run did not get this far concurrently; nothing to force.
        self.mine.wait(timeout=MEET_TIMEOUT)
        return method


def blocked_sleep(theirs: Any) -> Callable[[float], None]:
    """The lease wait-loop's sleep: first release the other child (it holds our lease)."""

    def sleep(seconds: float) -> None:
        theirs.set()
        time.sleep(seconds)

    return sleep


def _lock(settings: Settings, theirs: Any) -> RotationLock | None:
    """What bootstrap wires for these settings, with the signalling sleep."""
    built = bootstrap.build_lock(settings)
    if built is None:
        return None
    assert isinstance(built, BlobLeaseLock)
    assert settings.lock_connection is not None
    return BlobLeaseLock.from_connection(
        settings.lock_connection,
        settings.lock_container,
        wait_seconds=settings.lock_wait_seconds,
        retries=settings.http_retries,
        sleep=blocked_sleep(theirs),
    )


def handle_in_child(
    env: dict[str, str],
    event: dict[str, Any],
    now: str,
    sync: tuple[Any, Any, tuple[Any, Any]],
    results: Any,
    *,
    me: int,
) -> None:
    """Deliver ``event`` once, after ``ready`` and ``go``; put ``(decision, error)`` on
    ``results``. ``sync`` is ``(ready, go, (event0, event1))``; child ``me`` waits on its own
    event before its first write and sets the other's."""
    ready, go, meet = sync
    mine, theirs = meet[me], meet[1 - me]
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
        gateway=MeetBeforeFirstWrite(real, mine, theirs),
        lock=_lock(settings, theirs),
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
