"""One convergence of one certificate: resolve, plan, validate, apply, verify (ARCHITECTURE §2).

``Rollout`` is the unit of work behind ``RotationService``: it makes the §7 minimum of calls
(APIM list pages, 1 version list, 1 secret read only when something must change, 1 write per
changed target, 1 verify read per changed entity), re-reads and re-plans on 412 up to
``max_attempts``, and accumulates what happened in an ``Outcome``. It never writes audit
records; the service turns the outcome into records. Errors are captured in ``Outcome.error``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from rotation.domain.actions import describe
from rotation.domain.errors import PreconditionFailedError, RotationError, TransientDependencyError
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    AuditTarget,
    CertificateVersion,
    Decision,
    Disposition,
    FindingCode,
    KeyVaultEvent,
    Severity,
    Strategy,
    ValidationReport,
)
from rotation.domain.planning import (
    Action,
    AlreadyCurrent,
    Binding,
    CreateEntity,
    MoveBackend,
    PinEntity,
    RetireEntity,
    Superseded,
    choose_candidate,
    discover_bindings,
    is_superseded,
    live_bindings,
    needs_change,
    plan_rotation,
)
from rotation.ports import ApimGateway, CertificateSource, Clock, Validator

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
    ) -> None:
        self.s = settings
        self.vault_url = vault_url
        self.name = certificate_name
        self.event = event
        self._inventory = inventory
        self._versions: tuple[CertificateVersion, ...] | None = None
        self._final = True
        self.outcome = Outcome(vault=vault_url, certificate=certificate_name)

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
        for attempt in range(1, self.s.max_attempts + 1):
            self._final = attempt >= self.s.max_attempts
            if not self._resolve():
                return
            if not needs_change(out.actions):
                self._settle(write=write)
                return
            if not self._admit():
                self._mark_all(str(out.decision))
                return
            if not write:
                self._mark_all("skipped_dry_run")
                return
            try:
                self._apply()
            except PreconditionFailedError:
                if self._final:
                    raise
                self._inventory = None  # someone else wrote: re-read and re-plan
            else:
                return

    def _mark_all(self, result: str) -> None:
        """Record every target; the ones that would change get ``result``."""
        for action in self.outcome.actions:
            changes = not isinstance(action, AlreadyCurrent | Superseded)
            self._target(action, result if changes else None)

    # --- resolve and plan ---------------------------------------------------------------------

    def _bindings(self) -> tuple[Binding, ...]:
        if self._inventory is None:
            self._inventory = {}
            for service_id in self.s.apim_services:
                certs = tuple(self.s.gateway.list_certificates(service_id))
                mine = discover_bindings(self.vault_url, self.name, certs, ())
                backends = tuple(self.s.gateway.list_backends(service_id)) if mine else ()
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
            self._finding(str(FindingCode.BINDING_VERSIONLESS))
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
            self._target(
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
                self._write(action)
            else:
                self._target(action)

    # --- validate -----------------------------------------------------------------------------

    def _admit(self) -> bool:
        """Deferred / rejected / accepted; reads the candidate's secret at most once."""
        out = self.outcome
        candidate = out.candidate
        assert candidate is not None  # noqa: S101 - set by _resolve
        now = self.s.clock.now()
        if candidate.not_before is not None and candidate.not_before > now + self.s.clock_skew:
            out.decision = Decision.DEFERRED
            out.message = f"version {candidate.version} is not valid before {candidate.not_before.isoformat()}"
            return False
        if out.report is None:
            material = self.s.source.get_secret(self.vault_url, self.name, candidate.version)
            out.report = self.s.validator.validate(
                material, at=now, expected_identity=self._identity()
            )
            for code in out.report.codes:
                self._finding(code)
            self._cross_check(out.report, candidate)
        errors = [f for f in out.report.findings if f.severity is Severity.ERROR]
        if not errors:
            out.decision = Decision.APPLIED
            return True
        if all(f.code is FindingCode.VALIDITY_NOT_YET_VALID for f in errors):
            out.decision = Decision.DEFERRED
            out.message = f"version {candidate.version} is not valid yet"
        else:
            out.decision = Decision.REJECTED
            out.message = "; ".join(f"{f.code}: {f.message}" for f in errors)
        return False

    def _cross_check(self, report: ValidationReport, candidate: CertificateVersion) -> None:
        leaf = report.leaf
        expected = candidate.thumbprint_sha1
        if leaf is not None and expected and leaf.thumbprint_sha1.upper() != expected.upper():
            raise TransientDependencyError(
                f"the secret of version {candidate.version} holds leaf {leaf.thumbprint_sha1}, "
                f"but the certificate reports {expected}",
                service="keyvault", operation="get_secret",
            )  # fmt: skip

    def _identity(self) -> tuple[str, str] | None:
        """(subject, issuer) of the version in use, read from its own secret (one extra read,
        only when identity pinning is on); None when there is no earlier version."""
        candidate = self.outcome.candidate
        if not self.s.pin_identity or candidate is None:
            return None
        older = [v for v in self.outcome.in_use if v.created < candidate.created]
        if not older:
            older = [v for v in self.versions() if v.enabled and v.created < candidate.created]
        if not older:
            return None
        reference = max(older, key=lambda v: v.created)
        material = self.s.source.get_secret(self.vault_url, self.name, reference.version)
        leaf = self.s.validator.validate(material, at=self.s.clock.now()).leaf
        return (leaf.subject, leaf.issuer) if leaf is not None else None

    # --- apply and verify ---------------------------------------------------------------------

    def _apply(self) -> None:
        for action in self.outcome.actions:
            if isinstance(action, AlreadyCurrent | Superseded):
                self._target(action)
            else:
                self._write(action)

    def _write(self, action: Action) -> None:
        gw = self.s.gateway
        try:
            if isinstance(action, PinEntity | CreateEntity):
                gw.put_certificate(
                    action.service_id, action.certificate_id, secret_identifier=action.to_secret,
                    identity_client_id=action.identity_client_id,
                    etag=self._entity_etag(action) if isinstance(action, PinEntity) else None,
                )  # fmt: skip
                self._verify(action.service_id, action.certificate_id)
            elif isinstance(action, MoveBackend):
                gw.update_backend_certificates(
                    action.service_id,
                    action.backend_id,
                    certificate_ids=action.to_ids,
                    etag=action.etag,
                )
            elif isinstance(action, RetireEntity):
                gw.delete_certificate(action.service_id, action.certificate_id, etag=action.etag)
        except RotationError as exc:
            if self._final or not isinstance(exc, PreconditionFailedError):
                self._target(action, "failed")
            raise
        self._target(action)

    def _entity_etag(self, action: PinEntity) -> str:
        """The ETag to send as ``If-Match``, taken while the entity still says what we planned on.

        ARM lists carry no ETags, so the planned entity's ETag is usually empty: read the entity
        (one GET), and if it no longer references what the plan saw — a concurrent run or a person
        got there first — treat it like a 412: re-read and re-plan instead of overwriting.
        """
        if action.etag:
            return action.etag
        entity = self.s.gateway.get_certificate(action.service_id, action.certificate_id)
        if entity.secret_identifier != action.from_secret:
            raise PreconditionFailedError(
                f"{action.certificate_id} changed since it was listed",
                service="apim", operation="put_certificate", status_code=412,
            )  # fmt: skip
        return entity.etag

    def _verify(self, service_id: str, certificate_id: str) -> None:
        """Read the entity back: APIM must present the candidate's thumbprint, lastStatus Success."""
        report = self.outcome.report
        expected = (report.leaf.thumbprint_sha1 if report and report.leaf else "").upper()
        entity = self.s.gateway.get_certificate(service_id, certificate_id)
        if entity.last_status_code == "Success" and (entity.thumbprint or "").upper() == expected:
            return
        raise TransientDependencyError(
            f"verify {certificate_id}: APIM presents {entity.thumbprint or 'nothing'} "
            f"(lastStatus {entity.last_status_code}), expected {expected}",
            service="apim", operation="verify",
        )  # fmt: skip

    def _target(self, action: Action, result: str | None = None) -> None:
        target = describe(action, result)
        key = (target.service.lower(), target.kind, target.name.lower())
        earlier = self.outcome.targets.get(key)
        if earlier is not None and earlier.result in {"updated", "created", "retired"} and target.result in {
            "already_current", "superseded",
        }:  # fmt: skip
            return  # a re-plan after 412 sees our own earlier write as current: keep "updated"
        self.outcome.targets[key] = target

    def _finding(self, code: str) -> None:
        if code not in self.outcome.findings:
            self.outcome.findings.append(code)
