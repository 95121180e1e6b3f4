"""The decisions of a rotation, as pure functions over plain values.

The rollout (``rotation.rollout``) and the entrypoints perform the I/O and ask these functions
what to decide; each returns a value (a decision with its message, the actions to record, an
audit record) and changes nothing. See ``docs/architecture.md`` ("Decisions").

- intake: ``ignore_reason`` (an event that does not act);
- admission: ``premature`` (deferred before any read), ``admit`` (after validation),
  ``leaf_mismatch`` and ``identity_reference`` (which version's identity to pin to);
- what is presented: ``presented`` (versions in use, previous version);
- settling: ``supersede`` (an event older than what every binding uses) and ``settle``
  (nothing changes what is presented);
- the reconcile sweep's ``expiry_alert``;
- ``failure_audit``: the record name and decision of a failure that never reached the service.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotation.domain.actions import Action, RetireEntity, Superseded
from rotation.domain.bindings import Binding, vault_key
from rotation.domain.errors import ConfigError, InvalidEventError, RotationError
from rotation.domain.expiry import days_left
from rotation.domain.model import (
    AuditRecord,
    CertificateVersion,
    Decision,
    Disposition,
    FindingCode,
    KeyVaultEvent,
    Severity,
    Strategy,
    TargetKind,
    Trigger,
    ValidationReport,
)
from rotation.domain.planning import is_superseded

__all__ = [
    "Admission",
    "InUse",
    "Supersession",
    "admit",
    "expiry_alert",
    "failure_audit",
    "identity_reference",
    "ignore_reason",
    "leaf_mismatch",
    "premature",
    "presented",
    "settle",
    "supersede",
]


def ignore_reason(event: KeyVaultEvent, vault_keys: Container[str | None]) -> str | None:
    """Why ``event`` does not act (decision ``ignored``), or None: only certificate events with
    a rotate or alert disposition, for a vault whose normalised host (``vault_key``) is one of
    ``vault_keys``, act."""
    if event.disposition is Disposition.IGNORE or event.object_type.lower() != "certificate":
        return (
            f"{event.event_type} for a {event.object_type or 'non-Key Vault'} object does not act"
        )
    if vault_key(event.vault_url) not in vault_keys:
        return f"vault {event.vault_url} is not in ROTATION_VAULTS"
    return None


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a candidate may be applied: ``applied`` (admitted), ``deferred`` or ``rejected``."""

    decision: Decision
    message: str | None = None

    @property
    def admitted(self) -> bool:
        """The candidate may be written to APIM."""
        return self.decision is Decision.APPLIED


def premature(
    candidate: CertificateVersion, *, now: datetime, clock_skew: timedelta
) -> Admission | None:
    """``deferred`` when the candidate's ``not_before`` lies beyond the clock skew (decided from
    the version's properties, before its secret is read); else None."""
    if candidate.not_before is not None and candidate.not_before > now + clock_skew:
        return Admission(
            Decision.DEFERRED,
            f"version {candidate.version} is not valid before {candidate.not_before.isoformat()}",
        )
    return None


def admit(candidate: CertificateVersion, report: ValidationReport) -> Admission:
    """The decision on a validated candidate: only error findings stop it; a candidate whose
    only errors are ``validity.not_yet_valid`` is deferred, any other error rejects it."""
    errors = [f for f in report.findings if f.severity is Severity.ERROR]
    if not errors:
        return Admission(Decision.APPLIED)
    if all(f.code is FindingCode.VALIDITY_NOT_YET_VALID for f in errors):
        return Admission(Decision.DEFERRED, f"version {candidate.version} is not valid yet")
    return Admission(Decision.REJECTED, "; ".join(f"{f.code}: {f.message}" for f in errors))


def leaf_mismatch(report: ValidationReport, candidate: CertificateVersion) -> str | None:
    """Why the secret's leaf is not the certificate version's (thumbprints differ), or None."""
    leaf = report.leaf
    expected = candidate.thumbprint_sha1
    if leaf is not None and expected and leaf.thumbprint_sha1.upper() != expected.upper():
        return (
            f"the secret of version {candidate.version} holds leaf {leaf.thumbprint_sha1}, "
            f"but the certificate reports {expected}"
        )
    return None


def identity_reference(
    candidate: CertificateVersion,
    in_use: Sequence[CertificateVersion],
    versions: Iterable[CertificateVersion],
) -> CertificateVersion | None:
    """The version whose subject and issuer the candidate must keep (identity pinning): the
    newest in-use version older than the candidate, else the newest older enabled version."""
    older = [v for v in in_use if v.created < candidate.created]
    if not older:
        older = [v for v in versions if v.enabled and v.created < candidate.created]
    return max(older, key=lambda v: v.created) if older else None


@dataclass(frozen=True, slots=True)
class InUse:
    """The versions the live bindings present, and the newest of them other than the candidate."""

    versions: tuple[CertificateVersion, ...]
    previous_version: str | None


def presented(
    live: Iterable[Binding], versions: Iterable[CertificateVersion], candidate: CertificateVersion
) -> InUse:
    """What the live bindings present (a versionless binding presents the candidate)."""
    index = {v.version.lower(): v for v in versions}
    found = [index.get((b.version or candidate.version).lower()) for b in live]
    in_use = tuple(v for v in found if v is not None)
    older = sorted((v for v in in_use if v.version != candidate.version), key=lambda v: v.created)
    return InUse(in_use, older[-1].version if older else None)


@dataclass(frozen=True, slots=True)
class Supersession:
    """A new-version event older than what every live binding uses: the message and the
    ``Superseded`` action to record per binding."""

    message: str
    actions: tuple[Superseded, ...]


def supersede(
    event: KeyVaultEvent | None,
    live: Sequence[Binding],
    versions: Iterable[CertificateVersion],
) -> Supersession | None:
    """``superseded`` when ``event`` is a new-version event whose version is older than what
    every live binding uses (never roll back); None otherwise (and for reconcile: no event)."""
    if event is None or event.disposition is not Disposition.ROTATE:
        return None
    if not is_superseded(event.version, live, versions):
        return None
    return Supersession(
        f"version {event.version} is older than what every binding uses",
        tuple(
            Superseded(
                service_id=b.entity.service_id,
                kind=TargetKind.CERTIFICATE,
                name=b.entity.certificate_id,
                in_use=b.version,
                candidate=event.version,
            )
            for b in live
        ),
    )


def settle(actions: Iterable[Action]) -> Decision:
    """The decision of a plan that changes nothing presented: ``superseded`` when every
    non-retirement action is ``Superseded``, else ``already_current``."""
    kept = [a for a in actions if not isinstance(a, RetireEntity)]
    superseded = bool(kept) and all(isinstance(a, Superseded) for a in kept)
    return Decision.SUPERSEDED if superseded else Decision.ALREADY_CURRENT


def expiry_alert(
    *,
    decision: Decision,
    candidate: CertificateVersion | None,
    in_use: Sequence[CertificateVersion],
    vault: str,
    certificate: str,
    now: datetime,
    near_expiry: timedelta,
    strategy: Strategy,
    dry_run: bool,
    trigger: Trigger,
    correlation_id: str,
    inbound: bool = False,
) -> AuditRecord | None:
    """A ``certificate.near_expiry`` (or ``certificate.expired``) record when what the bindings
    present after a reconcile run (the candidate if it was applied, else the versions in use)
    expires within ``near_expiry``, with ``days_left``; None otherwise.

    ``inbound``: the certificate is an inbound identity; ``in_use`` are then the newest versions
    the policy documents pin after the run (``rotation.domain.expiry.callers_use``), and the
    message says so."""
    applied = decision is Decision.APPLIED and not dry_run
    shown = (candidate,) if applied and candidate else tuple(in_use)
    expiring = [v for v in shown if v.expires is not None and v.expires <= now + near_expiry]
    if not expiring:
        return None
    soonest = min(expiring, key=lambda v: (v.expires, v.version))
    assert soonest.expires is not None  # noqa: S101 - filtered above
    expired = soonest.expires <= now
    newer = "" if decision is Decision.ALREADY_CURRENT else f" (this run: {decision})"
    what, where = ("pinned for callers", "pinned") if inbound else ("in use", "bound")
    return AuditRecord(
        event="certificate.expired" if expired else "certificate.near_expiry",
        decision=decision, trigger=trigger, vault=vault, certificate=certificate,
        version=soonest.version, thumbprint_sha1=soonest.thumbprint_sha1,
        not_before=soonest.not_before, not_after=soonest.expires,
        days_left=days_left(soonest.expires, now), strategy=strategy,
        dry_run=dry_run, correlation_id=correlation_id,
        message=f"version {soonest.version} {what} {'expired' if expired else 'expires'} at "
        f"{soonest.expires.isoformat()}; no newer valid version is {where}{newer}",
    )  # fmt: skip


def failure_audit(exc: BaseException, trigger: Trigger) -> tuple[str, Decision]:
    """The record name and decision of a failure that never reached the service: a malformed
    event is ``event.malformed``/ignored, invalid settings ``config.invalid``/failed, another
    permanent refusal ``event.refused``/ignored, anything else ``event.failed`` (or
    ``reconcile.failed`` for the timer)/failed."""
    if isinstance(exc, InvalidEventError):
        return "event.malformed", Decision.IGNORED
    if isinstance(exc, ConfigError):
        return "config.invalid", Decision.FAILED
    if isinstance(exc, RotationError) and not exc.retryable:
        return "event.refused", Decision.IGNORED
    return f"{'event' if trigger is Trigger.EVENTGRID else 'reconcile'}.failed", Decision.FAILED
