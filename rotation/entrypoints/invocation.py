"""What one Functions invocation does, behind the thin triggers in ``functions.py``.

Configure logging, parse, bind correlation, hand the event to ``bootstrap.get_handler()``, and map
the outcome to what Event Grid should do (docs/architecture.md, "Errors and Event Grid"):

- retryable ``RotationError`` (transient dependency, configuration, authorization) and any
  unexpected exception: audited, then raised, so the host answers 500 and Event Grid redelivers;
- non-retryable ``RotationError`` (malformed or forged event, rejected certificate, ...):
  audited and swallowed, because redelivering the same event cannot help.

Every outcome leaves exactly one canonical audit record: the service records what it handles
(failures included, before it re-raises); this module records only what never reached it
(malformed events, invalid settings) and unexpected exceptions.

It is imported by the triggers on first invocation, not by ``function_app``, so indexing stays
as cheap as importing ``azure.functions`` (docs/architecture.md, "Budgets": cold start).
"""

from __future__ import annotations

from collections.abc import Iterable

import azure.functions as func
import structlog

from rotation import bootstrap
from rotation.adapters.audit import StructlogAuditSink
from rotation.config import log_level_from_env, read_environment, vault_urls_from_env
from rotation.domain.decisions import failure_audit
from rotation.domain.errors import ConfigError, InvalidEventError, RotationError
from rotation.domain.model import AuditRecord, KeyVaultEvent, Trigger
from rotation.intake.events import parse_object
from rotation.intake.schema import event_id_of
from rotation.logconfig import bind_correlation, configure_logging, redact

__all__ = ["from_function_event", "handle_event", "run_reconcile", "trace_context"]

_log = structlog.get_logger("rotation.entrypoints.functions")


def trace_context(context: func.Context | None) -> tuple[str | None, str | None]:
    """The invocation's W3C ``traceparent`` and ``tracestate`` from the host's context."""
    trace = getattr(context, "trace_context", None)
    parent = getattr(trace, "trace_parent", None) or getattr(trace, "Traceparent", None)
    state = getattr(trace, "trace_state", None) or getattr(trace, "Tracestate", None)
    return (str(parent) if parent else None, str(state) if state else None)


def handle_event(
    event: func.EventGridEvent | func.CloudEvent,
    *,
    trace: tuple[str | None, str | None] = (None, None),
) -> None:
    """Handle one Key Vault event delivered by Event Grid (either schema); ``trace`` is the
    invocation's (traceparent, tracestate), for correlation in App Insights."""
    configure_logging(level=log_level_from_env(read_environment()))
    with bootstrap.get_telemetry().invocation(*trace):
        _handle_event(event)


def _handle_event(event: func.EventGridEvent | func.CloudEvent) -> None:
    env = read_environment()
    event_id = str(event.id)
    correlation_id = bind_correlation(trigger=Trigger.EVENTGRID, eventgrid_event_id=event_id)
    parsed: KeyVaultEvent | None = None
    try:
        parsed = from_function_event(event, allowed_vault_urls=vault_urls_from_env(env))
        handler = bootstrap.get_handler()
    except Exception as exc:  # noqa: BLE001 - every failure is audited, then mapped
        _audit_failure(exc, Trigger.EVENTGRID, correlation_id, event_id, parsed)
        _raise_if_retryable(exc)
        return
    try:
        record = handler.handle(parsed, trigger=Trigger.EVENTGRID)
    except RotationError as exc:  # already on record: the service audits before it raises
        _raise_if_retryable(exc)
        return
    except Exception as exc:
        _audit_failure(exc, Trigger.EVENTGRID, correlation_id, event_id, parsed)
        raise
    _log.info("event_handled", decision=str(record.decision), event_name=record.event)


def from_function_event(
    event: func.EventGridEvent | func.CloudEvent, *, allowed_vault_urls: Iterable[str] = ()
) -> KeyVaultEvent:
    """Normalise the object the Functions Event Grid trigger hands the function: its fields are
    laid out as the wire JSON and parsed by ``rotation.intake.events.parse_object``.

    Raises:
        InvalidEventError: the event is malformed or forged.
    """
    obj: dict[str, object]
    if isinstance(event, func.CloudEvent):
        obj = {**event.extension_attrs, "specversion": event.specversion, "id": event.id}
        obj |= {"source": event.source, "type": event.type, "time": event.time}
    else:
        obj = {"id": event.id, "topic": event.topic, "eventType": event.event_type}
        obj["eventTime"] = event.event_time
    try:
        data = event.get_json()
    except (ValueError, RecursionError):  # the host's own JSON decoding of data failed
        raise InvalidEventError(
            "is not JSON", path="event.data", event_id=event_id_of(obj)
        ) from None
    obj |= {"subject": event.subject, "data": data}
    return parse_object(obj, path="event", allowed_vault_urls=allowed_vault_urls)


def run_reconcile(*, past_due: bool, trace: tuple[str | None, str | None] = (None, None)) -> None:
    """Sweep every bound certificate: catch missed versions, alert on near expiry."""
    configure_logging(level=log_level_from_env(read_environment()))
    with bootstrap.get_telemetry().invocation(*trace):
        _run_reconcile(past_due=past_due)


def _run_reconcile(*, past_due: bool) -> None:
    correlation_id = bind_correlation(trigger=Trigger.TIMER)
    try:
        handler = bootstrap.get_handler()
        records = handler.reconcile(trigger=Trigger.TIMER)
    except Exception as exc:  # noqa: BLE001 - every failure is audited, then mapped
        if not isinstance(exc, RotationError) or isinstance(exc, ConfigError):
            _audit_failure(exc, Trigger.TIMER, correlation_id, None, None)
        _anchor_audit_chains()
        _raise_if_retryable(exc)
        return
    _anchor_audit_chains()
    decisions = [str(r.decision) for r in records]
    counts = {d: decisions.count(d) for d in sorted(set(decisions))}
    _log.info("reconcile_finished", records=len(records), counts=counts, past_due=past_due)


def _anchor_audit_chains() -> None:
    """Anchor every audit chain head (``ROTATION_AUDIT_ANCHORS``); a failure is logged, never
    fails the sweep (the next sweep anchors again)."""
    from rotation.config import Settings  # noqa: PLC0415 - cold start

    try:
        anchor = bootstrap.build_anchoring(Settings.from_env(read_environment()))
        if anchor is not None:
            _log.info("audit_chains_anchored", chains=anchor())
    except Exception as exc:  # noqa: BLE001 - anchoring must not fail the sweep
        _log.warning(
            "audit_anchoring_failed", error=type(exc).__name__, message=str(redact(str(exc)))
        )


def _raise_if_retryable(exc: Exception) -> None:
    if not isinstance(exc, RotationError) or exc.retryable:
        raise exc


def _audit_failure(
    exc: Exception,
    trigger: Trigger,
    correlation_id: str,
    event_id: str | None,
    parsed: KeyVaultEvent | None,
) -> None:
    """Leave an audit line for an invocation that did not produce its own record (name and
    decision: ``rotation.domain.decisions.failure_audit``)."""
    name, decision = failure_audit(exc, trigger)
    message = str(redact(f"{type(exc).__name__}: {exc}"))
    record = AuditRecord(
        event=name,
        decision=decision,
        trigger=trigger,
        event_id=event_id,
        event_type=parsed.event_type if parsed else None,
        topic=str(redact(parsed.topic)) if parsed and parsed.topic else None,
        vault=parsed.vault_url or None if parsed else None,
        certificate=parsed.object_name or None if parsed else None,
        version=parsed.version or None if parsed else None,
        correlation_id=correlation_id,
        error=message,
    )
    StructlogAuditSink().write(record)
    bootstrap.get_telemetry().rotation(
        decision=str(decision), strategy="unknown", trigger=str(trigger), duration_seconds=0.0
    )
