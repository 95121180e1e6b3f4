"""The audit records of one rollout's ``Outcome`` (``docs/architecture.md``, "Audit record").

Pure: builds values, writes nothing (``RotationService`` hands them to the ``AuditSink``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from rotation.domain.expiry import days_left
from rotation.domain.model import (
    AuditRecord,
    Decision,
    Disposition,
    KeyVaultEvent,
    Strategy,
    Trigger,
)
from rotation.logconfig import redact
from rotation.rollout.state import Outcome

__all__ = ["error_text", "outcome_records"]


def outcome_records(
    outcome: Outcome,
    *,
    event: KeyVaultEvent | None,
    trigger: Trigger,
    strategy: Strategy,
    dry_run: bool,
    duration_ms: float,
    correlation_id: str,
    now: datetime | None = None,
) -> tuple[AuditRecord, tuple[AuditRecord, ...]]:
    """The canonical record of ``outcome`` and one ``rotation.target`` record per target.

    The candidate's identity (version, thumbprints, validity) is on record only when the
    decision is about it (not ``superseded`` or ``ignored``); the leaf's validated values are
    preferred over the version's reported properties. A Key Vault NearExpiry/Expired event's
    record carries ``days_left`` at ``now`` (from what it names: the candidate, else the event's
    ``EXP``), like the reconcile sweep's alerts.
    """
    candidate = outcome.candidate
    about_candidate = candidate is not None and outcome.decision not in {
        Decision.SUPERSEDED, Decision.IGNORED,
    }  # fmt: skip
    leaf = outcome.report.leaf if outcome.report and about_candidate else None
    chosen = candidate if about_candidate else None
    record = AuditRecord(
        event=_event_name(outcome, event, dry_run=dry_run),
        decision=outcome.decision, trigger=trigger,
        event_id=event.event_id if event else None, event_type=event.event_type if event else None,
        topic=str(redact(event.topic)) if event and event.topic else None,
        vault=outcome.vault, certificate=outcome.certificate,
        version=chosen.version if chosen else event.version if event else None,
        previous_version=outcome.previous_version,
        thumbprint_sha1=leaf.thumbprint_sha1 if leaf else chosen.thumbprint_sha1 if chosen else None,
        thumbprint_sha256=leaf.thumbprint_sha256 if leaf else None,
        not_before=leaf.not_before if leaf else chosen.not_before if chosen else None,
        not_after=leaf.not_after if leaf else chosen.expires if chosen else None,
        findings=tuple(outcome.findings), targets=tuple(outcome.targets.values()),
        strategy=strategy, dry_run=dry_run, duration_ms=duration_ms, correlation_id=correlation_id,
        error=error_text(outcome.error) if outcome.error else None, message=outcome.message,
    )  # fmt: skip
    if record.event in _ALERTS and now is not None:
        expires = record.not_after or (event.expires if event else None)
        if expires is not None:
            record = replace(record, not_after=expires, days_left=days_left(expires, now))
    per_target = tuple(
        replace(record, event="rotation.target", targets=(target,)) for target in record.targets
    )
    return record, per_target


_ALERTS = frozenset({"certificate.near_expiry", "certificate.expired"})


def _event_name(outcome: Outcome, event: KeyVaultEvent | None, *, dry_run: bool) -> str:
    if dry_run and outcome.decision is Decision.APPLIED:
        return "rotation.planned"
    alert = event is not None and event.disposition is Disposition.ALERT
    if alert and outcome.decision not in {Decision.APPLIED, Decision.FAILED}:
        assert event is not None  # noqa: S101 - narrowed by ``alert``
        return (
            "certificate.expired"
            if event.event_type.endswith("Expired")
            else "certificate.near_expiry"
        )
    return f"rotation.{outcome.decision}"


def error_text(exc: BaseException) -> str:
    """Type and message only (adapters build messages from names and status codes)."""
    return f"{type(exc).__name__}: {exc}"
