"""Ports: the roles the rotation core needs from the outside world, as ``Protocol``s.

Real implementations live in ``rotation.adapters`` and are built only in ``rotation.bootstrap``;
fakes with observable state live in ``rotation.testing``. Methods follow the Azure verb table:
``get_*`` raises when missing, ``list_*`` returns an iterable (possibly empty, never ``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Protocol, runtime_checkable

from rotation.domain.canary import CanaryTarget, CanaryVerdict
from rotation.domain.expiry import BindingExpiry
from rotation.domain.inbound import PolicyDocument
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    AuditRecord,
    CertificateVersion,
    KeyVaultEvent,
    SecretMaterial,
    Trigger,
    ValidationReport,
)

__all__ = [
    "ApimGateway",
    "AuditSink",
    "BackendCanary",
    "CertificateSource",
    "Clock",
    "EventHandler",
    "InboundPolicies",
    "NullLock",
    "NullTelemetry",
    "RotationLock",
    "Telemetry",
    "ValidationHistory",
    "Validator",
]


@runtime_checkable
class Clock(Protocol):
    """The only source of "now" (tz-aware UTC)."""

    def now(self) -> datetime: ...


@runtime_checkable
class CertificateSource(Protocol):
    """Key Vault certificates and their secrets.

    Raises:
        CertificateNotFoundError: the certificate or version does not exist.
        TransientDependencyError: throttled, 5xx, timeout, reset.
        AuthorizationError: 401/403.
        DependencyError: anything else.
    """

    def list_certificate_versions(self, vault_url: str, name: str) -> Iterable[CertificateVersion]:
        """Every version of certificate ``name`` (all pages), in no particular order."""
        ...

    def get_secret(self, vault_url: str, name: str, version: str) -> SecretMaterial:
        """The certificate's secret (PKCS#12 or PEM, chain and private key)."""
        ...


@runtime_checkable
class ApimGateway(Protocol):
    """APIM certificate entities and backends through ARM, with ETags.

    ``service_id`` is always the full ARM id of the APIM service. ARM list items carry no ETag
    (``etag == ""``), only single reads and writes do. So every conditional update is a
    *compare-and-swap* done by the gateway itself: read the target (its ETag comes with the
    read), compare it with what the caller's plan saw, then write with ``If-Match`` that ETag.
    The caller passes what it saw, never an ETag; a gateway keeps no state between calls.

    Raises:
        CertificateNotFoundError: ``get_certificate`` on a missing entity.
        PreconditionFailedError: a compare-and-swap found the target changed or gone, or its ETag
            moved between the read and the write (412); re-read and re-plan.
        TransientDependencyError / AuthorizationError / DependencyError: as for CertificateSource.
    """

    def list_certificates(self, service_id: str) -> Iterable[ApimCertificate]:
        """Every certificate entity in the service (all pages); items carry no ETag."""
        ...

    def list_backends(self, service_id: str) -> Iterable[ApimBackend]:
        """Every backend in the service (all pages); items carry no ETag."""
        ...

    def get_certificate(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """One certificate entity, with its ETag, thumbprint and ``keyVault.lastStatus``."""
        ...

    def put_certificate(
        self,
        service_id: str,
        certificate_id: str,
        *,
        secret_identifier: str,
        identity_client_id: str | None,
        expected_secret: str | None,
    ) -> ApimCertificate:
        """Point a Key Vault-backed entity at ``secret_identifier``.

        ``expected_secret=None`` creates it (an unconditional ``PUT``: ARM offers no
        ``If-None-Match`` for APIM certificates). Otherwise a compare-and-swap of an existing
        entity: one read (``GET``, for the ETag), refused with ``PreconditionFailedError``
        unless the entity still exists and its ``keyVault.secretIdentifier`` equals
        ``expected_secret`` (what the plan saw), then ``PUT`` with ``If-Match`` that ETag (a
        write in between is a 412, also ``PreconditionFailedError``).
        """
        ...

    def update_backend_certificates(
        self,
        service_id: str,
        backend_id: str,
        *,
        expected_ids: tuple[str, ...],
        certificate_ids: tuple[str, ...],
    ) -> ApimBackend:
        """Compare-and-swap a backend's ``credentials.certificateIds``.

        One read (``GET``, for the ETag and the whole ``credentials``), refused with
        ``PreconditionFailedError`` unless the backend still exists and its certificate ids
        equal ``expected_ids`` (what the plan saw), then ``PATCH`` with ``If-Match`` that ETag,
        sending the ``credentials`` just read with only ``certificateIds`` replaced by
        ``certificate_ids`` (so header/query/authorization credentials survive). A write in
        between is a 412, also ``PreconditionFailedError``.
        """
        ...

    def delete_certificate(self, service_id: str, certificate_id: str, *, etag: str) -> None:
        """Delete an entity (``If-Match: etag``, ``*`` when empty); succeeds if already gone."""
        ...

    def refresh_certificate(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """Ask APIM to fetch a Key Vault-backed entity's secret now (``POST .../refreshSecret``;
        no ``If-Match``: it changes no reference). A failed fetch shows in ``lastStatus`` only.
        """
        ...


@runtime_checkable
class InboundPolicies(Protocol):
    """APIM policy documents (inbound mTLS identities) through ARM, in ``rawxml`` format.

    ``service_id`` is the full ARM id of the APIM service. Writes are compare-and-swaps done by
    the adapter, as for ``ApimGateway``: the caller passes the document value its plan saw.

    Raises:
        PreconditionFailedError: a compare-and-swap found the document changed or gone, or its
            ETag moved between the read and the write (412); re-read and re-plan.
        TransientDependencyError / AuthorizationError / DependencyError: as for CertificateSource.
    """

    def list_policies(self, service_id: str) -> Iterable[PolicyDocument]:
        """Every policy document of the service at global, product, API and operation scope
        (a scope without a policy yields nothing), values in ``rawxml``."""
        ...

    def put_policy(
        self, document: PolicyDocument, *, expected_value: str, value: str
    ) -> PolicyDocument:
        """Replace ``document``'s value with ``value``: one read (``GET ?format=rawxml``, for
        the ETag), refused with ``PreconditionFailedError`` unless the document still exists
        and its value equals ``expected_value``, then ``PUT`` (``format: rawxml``) with
        ``If-Match`` that ETag. Returns the document as written (with its new ETag)."""
        ...


@runtime_checkable
class Validator(Protocol):
    """Decides whether a certificate bundle is fit to present (docs/architecture.md, "Validation and finding codes")."""

    def validate(
        self,
        material: SecretMaterial,
        *,
        at: datetime,
        expected_identity: tuple[str, str] | None = None,
    ) -> ValidationReport:
        """Validate at time ``at``. ``expected_identity`` is (subject, issuer) when pinned.

        Never raises for a bad bundle: that is a ``format.unreadable`` finding.
        """
        ...


@runtime_checkable
class BackendCanary(Protocol):
    """Probes backends over mTLS before a rotation writes (``docs/canary.md``)."""

    def verdicts(
        self,
        cases: Sequence[tuple[CanaryTarget, SecretMaterial | None]],
        candidate: SecretMaterial,
    ) -> list[CanaryVerdict]:
        """One verdict per case, in order: each https backend probed with ``candidate`` and with
        the material of its version in use (None: nothing to compare with), all concurrently
        within one time bound. Never raises for what the network or a backend does."""
        ...


@runtime_checkable
class ValidationHistory(Protocol):
    """What the durable audit trail says certrotate did: the versions it validated (the
    ``follow`` strategy), and when it added inbound identities (the inbound overlap)."""

    def last_validated(self, vault_url: str, certificate: str) -> str | None:
        """The newest version certrotate validated and saw presented (``rotation.applied``, or
        a validated ``already_current``), or None when the trail does not say.

        Raises:
            DependencyError: the trail could not be read.
        """
        ...

    def inbound_added_at(
        self, vault_url: str, certificate: str
    ) -> Mapping[tuple[str, str], datetime] | None:
        """When certrotate added each thumbprint of ``certificate`` to each policy document:
        (policy resource id lower case, thumbprint upper case) -> the time of the write
        (``rotation.domain.inbound.added_at``). None when this trail cannot be read back (the
        overlap cannot be measured: only expiry retires an old identity).

        Raises:
            DependencyError: the trail could not be read.
        """
        ...


@runtime_checkable
class AuditSink(Protocol):
    """Where audit records go (stdout JSON, a durable table, memory in tests)."""

    def write(self, record: AuditRecord) -> None:
        """Record one audit record. Raises ``DependencyError`` if it could not be stored."""
        ...


@runtime_checkable
class EventHandler(Protocol):
    """What the entrypoints hand events to: the rotation service."""

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        """Handle one event end to end and return its canonical audit record.

        Raises retryable ``RotationError``s for transient/configuration failures (Event Grid
        redelivers); permanent outcomes (rejected, ignored, ...) are returned, not raised.
        """
        ...

    def reconcile(self, *, trigger: Trigger) -> Sequence[AuditRecord]:
        """Sweep every bound certificate: catch missed versions and alert near expiry."""
        ...


@runtime_checkable
class RotationLock(Protocol):
    """Serialises the runs that converge one certificate (a blob lease per certificate).

    Raises:
        TransientDependencyError: the lock was not acquired within the bounded wait (retryable,
            so Event Grid redelivers later), or the lock store failed transiently.
        AuthorizationError / DependencyError: the lock store refused or failed otherwise.
    """

    def hold(self, vault_url: str, certificate: str) -> AbstractContextManager[None]:
        """Hold the lock of ``certificate`` in ``vault_url`` (case-insensitive) for the block;
        released on exit, also when the block raises."""
        ...


class NullLock:
    """A ``RotationLock`` that never waits (``ROTATION_LOCK=off``): runs rely on ETags alone."""

    @contextmanager
    def hold(self, vault_url: str, certificate: str) -> Iterator[None]:  # noqa: ARG002
        """Hold nothing."""
        yield


@runtime_checkable
class Telemetry(Protocol):
    """Metrics (docs/operations.md, "Metrics"): what the service and the canary report.

    Implementations never raise into the rotation path: a metrics backend that fails loses
    data points, never a rotation.
    """

    def rotation(
        self, *, decision: str, strategy: str, trigger: str, duration_seconds: float
    ) -> None:
        """One run ended in ``decision`` (``certrotate.rotations``, ``certrotate.rotation.duration``)."""
        ...

    def expirations(self, bindings: Iterable[BindingExpiry]) -> None:
        """What these bindings present now (``certrotate.certificate.expiration``)."""
        ...

    def canary_probe(self, *, verdict: str) -> None:
        """One canary probe ended in ``verdict`` (``certrotate.canary.probes``)."""
        ...

    def invocation(
        self, traceparent: str | None, tracestate: str | None = None
    ) -> AbstractContextManager[None]:
        """Correlate what is logged inside the block with the invocation's W3C trace context
        (App Insights: the traces' operation id is the invocation's)."""
        ...

    def flush(self) -> None:
        """Export what is pending (short-lived processes call it before they exit)."""
        ...


class NullTelemetry:
    """A ``Telemetry`` that records nothing (no exporter configured: no cost)."""

    def rotation(
        self, *, decision: str, strategy: str, trigger: str, duration_seconds: float
    ) -> None:
        """Record nothing."""

    def expirations(self, bindings: Iterable[BindingExpiry]) -> None:
        """Record nothing."""

    def canary_probe(self, *, verdict: str) -> None:
        """Record nothing."""

    @contextmanager
    def invocation(
        self,
        traceparent: str | None,  # noqa: ARG002
        tracestate: str | None = None,  # noqa: ARG002
    ) -> Iterator[None]:
        """Correlate nothing."""
        yield

    def flush(self) -> None:
        """Nothing to flush."""
