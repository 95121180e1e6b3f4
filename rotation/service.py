"""``RotationService``: the rotation core over the ports (docs/architecture.md).

It implements ``rotation.ports.EventHandler``: ``handle`` (one event), ``reconcile`` (the timer
sweep) and ``plan`` (what a rotation would do now, no writes). Each certificate is converged by
a ``rotation.rollout.Rollout``; this module decides what to run, and turns each outcome into
one canonical audit record plus one ``rotation.target`` record per target. ``batch`` gives the
``EventHandler`` a replay uses: the same ``handle``, but consecutive events of one certificate
share its APIM listing (an inbound certificate's: its policy documents) while nothing changed it
(``ListingCache``). A certificate named in ``ROTATION_INBOUND_CERTIFICATES`` is an inbound
identity: ``handle``, ``reconcile`` and ``plan`` converge the policy documents that pin it
(``rotation.rollout.inbound.InboundRollout``), and only those. See ``docs/rotation.md`` for the semantics.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

from rotation.domain.actions import RotationPlan
from rotation.domain.canary import CanaryMode
from rotation.domain.decisions import expiry_alert, ignore_reason
from rotation.domain.errors import BackendUpdateError, CertificateNotFoundError, RotationError
from rotation.domain.expiry import AlertMemo, binding_expirations, callers_use
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    AuditRecord,
    Decision,
    KeyVaultEvent,
    Strategy,
    Trigger,
)
from rotation.domain.planning import (
    bound_certificates,
    lists_backends,
    parse_secret_identifier,
    vault_key,
)
from rotation.ports import (
    ApimGateway,
    AuditSink,
    BackendCanary,
    CertificateSource,
    Clock,
    InboundPolicies,
    NullLock,
    NullTelemetry,
    RotationLock,
    Telemetry,
    ValidationHistory,
    Validator,
)
from rotation.rollout import Inventory, ListingCache, Outcome, Rollout, RolloutContext
from rotation.rollout.inbound import InboundRollout, PolicyListing, list_policies
from rotation.rollout.record import error_text, outcome_records
from rotation.rollout.status import survey

if TYPE_CHECKING:
    from rotation.domain.status import StatusRow
    from rotation.rollout.listings import KeptListing

__all__ = ["BatchHandler", "RotationPlan", "RotationService", "UnexpectedError"]


class RotationService:
    """Handles Key Vault events and reconcile sweeps; the only place rotations are decided."""

    def __init__(
        self,
        source: CertificateSource,
        gateway: ApimGateway,
        validator: Validator,
        audit: AuditSink,
        clock: Clock,
        *,
        vaults: Sequence[str],
        apim_services: Sequence[str],
        strategy: Strategy = Strategy.PIN,
        dry_run: bool = False,
        retain_previous: int = 2,
        max_attempts: int = 3,
        near_expiry_days: int = 30,
        clock_skew: timedelta = timedelta(seconds=300),
        pin_identity: bool = False,
        correlation: Callable[[], str] | None = None,
        lock: RotationLock | None = None,
        canary: BackendCanary | None = None,
        canary_mode: CanaryMode = CanaryMode.OFF,
        history: ValidationHistory | None = None,
        telemetry: Telemetry | None = None,
        inbound: InboundPolicies | None = None,
        inbound_certificates: Sequence[tuple[str, str]] = (),
        inbound_overlap_days: int = 7,
    ) -> None:
        """``correlation`` returns the id for the next invocation's records (default: uuid4;
        bootstrap passes the id the entrypoint bound to the log context). ``lock`` serialises
        the runs that write one certificate (None: no lock, ETags alone). ``canary`` probes the
        backends before a write under ``canary_mode`` (None or ``off``: never). ``history`` is
        the durable trail ``follow`` asks for the last validated version (None: unknown).
        ``telemetry`` gets every run's decision and duration and what each binding presents
        after it. ``inbound_certificates`` are the (vault URL, certificate name) pairs whose
        versions callers present (``ROTATION_INBOUND_CERTIFICATES``): their events go to the
        inbound path only, over the policy documents ``inbound`` reads and writes; an old
        identity stays ``inbound_overlap_days`` after certrotate added the newer one.

        Raises:
            ValueError: a knob is out of range, or inbound certificates without ``inbound``
                (bootstrap passes validated settings).
        """
        if retain_previous < 1 or max_attempts < 1 or near_expiry_days < 1:
            raise ValueError("retain_previous, max_attempts and near_expiry_days must be >= 1")
        if inbound_overlap_days < 1:
            raise ValueError("inbound_overlap_days must be >= 1")
        if inbound_certificates and inbound is None:
            raise ValueError("inbound certificates are configured but no InboundPolicies given")
        self._audit = audit
        self._correlation = correlation or (lambda: uuid.uuid4().hex)
        self._clock = clock
        self._vaults = {vault_key(v): v.rstrip("/") for v in vaults if vault_key(v)}
        self._dry_run = dry_run
        self._strategy = strategy
        self._lock: RotationLock = lock or NullLock()
        self._near_expiry = timedelta(days=near_expiry_days)
        self._telemetry: Telemetry = telemetry or NullTelemetry()
        self._alerted = AlertMemo()  # near-expiry alerts: once per certificate per UTC day
        self._context = RolloutContext(
            source=source, gateway=gateway, validator=validator, clock=clock,
            apim_services=tuple(apim_services), strategy=strategy, retain_previous=retain_previous,
            max_attempts=max_attempts, clock_skew=clock_skew, pin_identity=pin_identity,
            canary=canary if canary_mode is not CanaryMode.OFF else None, canary_mode=canary_mode,
            history=history, inbound=inbound,
            inbound_overlap=timedelta(days=inbound_overlap_days),
        )  # fmt: skip
        self._inbound: dict[tuple[str | None, str], tuple[str, str]] = {
            (vault_key(v), n.lower()): (v.rstrip("/"), n) for v, n in inbound_certificates
        }

    def is_inbound(self, vault_url: str, certificate: str) -> bool:
        """``certificate`` in ``vault_url`` is an inbound identity (handled by the inbound path
        only)."""
        return (vault_key(vault_url), certificate.lower()) in self._inbound

    # --- EventHandler ------------------------------------------------------------------------

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        """Handle one event end to end and return its canonical audit record. APIM is listed
        afresh for every event (see ``batch`` for a replay's shared listings).

        Raises:
            RotationError: after recording a ``failed`` record, the error that failed the run
                (``retryable`` says whether Event Grid should redeliver). Permanent outcomes
                (rejected, ignored, superseded, ...) are returned, not raised.
        """
        return self._handle(event, trigger=trigger, listings=None)

    def batch(self, *, max_age_seconds: float = 30.0, max_certificates: int = 64) -> BatchHandler:
        """An ``EventHandler`` for many events in a row (``certrotate replay``): ``handle`` as
        above, except that an event plans from the APIM listing the previous run of the same
        certificate ended with (an inbound certificate's: every service's policy documents),
        while that listing is younger than ``max_age_seconds`` (by this service's clock) and
        that run neither changed APIM, failed nor had a compare-and-swap refused. Listings of the
        ``max_certificates`` most recently handled certificates are kept.

        Raises:
            ValueError: ``max_age_seconds`` < 0 or ``max_certificates`` < 1.
        """
        listings = ListingCache(
            self._clock,
            max_age=timedelta(seconds=max_age_seconds),
            max_certificates=max_certificates,
        )
        return BatchHandler(self, listings)

    def _handle(
        self, event: KeyVaultEvent, *, trigger: Trigger, listings: ListingCache | None
    ) -> AuditRecord:
        """``handle``, planning from ``listings`` when a usable one is kept there."""
        started, correlation = time.perf_counter(), self._correlation()
        reason = ignore_reason(event, self._vaults)
        if reason is not None:
            outcome = Outcome(vault=event.vault_url, certificate=event.object_name, message=reason)
        else:
            vault, name = self._vaults[vault_key(event.vault_url)], event.object_name
            shared = listings.take(vault, name) if listings is not None else None
            rollout, borrowed = self._rollout(vault, name, event=event, shared=shared)
            # The kept listing's age, or a time taken before this rollout lists.
            listed_at = shared.listed_at if shared and borrowed else self._clock.now()
            outcome = self._converge(rollout)
            if listings is not None:
                listings.settle(rollout, listed_at=listed_at)
        record = self._record(
            outcome, event=event, trigger=trigger, started=started, correlation=correlation
        )
        if outcome.error is not None:
            raise outcome.error
        return record

    def reconcile(self, *, trigger: Trigger = Trigger.TIMER) -> Sequence[AuditRecord]:
        """Converge every certificate an APIM entity references in a configured vault, and
        record near-expiry alerts for in-use versions; one failure does not stop the sweep, not
        even an unexpected exception (recorded ``failed`` for its certificate or service).

        Raises:
            BackendUpdateError: (retryable) after the sweep, if any certificate or service
                failed with a retryable error or an unexpected exception; every record was
                written first (a non-retryable failure is only recorded ``failed``).
        """
        correlation = self._correlation()
        records: list[AuditRecord] = []
        failures: list[RotationError] = []
        inventory = self._inventory(trigger, correlation, records, failures)
        entities = [c for certs, _ in inventory.values() for c in certs]
        for vault, name in bound_certificates(list(self._vaults.values()), entities):
            if self.is_inbound(vault, name):
                continue  # the inbound sweep below handles it
            rollout = Rollout(self._context, vault, name, inventory=inventory)
            self._sweep_one(rollout, trigger, correlation, records, failures)
        self._sweep_inbound(trigger, correlation, records, failures)
        if any(f.retryable for f in failures):
            raise BackendUpdateError(
                f"reconcile: {len(failures)} certificate(s) or service(s) failed",
                results=tuple(failures), retryable=True,
            )  # fmt: skip
        return records

    def plan(self, vault_url: str, certificate_name: str) -> RotationPlan:
        """What a rotation of ``certificate_name`` would do now: reads only, nothing recorded.

        Raises:
            CertificateNotFoundError: the certificate does not exist in the vault.
            RotationError: a Key Vault or APIM read failed.
        """
        vault = self._vaults.get(vault_key(vault_url))
        if vault is None:
            return RotationPlan(
                vault=vault_url, certificate=certificate_name, decision=Decision.IGNORED,
                candidate=None, previous_version=None, actions=(),
                message=f"vault {vault_url} is not in ROTATION_VAULTS",
            )  # fmt: skip
        rollout, _ = self._rollout(vault, certificate_name)
        out = rollout.run(write=False)
        if out.error is not None:
            raise out.error
        if out.candidate is None and not rollout.versions():  # unbound: does it exist at all?
            raise CertificateNotFoundError(f"certificate {certificate_name} not found in {vault}")
        return RotationPlan(
            vault=vault, certificate=certificate_name, decision=out.decision, candidate=out.candidate,
            previous_version=out.previous_version, actions=out.actions, findings=tuple(out.findings),
            message=out.message,
        )  # fmt: skip

    def status(self, *, alert_days: int) -> tuple[StatusRow, ...]:
        """Every binding's health now, then every inbound identity's (``certrotate status``):
        reads only, nothing recorded.

        Raises:
            RotationError: an APIM or Key Vault read failed, or a policy document that pins an
                inbound certificate cannot be parsed.
        """
        vaults = list(self._vaults.values())
        return survey(
            self._context, vaults, now=self._clock.now(), alert_days=alert_days,
            inbound=tuple(self._inbound.values()),
        )  # fmt: skip

    # --- helpers -----------------------------------------------------------------------------

    def _sweep_inbound(
        self,
        trigger: Trigger,
        correlation: str,
        records: list[AuditRecord],
        failures: list[RotationError],
    ) -> None:
        """Converge every inbound certificate (adds missed versions, retires old identities)
        from one listing of every service's policy documents, and record near-expiry alerts
        for what callers can present after it; one failure does not stop it."""
        if not self._inbound:
            return
        inbound = self._context.inbound
        assert inbound is not None  # noqa: S101 - checked in __init__
        try:
            listing: PolicyListing | None = list_policies(inbound, self._context.apim_services)
        except Exception as exc:  # noqa: BLE001 - recorded; the next sweep lists again
            self._listing_failed(
                exc, "could not list the APIM policy documents",
                trigger=trigger, correlation=correlation, records=records, failures=failures,
            )  # fmt: skip
            return
        for vault, name in self._inbound.values():
            if vault_key(vault) not in self._vaults:
                continue  # settings check it; a service built by hand may not
            rollout = InboundRollout(self._context, vault, name, listing=listing)
            outcome = self._sweep_one(rollout, trigger, correlation, records, failures)
            # What a run wrote is not in the listing it planned from: the next one lists afresh.
            listing = None if outcome.wrote else rollout.listing

    def _sweep_one(
        self,
        rollout: Rollout | InboundRollout,
        trigger: Trigger,
        correlation: str,
        records: list[AuditRecord],
        failures: list[RotationError],
    ) -> Outcome:
        """One certificate of a sweep: converge it, record the outcome and, when what it
        presents after the run expires soon, the expiry alert; an unexpected exception ends
        only this run (recorded ``failed``)."""
        started = time.perf_counter()
        try:
            outcome = self._converge(rollout)
        except Exception as exc:  # noqa: BLE001 - a bug for one certificate ends only its run
            outcome = rollout.outcome
            outcome.decision, outcome.error = Decision.FAILED, UnexpectedError.wrap(exc)
        records.append(
            self._record(
                outcome, event=None, trigger=trigger, started=started, correlation=correlation
            )
        )
        if outcome.error is not None:
            failures.append(outcome.error)
        inbound = isinstance(rollout, InboundRollout)
        alert = self._expiry_alert(
            outcome, trigger=trigger, correlation=correlation, inbound=inbound
        )
        if alert is not None:
            self._audit.write(alert)
            records.append(alert)
        return outcome

    def _rollout(
        self,
        vault: str,
        name: str,
        *,
        event: KeyVaultEvent | None = None,
        shared: KeptListing | None = None,
    ) -> tuple[Rollout | InboundRollout, bool]:
        """The rollout of ``name`` (inbound or outbound), planning from ``shared``'s listing of
        its kind when there is one; and whether it does (a borrowed listing)."""
        if self.is_inbound(vault, name):
            policies = shared.policies if shared else None
            inbound = InboundRollout(
                self._context, vault, name, event=event, listing=policies,
                borrowed=policies is not None,
            )  # fmt: skip
            return inbound, policies is not None
        inventory = shared.inventory if shared else None
        outbound = Rollout(
            self._context, vault, name, event=event, inventory=inventory,
            borrowed=inventory is not None,
        )  # fmt: skip
        return outbound, inventory is not None

    def _listing_failed(
        self,
        exc: Exception,
        message: str,
        *,
        trigger: Trigger,
        correlation: str,
        records: list[AuditRecord],
        failures: list[RotationError],
    ) -> None:
        """A sweep's listing failed: record ``reconcile.failed`` with ``message``; the sweep
        goes on without it."""
        error = exc if isinstance(exc, RotationError) else UnexpectedError.wrap(exc)
        failures.append(error)
        record = AuditRecord(
            event="reconcile.failed", decision=Decision.FAILED, trigger=trigger,
            correlation_id=correlation, error=error_text(error), strategy=self._strategy,
            message=message,
        )  # fmt: skip
        self._audit.write(record)
        records.append(record)

    def _converge(self, rollout: Rollout | InboundRollout) -> Outcome:
        """Run ``rollout``; a writing run holds the certificate's lock (dry runs take none).

        A lock that cannot be taken fails the run like any dependency: decision ``failed`` with
        the error (retryable when the wait timed out), and nothing was read or written.
        """
        if self._dry_run:
            return rollout.run(write=False)
        try:
            with self._lock.hold(rollout.vault_url, rollout.name):
                return rollout.run(write=True)  # never raises a RotationError
        except RotationError as exc:  # taking the lock failed (a release failure is ignored)
            out = rollout.outcome
            out.decision, out.error = Decision.FAILED, exc
            out.message = f"could not take the rotation lock of {rollout.name}"
            return out

    def _inventory(
        self,
        trigger: Trigger,
        correlation: str,
        records: list[AuditRecord],
        failures: list[RotationError],
    ) -> Inventory:
        """Every service's entities (and, for blue-green, backends where an entity names a
        configured vault)."""
        gateway = self._context.gateway
        inventory: Inventory = {}
        for service_id in self._context.apim_services:
            try:
                certs = tuple(gateway.list_certificates(service_id))
                ours = lists_backends(
                    self._strategy, canary=self._context.canary is not None
                ) and any(self._references_vault(c) for c in certs)
                backends: tuple[ApimBackend, ...] = (
                    tuple(gateway.list_backends(service_id)) if ours else ()
                )
            except Exception as exc:  # noqa: BLE001 - unexpected ones too: the sweep goes on
                self._listing_failed(
                    exc, f"could not list APIM service {service_id}",
                    trigger=trigger, correlation=correlation, records=records, failures=failures,
                )  # fmt: skip
                continue
            inventory[service_id] = (certs, backends)
        return inventory

    def _references_vault(self, entity: ApimCertificate) -> bool:
        ref = parse_secret_identifier(entity.secret_identifier)
        return ref is not None and ref.vault in self._vaults

    def _record(
        self,
        outcome: Outcome,
        *,
        event: KeyVaultEvent | None,
        trigger: Trigger,
        started: float,
        correlation: str,
    ) -> AuditRecord:
        """Write one record per target, then the canonical record; return the canonical one."""
        record, per_target = outcome_records(
            outcome, event=event, trigger=trigger, strategy=self._strategy, dry_run=self._dry_run,
            duration_ms=round((time.perf_counter() - started) * 1000, 3), correlation_id=correlation,
            now=self._clock.now(),
        )  # fmt: skip
        for target in per_target:
            self._audit.write(target)
        self._audit.write(record)
        self._telemetry.rotation(
            decision=str(record.decision), strategy=str(self._strategy), trigger=str(trigger),
            duration_seconds=(record.duration_ms or 0.0) / 1000,
        )  # fmt: skip
        self._telemetry.expirations(
            binding_expirations(
                vault=outcome.vault,
                certificate=outcome.certificate,
                targets=record.targets,
                candidate=outcome.candidate,
                in_use=outcome.in_use,
            )
        )
        return record

    def _expiry_alert(
        self, outcome: Outcome, *, trigger: Trigger, correlation: str, inbound: bool = False
    ) -> AuditRecord | None:
        """A ``certificate.near_expiry`` (or ``.expired``) record when what the bindings present
        after this run expires within ``near_expiry_days`` (``domain.decisions.expiry_alert``),
        once per certificate (and version) per UTC day of this service (``AlertMemo``).
        ``inbound``: what the bindings present is the newest version each policy document pins
        after the run (``domain.expiry.callers_use``)."""
        now = self._clock.now()
        in_use = (
            callers_use(outcome.targets.values(), outcome.in_use) if inbound else outcome.in_use
        )
        alert = expiry_alert(
            decision=outcome.decision, candidate=outcome.candidate, in_use=in_use,
            vault=outcome.vault, certificate=outcome.certificate, now=now,
            near_expiry=self._near_expiry, strategy=self._strategy, dry_run=self._dry_run,
            trigger=trigger, correlation_id=correlation, inbound=inbound,
        )  # fmt: skip
        if alert is None or not self._alerted.due(
            outcome.vault, outcome.certificate, alert.version or "", now
        ):
            return None
        return alert


class UnexpectedError(RotationError):
    """An exception no port documents (a bug), caught so a sweep goes on; retryable, as the
    Functions trigger raises (and Event Grid redelivers) on one. The original is ``__cause__``."""

    retryable: ClassVar[bool] = True

    @classmethod
    def wrap(cls, exc: Exception) -> UnexpectedError:
        """``exc`` as an ``UnexpectedError`` naming its type (message redacted), chained."""
        from rotation.logconfig import redact  # noqa: PLC0415 - only on this rare path

        error = cls(str(redact(f"{type(exc).__name__}: {exc}")))
        error.__cause__ = exc
        return error


class BatchHandler:
    """The ``EventHandler`` a replay hands its events to (``RotationService.batch``).

    ``handle`` decides and records exactly as ``RotationService.handle`` does; it only plans
    from a certificate's kept APIM listing or, for an inbound certificate, its kept policy
    listing (``ListingCache``) instead of listing again.
    """

    def __init__(self, service: RotationService, listings: ListingCache) -> None:
        self._service = service
        self.listings = listings

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        """``RotationService.handle`` over the shared listings.

        Raises:
            RotationError: as ``RotationService.handle`` (the certificate's listing is dropped).
        """
        return self._service._handle(event, trigger=trigger, listings=self.listings)  # noqa: SLF001 - the service's own batch view

    def reconcile(self, *, trigger: Trigger = Trigger.TIMER) -> Sequence[AuditRecord]:
        """``RotationService.reconcile`` (its own single listing); the kept listings are
        dropped, as the sweep may have written.

        Raises:
            BackendUpdateError: as ``RotationService.reconcile``.
        """
        try:
            return self._service.reconcile(trigger=trigger)
        finally:
            self.listings.clear()
