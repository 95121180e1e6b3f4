"""Validate: may the rollout's candidate be applied now? (``docs/architecture.md``, "The rotation
path", step 3.)

A candidate whose ``not_before`` lies beyond the clock skew is deferred without reading
anything; otherwise its secret is read once (the report is kept in the ``Outcome`` across 412
re-plans) and validated, with the identity rule reading the version in use only when pinning is
on. The decisions are ``rotation.domain.decisions``' (``premature``, ``admit``,
``leaf_mismatch``, ``identity_reference``); this module only reads and records.
"""

from __future__ import annotations

from rotation.domain.decisions import admit, identity_reference, leaf_mismatch, premature
from rotation.domain.errors import TransientDependencyError
from rotation.domain.model import CertificateVersion
from rotation.rollout.state import Outcome, RolloutContext

__all__ = ["validate"]


def validate(
    ctx: RolloutContext, outcome: Outcome, versions: tuple[CertificateVersion, ...]
) -> bool:
    """Decide on ``outcome.candidate``; reads its secret at most once per rollout.

    Sets ``outcome.decision`` (``applied`` when admitted, else ``deferred`` or ``rejected``
    with a message) and returns whether the rollout may write.

    Raises:
        RotationError: Key Vault could not be read, or the secret's leaf is not the version's.
    """
    candidate = outcome.candidate
    assert candidate is not None  # noqa: S101 - set by resolve.plan
    now = ctx.clock.now()
    admission = premature(candidate, now=now, clock_skew=ctx.clock_skew)
    if admission is None:
        if outcome.report is None:
            material = ctx.source.get_secret(outcome.vault, outcome.certificate, candidate.version)
            outcome.material = material  # the canary presents it: never read twice
            identity = _identity(ctx, outcome, versions)
            outcome.report = ctx.validator.validate(material, at=now, expected_identity=identity)
            for code in outcome.report.codes:
                outcome.note(code)
            mismatch = leaf_mismatch(outcome.report, candidate)
            if mismatch is not None:
                raise TransientDependencyError(
                    mismatch, service="keyvault", operation="get_secret"
                )
        admission = admit(candidate, outcome.report)
    outcome.decision = admission.decision
    if admission.message is not None:
        outcome.message = admission.message
    return admission.admitted


def _identity(
    ctx: RolloutContext, outcome: Outcome, versions: tuple[CertificateVersion, ...]
) -> tuple[str, str] | None:
    """(subject, issuer) of the version in use, read from its own secret (one extra read,
    only when identity pinning is on); None when there is no earlier version."""
    candidate = outcome.candidate
    if not ctx.pin_identity or candidate is None:
        return None
    reference = identity_reference(candidate, outcome.in_use, versions)
    if reference is None:
        return None
    material = ctx.source.get_secret(outcome.vault, outcome.certificate, reference.version)
    leaf = ctx.validator.validate(material, at=ctx.clock.now()).leaf
    return (leaf.subject, leaf.issuer) if leaf is not None else None
