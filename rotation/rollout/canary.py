"""The canary step: prove the candidate on the backends before any write (``docs/canary.md``).

Runs after validation admits the candidate and before ``apply``. The targets and their
baselines are ``rotation.domain.exposure.canary_checks``'; the candidate's secret is the one
validation read (``Outcome.material``), and each distinct version in use is read once (a read
that fails leaves that backend without a baseline). The ``BackendCanary`` port probes them all
at once; ``rotation.domain.canary.decide`` applies ``ROTATION_CANARY``. Verdicts and baselines
are kept in the ``Outcome``, so a re-plan after a 412 probes only backends it has not judged.
"""

from __future__ import annotations

from rotation.domain.canary import CanaryMode, CanaryTarget, decide
from rotation.domain.errors import RotationError
from rotation.domain.exposure import canary_checks
from rotation.domain.model import CertificateVersion, SecretMaterial, Severity
from rotation.rollout.state import Outcome, RolloutContext

__all__ = ["run_canary"]


def _key(target: CanaryTarget) -> tuple[str, ...]:
    return (target.service.lower(), (target.backend or "").lower(), target.url)


def run_canary(
    ctx: RolloutContext, outcome: Outcome, versions: tuple[CertificateVersion, ...]
) -> bool:
    """Probe what the plan exposes; False when ``enforce`` stops the rollout (``outcome``
    then says ``rejected`` or ``deferred`` and why). ``warn`` notes the findings and goes on.

    Raises:
        nothing of its own: the probes never raise, a baseline that cannot be read is skipped.
    """
    if ctx.canary is None or ctx.canary_mode is CanaryMode.OFF:
        return True
    candidate, material = outcome.candidate, outcome.material
    if candidate is None or material is None:  # validated from a kept report: nothing to show
        return True
    checks = canary_checks(outcome.actions, outcome.bindings, versions, candidate)
    todo = [c for c in checks if _key(c.target) not in outcome.verdicts]
    if todo:
        for version in sorted({c.current for c in todo if c.current is not None}):
            if version not in outcome.baselines:
                outcome.baselines[version] = _baseline(ctx, outcome, version)
        cases = [(c.target, outcome.baselines.get(c.current) if c.current else None) for c in todo]
        for check, verdict in zip(todo, ctx.canary.verdicts(cases, material), strict=True):
            outcome.verdicts[_key(check.target)] = verdict
    verdicts = [outcome.verdicts[_key(c.target)] for c in checks]
    decided = decide(ctx.canary_mode, verdicts, certificate=outcome.certificate)
    for finding in decided.findings:
        outcome.note(str(finding.code))
    if decided.decision is not None:
        outcome.decision, outcome.message = decided.decision, decided.message
        return False
    warnings = [f.message for f in decided.findings if f.severity is not Severity.INFO]
    if warnings:
        outcome.message = "canary: " + "; ".join(warnings)
    return True


def _baseline(ctx: RolloutContext, outcome: Outcome, version: str) -> SecretMaterial | None:
    try:
        return ctx.source.get_secret(outcome.vault, outcome.certificate, version)
    except RotationError:
        return None
