"""The state of one rollout: the ports and knobs it runs with, and what it found and did.

A leaf module (it imports only the domain and the ports), so every step of the rotation path
(``resolve``, ``validate``, ``apply``, ``verify``) and the service can share these types without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from rotation.domain.actions import Action, describe
from rotation.domain.bindings import Binding
from rotation.domain.canary import CanaryMode, CanaryVerdict
from rotation.domain.errors import RotationError
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    AuditTarget,
    CertificateVersion,
    Decision,
    KeyVaultEvent,
    SecretMaterial,
    Strategy,
    TargetResult,
    ValidationReport,
)
from rotation.ports import (
    ApimGateway,
    BackendCanary,
    CertificateSource,
    Clock,
    InboundPolicies,
    ValidationHistory,
    Validator,
)

__all__ = ["Inventory", "Outcome", "RolloutBase", "RolloutContext"]

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
    canary: BackendCanary | None = None  # None: ROTATION_CANARY=off
    canary_mode: CanaryMode = CanaryMode.OFF
    history: ValidationHistory | None = None  # follow and inbound: what the trail says
    inbound: InboundPolicies | None = None  # policy documents (inbound identities)
    inbound_overlap: timedelta = timedelta(days=7)  # ROTATION_INBOUND_OVERLAP_DAYS


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
    bindings: tuple[Binding, ...] = ()  # what the last plan was made from
    # The candidate's secret, read once for validation and presented again by the canary.
    material: SecretMaterial | None = field(default=None, repr=False)
    # Canary verdicts per target and the baselines read, kept across 412 re-plans.
    verdicts: dict[tuple[str, ...], CanaryVerdict] = field(default_factory=dict)
    baselines: dict[str, SecretMaterial | None] = field(default_factory=dict, repr=False)

    def record(
        self, action: Action, result: TargetResult | None = None, *, at: datetime | None = None
    ) -> None:
        """Record the target ``action`` touches (``result`` overrides its default wording;
        ``at``: when a policy document was written)."""
        target = describe(action, result)
        if at is not None:
            target = replace(target, at=at)
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


class RolloutBase:
    """What every rollout of one certificate shares: its context, names and event, the outcome
    it fills in, ``run`` (a ``RotationError`` lands in the outcome) and the version list (read
    once). Subclasses implement ``_converge``."""

    def __init__(
        self,
        context: RolloutContext,
        vault_url: str,
        certificate_name: str,
        event: KeyVaultEvent | None,
    ) -> None:
        self.ctx = context
        self.vault_url = vault_url
        self.name = certificate_name
        self.event = event
        self._versions: tuple[CertificateVersion, ...] | None = None
        self.outcome = Outcome(vault=vault_url, certificate=certificate_name)

    def run(self, *, write: bool) -> Outcome:
        """Converge (``write``) or only plan and validate (dry run, ``plan``). Never raises a
        ``RotationError``: it lands in ``Outcome.error`` with decision ``failed``."""
        try:
            self._converge(write=write)
        except RotationError as exc:
            self.outcome.decision = Decision.FAILED
            self.outcome.error = exc
        return self.outcome

    def versions(self) -> tuple[CertificateVersion, ...]:
        """The certificate's versions, listed once per rollout."""
        if self._versions is None:
            self._versions = tuple(
                self.ctx.source.list_certificate_versions(self.vault_url, self.name)
            )
        return self._versions

    def _converge(self, *, write: bool) -> None:
        raise NotImplementedError
