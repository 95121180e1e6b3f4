"""One convergence of one certificate: resolve, plan, validate, apply, verify (ARCHITECTURE §2).

``Rollout`` is the unit of work behind ``RotationService``: it makes the §7 minimum of calls
(APIM list pages, 1 version list, 1 secret read only when something must change, 1 write per
changed target, 1 verify read per changed entity), re-reads and re-plans on 412 up to
``max_attempts``, and accumulates what happened in an ``Outcome``. It never writes audit
records; the service turns the outcome into records. Errors are captured in ``Outcome.error``.

This module resolves and plans; the validate step is ``rotation.rollout_admit`` and the apply
and verify steps are ``rotation.rollout_apply``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from rotation.domain.actions import describe
from rotation.domain.errors import PreconditionFailedError, RotationError
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    AuditTarget,
    CertificateVersion,
    Decision,
    Disposition,
    FindingCode,
    KeyVaultEvent,
    Strategy,
    ValidationReport,
)
from rotation.domain.planning import (
    Action,
    AlreadyCurrent,
    Binding,
    RetireEntity,
    Superseded,
    choose_candidate,
    discover_bindings,
    is_superseded,
    lists_backends,
    live_bindings,
    needs_change,
    plan_rotation,
)
from rotation.ports import ApimGateway, CertificateSource, Clock, Validator
from rotation.rollout_admit import admit
from rotation.rollout_apply import apply_actions, write_action

__all__ = ["Inventory", "Outcome", "Rollout", "Settings"]

Inventory = dict[str, tuple[tuple[ApimCertificate, ...], tuple[ApimBackend, ...]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The ports and knobs a rollout needs (built once by ``RotationService``)."""

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
    """What one rollout found and did (mutable while it runs)."""

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

    def record(self, action: Action, result: str | None = None) -> None:
        """Record the target ``action`` touches (``result`` overrides its default wording)."""
        target = describe(action, result)
        key = (target.service.lower(), target.kind, target.name.lower())
        earlier = self.targets.get(key)
        if earlier is not None and earlier.result in {"updated", "created", "retired"} and target.result in {
            "already_current", "superseded",
        }:  # fmt: skip
            return  # a re-plan after 412 sees our own earlier write as current: keep "updated"
        self.targets[key] = target

    def note(self, code: str) -> None:
        """Add a finding code once, in first-seen order."""
        if code not in self.findings:
            self.findings.append(code)


class Rollout:
    """Converge one certificate's APIM bindings onto its newest valid version."""

    def __init__(
        self,
        settings: Settings,
        vault_url: str,
        certificate_name: str,
        *,
        event: KeyVaultEvent | None = None,
        inventory: Inventory | None = None,
        borrowed: bool = False,
    ) -> None:
        """``inventory``: APIM listings to plan from instead of listing (reconcile's sweep, a
        replay's shared listing); a compare-and-swap that refuses a plan drops it and re-lists.
        ``borrowed``: ``inventory`` is a listing an earlier rollout made (a replay's shared
        one), so a plan refused on it is one more attempt, not one of ``max_attempts``."""
        self.s = settings
        self.vault_url = vault_url
        self.name = certificate_name
        self.event = event
        self._inventory = inventory
        self._extra_attempts = 1 if borrowed and inventory is not None else 0
        self._versions: tuple[CertificateVersion, ...] | None = None
        self._final = True
        self.replanned = False  # a compare-and-swap refused a plan: the listing was re-read
        self.outcome = Outcome(vault=vault_url, certificate=certificate_name)

    @property
    def inventory(self) -> Inventory | None:
        """The APIM listing the rollout planned from last (None: it never got that far)."""
        return self._inventory

    def run(self, *, write: bool) -> Outcome:
        """Converge (``write``) or only plan and validate (dry run / preview). Never raises a
        ``RotationError``: it lands in ``Outcome.error`` with decision ``failed``."""
        try:
            self._converge(write=write)
        except RotationError as exc:
            self.outcome.decision = Decision.FAILED
            self.outcome.error = exc
        return self.outcome

    def _converge(self, *, write: bool) -> None:
        out = self.outcome
        attempts = self.s.max_attempts + self._extra_attempts
        for attempt in range(1, attempts + 1):
            self._final = attempt >= attempts
            if not self._resolve():
                return
            if not needs_change(out.actions):
                self._settle(write=write)
                return
            if not admit(self.s, out, self.versions()):
                self._mark_all(str(out.decision))
                return
            if not write:
                self._mark_all("skipped_dry_run")
                return
            try:
                apply_actions(self.s.gateway, out, final=self._final)
            except PreconditionFailedError:
                if self._final:
                    raise
                self._inventory = None  # someone else wrote: re-read and re-plan
                self.replanned = True
            else:
                return

    def _mark_all(self, result: str) -> None:
        """Record every target; the ones that would change get ``result``."""
        for action in self.outcome.actions:
            changes = not isinstance(action, AlreadyCurrent | Superseded)
            self.outcome.record(action, result if changes else None)

    # --- resolve and plan ---------------------------------------------------------------------

    def _bindings(self) -> tuple[Binding, ...]:
        if self._inventory is None:
            self._inventory = {}
            for service_id in self.s.apim_services:
                certs = tuple(self.s.gateway.list_certificates(service_id))
                mine = discover_bindings(self.vault_url, self.name, certs, ())
                wanted = mine and lists_backends(self.s.strategy)
                backends = tuple(self.s.gateway.list_backends(service_id)) if wanted else ()
                self._inventory[service_id] = (certs, backends)
        found: list[Binding] = []
        for certs, backends in self._inventory.values():
            found.extend(discover_bindings(self.vault_url, self.name, certs, backends))
        return tuple(found)

    def versions(self) -> tuple[CertificateVersion, ...]:
        """The certificate's versions, listed once per rollout."""
        if self._versions is None:
            self._versions = tuple(
                self.s.source.list_certificate_versions(self.vault_url, self.name)
            )
        return self._versions

    def _resolve(self) -> bool:
        out = self.outcome
        bindings = self._bindings()
        if not bindings:
            out.message = (
                f"no APIM certificate entity references {self.vault_url}/secrets/{self.name}"
            )
            return False
        versions = self.versions()
        out.candidate = candidate = choose_candidate(versions)
        if candidate is None:
            out.message = "the certificate has no enabled version"
            return False
        live = live_bindings(bindings, self.s.strategy)
        self._note_in_use(live, versions, candidate)
        if any(b.version is None for b in bindings):
            out.note(str(FindingCode.BINDING_VERSIONLESS))
        if self._superseded(live, versions):
            return False
        out.actions = plan_rotation(
            bindings=bindings, versions=versions, candidate=candidate,
            strategy=self.s.strategy, retain_previous=self.s.retain_previous,
        )  # fmt: skip
        return True

    def _note_in_use(
        self,
        live: tuple[Binding, ...],
        versions: tuple[CertificateVersion, ...],
        candidate: CertificateVersion,
    ) -> None:
        """What the live bindings present (versionless: the candidate) and the previous version."""
        index = {v.version.lower(): v for v in versions}
        in_use = [index.get((b.version or candidate.version).lower()) for b in live]
        self.outcome.in_use = tuple(v for v in in_use if v is not None)
        older = sorted(
            (v for v in self.outcome.in_use if v.version != candidate.version),
            key=lambda v: v.created,
        )
        self.outcome.previous_version = older[-1].version if older else None

    def _superseded(
        self, live: tuple[Binding, ...], versions: tuple[CertificateVersion, ...]
    ) -> bool:
        """A new-version event older than what every live binding uses: record and stop."""
        event = self.event
        if event is None or event.disposition is not Disposition.ROTATE:
            return False
        if not is_superseded(event.version, live, versions):
            return False
        self.outcome.decision = Decision.SUPERSEDED
        self.outcome.message = f"version {event.version} is older than what every binding uses"
        for b in live:
            self.outcome.record(
                Superseded(
                    service_id=b.entity.service_id,
                    kind="certificate",
                    name=b.entity.certificate_id,
                    in_use=b.version,
                    candidate=event.version,
                )
            )
        return True

    def _settle(self, *, write: bool) -> None:
        """Nothing changes what is presented: no secret read; only pending retirements run."""
        out = self.outcome
        kept = [a for a in out.actions if not isinstance(a, RetireEntity)]
        superseded = bool(kept) and all(isinstance(a, Superseded) for a in kept)
        out.decision = Decision.SUPERSEDED if superseded else Decision.ALREADY_CURRENT
        if not write:
            self._mark_all("skipped_dry_run")
            return
        for action in out.actions:
            if isinstance(action, RetireEntity):
                write_action(self.s.gateway, out, action, final=self._final)
            else:
                out.record(action)
