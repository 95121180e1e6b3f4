"""The state of one rollout: the ports and knobs it runs with, and what it found and did.

A leaf module (it imports only the domain and the ports), so every step of the rotation path
(``resolve``, ``validate``, ``apply``, ``verify``) and the service can share these types without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from rotation.domain.actions import Action, describe
from rotation.domain.errors import RotationError
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    AuditTarget,
    CertificateVersion,
    Decision,
    Strategy,
    TargetResult,
    ValidationReport,
)
from rotation.ports import ApimGateway, CertificateSource, Clock, Validator

__all__ = ["Inventory", "Outcome", "RolloutContext"]

Inventory = dict[str, tuple[tuple[ApimCertificate, ...], tuple[ApimBackend, ...]]]
"""APIM listings per service id: every certificate entity, and the backends where bound."""

# A re-plan after a 412 sees our own earlier write as current: the earlier result is kept.
_KEEP_OVER = frozenset({TargetResult.ALREADY_CURRENT, TargetResult.SUPERSEDED})


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutContext:
    """The ports and knobs every rollout of one service runs with (built once by
    ``RotationService`` from its own arguments)."""

    source: CertificateSource
    gateway: ApimGateway
    validator: Validator
    clock: Clock
    apim_services: tuple[str, ...]
    strategy: Strategy
    retain_previous: int
    max_attempts: int
    clock_skew: timedelta
    pin_identity: bool


@dataclass(kw_only=True)
class Outcome:
    """What one rollout found and did (filled in step by step while it runs)."""

    vault: str
    certificate: str
    decision: Decision = Decision.IGNORED
    message: str | None = None
    candidate: CertificateVersion | None = None
    previous_version: str | None = None
    report: ValidationReport | None = None
    findings: list[str] = field(default_factory=list)
    actions: tuple[Action, ...] = ()
    targets: dict[tuple[str, str, str], AuditTarget] = field(default_factory=dict)
    in_use: tuple[CertificateVersion, ...] = ()  # versions the live bindings present
    error: RotationError | None = None

    def record(self, action: Action, result: TargetResult | None = None) -> None:
        """Record the target ``action`` touches (``result`` overrides its default wording)."""
        target = describe(action, result)
        key = (target.service.lower(), str(target.kind), target.name.lower())
        earlier = self.targets.get(key)
        if earlier is not None and earlier.result.changed and target.result in _KEEP_OVER:
            return
        self.targets[key] = target

    def note(self, code: str) -> None:
        """Add a finding code once, in first-seen order."""
        if code not in self.findings:
            self.findings.append(code)

    @property
    def wrote(self) -> bool:
        """Some target was written to APIM (or a write was tried and failed)."""
        return any(t.result.wrote for t in self.targets.values())
