"""Admission: may a rollout's candidate be applied now? Deferred, rejected or accepted.

The validate step of ``rotation.rollout.Rollout`` (ARCHITECTURE §2 steps 2-3): a candidate
whose ``not_before`` lies beyond the clock skew is deferred without reading anything; otherwise
its secret is read once (the report is kept in the ``Outcome`` across 412 re-plans) and
validated, with the identity rule reading the version in use only when pinning is on. The
report's findings land in the ``Outcome``; only error findings stop the rollout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation.domain.errors import TransientDependencyError
from rotation.domain.model import (
    CertificateVersion,
    Decision,
    FindingCode,
    Severity,
    ValidationReport,
)

if TYPE_CHECKING:
    from rotation.rollout.converge import Outcome, Settings

__all__ = ["admit"]


def admit(s: Settings, outcome: Outcome, versions: tuple[CertificateVersion, ...]) -> bool:
    """Decide on ``outcome.candidate``; reads its secret at most once per rollout.

    Sets ``outcome.decision`` (``applied`` when admitted, else ``deferred`` or ``rejected``
    with a message) and returns whether the rollout may write.

    Raises:
        RotationError: Key Vault could not be read, or the secret's leaf is not the version's.
    """
    candidate = outcome.candidate
    assert candidate is not None  # noqa: S101 - set by Rollout._resolve
    now = s.clock.now()
    if candidate.not_before is not None and candidate.not_before > now + s.clock_skew:
        outcome.decision = Decision.DEFERRED
        outcome.message = (
            f"version {candidate.version} is not valid before {candidate.not_before.isoformat()}"
        )
        return False
    if outcome.report is None:
        material = s.source.get_secret(outcome.vault, outcome.certificate, candidate.version)
        identity = _identity(s, outcome, versions)
        outcome.report = s.validator.validate(material, at=now, expected_identity=identity)
        for code in outcome.report.codes:
            outcome.note(code)
        _cross_check(outcome.report, candidate)
    errors = [f for f in outcome.report.findings if f.severity is Severity.ERROR]
    if not errors:
        outcome.decision = Decision.APPLIED
        return True
    if all(f.code is FindingCode.VALIDITY_NOT_YET_VALID for f in errors):
        outcome.decision = Decision.DEFERRED
        outcome.message = f"version {candidate.version} is not valid yet"
    else:
        outcome.decision = Decision.REJECTED
        outcome.message = "; ".join(f"{f.code}: {f.message}" for f in errors)
    return False


def _cross_check(report: ValidationReport, candidate: CertificateVersion) -> None:
    leaf = report.leaf
    expected = candidate.thumbprint_sha1
    if leaf is not None and expected and leaf.thumbprint_sha1.upper() != expected.upper():
        raise TransientDependencyError(
            f"the secret of version {candidate.version} holds leaf {leaf.thumbprint_sha1}, "
            f"but the certificate reports {expected}",
            service="keyvault", operation="get_secret",
        )  # fmt: skip


def _identity(
    s: Settings, outcome: Outcome, versions: tuple[CertificateVersion, ...]
) -> tuple[str, str] | None:
    """(subject, issuer) of the version in use, read from its own secret (one extra read,
    only when identity pinning is on); None when there is no earlier version."""
    candidate = outcome.candidate
    if not s.pin_identity or candidate is None:
        return None
    older = [v for v in outcome.in_use if v.created < candidate.created]
    if not older:
        older = [v for v in versions if v.enabled and v.created < candidate.created]
    if not older:
        return None
    reference = max(older, key=lambda v: v.created)
    material = s.source.get_secret(outcome.vault, outcome.certificate, reference.version)
    leaf = s.validator.validate(material, at=s.clock.now()).leaf
    return (leaf.subject, leaf.issuer) if leaf is not None else None
