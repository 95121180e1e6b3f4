"""The Azure Functions triggers: ``on_key_vault_event`` (Event Grid) and ``reconcile`` (timer).

Thin by design: configure logging, parse, bind correlation, hand the event to
``bootstrap.get_handler()``, and map the outcome to what Event Grid should do (ARCHITECTURE §3):

- retryable ``RotationError`` (transient dependency, configuration, authorization) and any
  unexpected exception: audited, then raised, so the host answers 500 and Event Grid redelivers;
- non-retryable ``RotationError`` (malformed or forged event, rejected certificate, ...):
  audited and swallowed, because redelivering the same event cannot help.

Nothing runs at import time: a broken setting can never stop the host from indexing the app.
"""

from __future__ import annotations

import azure.functions as func
import structlog

from rotation import bootstrap
from rotation.audit import StructlogAuditSink, bind_correlation
from rotation.config import log_level_from_env, read_environment, vault_urls_from_env
from rotation.domain.errors import ConfigError, InvalidEventError, RotationError
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.events import from_function_event
from rotation.logconfig import configure_logging, redact

__all__ = ["bp", "on_key_vault_event", "reconcile"]

bp = func.Blueprint()  # type: ignore[no-untyped-call]
_log = structlog.get_logger("rotation.entrypoints.functions")


@bp.event_grid_trigger(arg_name="event")
def on_key_vault_event(event: func.EventGridEvent) -> None:
    """Handle one Key Vault event delivered by Event Grid (either schema)."""
    env = read_environment()
    configure_logging(level=log_level_from_env(env))
    correlation_id = bind_correlation(trigger=Trigger.EVENTGRID, eventgrid_event_id=event.id)
    parsed: KeyVaultEvent | None = None
    try:
        parsed = from_function_event(event, allowed_vault_urls=vault_urls_from_env(env))
        record = bootstrap.get_handler().handle(parsed, trigger=Trigger.EVENTGRID)
    except Exception as exc:
        _audit_failure(exc, Trigger.EVENTGRID, correlation_id, event.id, parsed)
        if not isinstance(exc, RotationError) or exc.retryable:
            raise
        return
    _log.info("event_handled", decision=str(record.decision), event_name=record.event)


@bp.timer_trigger(arg_name="timer", schedule="%ROTATION_RECONCILE_SCHEDULE%", run_on_startup=False)
def reconcile(timer: func.TimerRequest) -> None:
    """Sweep every bound certificate: catch missed versions, alert on near expiry."""
    configure_logging(level=log_level_from_env(read_environment()))
    correlation_id = bind_correlation(trigger=Trigger.TIMER)
    try:
        records = bootstrap.get_handler().reconcile(trigger=Trigger.TIMER)
    except Exception as exc:
        _audit_failure(exc, Trigger.TIMER, correlation_id, None, None)
        if not isinstance(exc, RotationError) or exc.retryable:
            raise
        return
    decisions = [str(r.decision) for r in records]
    counts = {d: decisions.count(d) for d in sorted(set(decisions))}
    _log.info("reconcile_finished", records=len(records), counts=counts, past_due=timer.past_due)


def _audit_failure(
    exc: Exception,
    trigger: Trigger,
    correlation_id: str,
    event_id: str | None,
    parsed: KeyVaultEvent | None,
) -> None:
    """Leave an audit line for an invocation that did not produce its own record."""
    if isinstance(exc, InvalidEventError):
        name, decision = "event.malformed", Decision.IGNORED
    elif isinstance(exc, ConfigError):
        name, decision = "config.invalid", Decision.FAILED
    elif isinstance(exc, RotationError) and not exc.retryable:
        name, decision = "event.refused", Decision.IGNORED
    else:
        name, decision = (
            f"{'event' if trigger is Trigger.EVENTGRID else 'reconcile'}.failed",
            Decision.FAILED,
        )
    message = str(redact(f"{type(exc).__name__}: {exc}"))
    record = AuditRecord(
        event=name,
        decision=decision,
        trigger=trigger,
        event_id=event_id,
        event_type=parsed.event_type if parsed else None,
        vault=parsed.vault_url or None if parsed else None,
        certificate=parsed.object_name or None if parsed else None,
        version=parsed.version or None if parsed else None,
        correlation_id=correlation_id,
        error=message,
    )
    StructlogAuditSink().write(record)
