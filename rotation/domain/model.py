"""Value objects shared by every layer: events, Key Vault versions, APIM entities, reports, audit.

All are frozen, slotted, keyword-only dataclasses; datetimes are tz-aware UTC; collections are
tuples. Secret material never appears in a ``repr``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "ApimBackend",
    "ApimCertificate",
    "AuditRecord",
    "AuditTarget",
    "CertificateSummary",
    "CertificateVersion",
    "DeadLetterInfo",
    "Decision",
    "Disposition",
    "Finding",
    "FindingCode",
    "KeyVaultEvent",
    "OutgoingEvent",
    "SecretMaterial",
    "Severity",
    "Strategy",
    "TargetKind",
    "TargetResult",
    "Trigger",
    "ValidationReport",
    "by_thumbprint",
    "version_order",
]


class Decision(StrEnum):
    """The ``decision`` of an audit record (docs/architecture.md, "Decisions")."""

    APPLIED = "applied"
    ALREADY_CURRENT = "already_current"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    IGNORED = "ignored"
    FAILED = "failed"


class Disposition(StrEnum):
    """What an event asks for: rotate (new version), alert (near expiry/expired), ignore."""

    ROTATE = "rotate"
    ALERT = "alert"
    IGNORE = "ignore"


class Strategy(StrEnum):
    """How APIM references are moved (docs/architecture.md, "The rotation path", step 2)."""

    PIN = "pin"
    BLUE_GREEN = "blue-green"
    FOLLOW = "follow"  # versionless entities, refreshed after validation (docs/rotation.md)


class Trigger(StrEnum):
    """What started a run."""

    EVENTGRID = "eventgrid"
    TIMER = "timer"
    CLI = "cli"


class TargetKind(StrEnum):
    """What an audit target is: an APIM certificate entity, a backend, or a policy document
    (inbound identities)."""

    CERTIFICATE = "certificate"
    BACKEND = "backend"
    POLICY = "policy"


class TargetResult(StrEnum):
    """The ``result`` of an audit target: what a run did to it (or, for ``plan``, would do)."""

    UPDATED = "updated"
    CREATED = "created"
    RETIRED = "retired"
    ALREADY_CURRENT = "already_current"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    SKIPPED_DRY_RUN = "skipped_dry_run"
    DEFERRED = "deferred"  # the candidate was deferred: the target was left as it is
    REJECTED = "rejected"  # the candidate was rejected: the target was left as it is
    REFRESHED = "refreshed"  # follow: APIM re-fetched the versionless secret (refreshSecret)
    PINNED = "pinned"  # follow: pinned to the last validated version (the candidate failed)
    # planned verbs (``RotationPlan.targets``)
    UPDATE = "update"
    REFRESH = "refresh"
    PIN = "pin"
    CREATE = "create"
    MOVE = "move"
    RETIRE = "retire"

    @property
    def wrote(self) -> bool:
        """The run wrote to APIM for this target (or tried to: ``failed``)."""
        return self in _WRITTEN

    @property
    def changed(self) -> bool:
        """The run changed what APIM holds for this target."""
        return self in _CHANGED


_CHANGED = frozenset(
    {
        TargetResult.UPDATED,
        TargetResult.CREATED,
        TargetResult.RETIRED,
        TargetResult.REFRESHED,
        TargetResult.PINNED,
    }
)
_WRITTEN = _CHANGED | {TargetResult.FAILED}


class Severity(StrEnum):
    """``error`` rejects a certificate; ``warning`` informs; ``info`` records (canary results)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class FindingCode(StrEnum):
    """Stable finding codes (docs/architecture.md, "Validation and finding codes"); users, tests and audit records depend on them."""

    FORMAT_UNREADABLE = "format.unreadable"
    CHAIN_UNTRUSTED = "chain.untrusted"
    CHAIN_BAD_SIGNATURE = "chain.bad_signature"
    CHAIN_ISSUER_EXPIRED = "chain.issuer_expired"
    VALIDITY_EXPIRED = "validity.expired"
    VALIDITY_NOT_YET_VALID = "validity.not_yet_valid"
    VALIDITY_TOO_SHORT = "validity.too_short"
    USAGE_CLIENT_AUTH_MISSING = "usage.client_auth_missing"
    USAGE_LEAF_IS_CA = "usage.leaf_is_ca"
    KEY_WEAK = "key.weak"
    SIGNATURE_WEAK_ALGORITHM = "signature.weak_algorithm"
    KEY_MISSING = "key.missing"
    KEY_MISMATCH = "key.mismatch"
    REVOCATION_REVOKED = "revocation.revoked"
    REVOCATION_UNAVAILABLE = "revocation.unavailable"
    IDENTITY_CHANGED = "identity.changed"
    BINDING_VERSIONLESS = "binding.versionless"
    BINDING_PINNED = "binding.pinned"
    BINDING_UNVALIDATED = "binding.unvalidated"
    BINDING_LAST_VALIDATED_UNKNOWN = "binding.last_validated_unknown"
    CANARY_PASSED = "canary.passed"
    CANARY_REFUSED = "canary.refused"
    CANARY_INCONCLUSIVE = "canary.inconclusive"
    CANARY_UNREACHABLE = "canary.unreachable"
    CANARY_SKIPPED = "canary.skipped"


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterInfo:
    """Metadata Event Grid adds to a dead-lettered event."""

    reason: str | None
    attempts: int | None
    last_outcome: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyVaultEvent:
    """One normalised Key Vault event, whatever schema or envelope it arrived in."""

    event_id: str
    event_type: str
    schema: str  # "eventgrid" | "cloudevents"
    vault_name: str
    vault_url: str  # https://{vault}.vault.azure.net (no trailing slash), lower-cased host
    object_type: str  # "Certificate" | "Secret" | "Key" | "" for non-Key-Vault events
    object_name: str
    version: str
    not_before: datetime | None
    expires: datetime | None
    event_time: datetime | None
    deadletter: DeadLetterInfo | None
    disposition: Disposition
    # The delivering topic: Event Grid schema ``topic`` (the vault's system topic, or the replay
    # topic of a re-drive), CloudEvents ``source``; "" when absent. On record, never decisive.
    topic: str = ""


# --- Key Vault -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateVersion:
    """Properties of one Key Vault certificate version (no secret material)."""

    vault_url: str
    name: str
    version: str
    enabled: bool
    created: datetime
    not_before: datetime | None = None
    expires: datetime | None = None
    thumbprint_sha1: str | None = None  # upper-case hex, as APIM shows it

    @property
    def secret_id(self) -> str:
        """The versioned secret URL APIM references (``…/secrets/{name}/{version}``)."""
        return f"{self.vault_url}/secrets/{self.name}/{self.version}"


def version_order(version: CertificateVersion) -> tuple[object, ...]:
    """The sort key of versions, oldest first: ``created``, then the version id."""
    return (version.created, version.version.lower())


def by_thumbprint(versions: Iterable[CertificateVersion]) -> dict[str, CertificateVersion]:
    """``versions`` by upper-case SHA-1 thumbprint (versions without one are left out)."""
    return {v.thumbprint_sha1.upper(): v for v in versions if v.thumbprint_sha1}


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretMaterial:
    """A certificate's secret: PKCS#12 (DER bytes) or PEM text, with the chain and private key.

    The value is excluded from ``repr`` and equality output so it cannot reach a log line.
    """

    content_type: str  # "application/x-pkcs12" | "application/x-pem-file"
    value: bytes = field(repr=False)
    secret_id: str = ""


# --- APIM ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ApimCertificate:
    """An APIM certificate entity as read through ARM."""

    service_id: str  # full ARM id of the APIM service
    certificate_id: str  # entity name (last path segment)
    secret_identifier: str | None  # keyVault.secretIdentifier; None for uploaded certificates
    identity_client_id: str | None = None
    thumbprint: str | None = None  # upper-case SHA-1 hex
    subject: str | None = None
    expiration: datetime | None = None
    last_status_code: str | None = None  # keyVault.lastStatus.code, "Success" when fetched
    last_status_message: str | None = None
    etag: str = ""

    @property
    def resource_id(self) -> str:
        """The entity's full ARM id, as backends reference it."""
        return f"{self.service_id}/certificates/{self.certificate_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApimBackend:
    """An APIM backend and the certificate entities it presents (``credentials.certificateIds``)."""

    service_id: str
    backend_id: str
    certificate_ids: tuple[str, ...]
    url: str = ""
    etag: str = ""
    # tls.validateCertificateChain / validateCertificateName (APIM's defaults: true), which the
    # canary follows when it checks the backend's server certificate.
    validate_certificate_chain: bool = True
    validate_certificate_name: bool = True


# --- validation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One thing validation found. ``certificate`` names the certificate it is about."""

    code: FindingCode
    severity: Severity
    message: str
    certificate: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateSummary:
    """What a person needs to recognise a certificate. Thumbprints are upper-case hex."""

    subject: str
    issuer: str
    serial: str
    thumbprint_sha1: str
    thumbprint_sha256: str
    not_before: datetime
    not_after: datetime
    key_type: str  # "RSA" | "EC" | "Ed25519" | ...
    key_size: int | None  # bits (RSA size, EC curve size); None where it means nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationReport:
    """The outcome of validating a bundle: findings, the leaf, and the validated chain."""

    findings: tuple[Finding, ...]
    leaf: CertificateSummary | None
    chain: tuple[CertificateSummary, ...]  # leaf first, trust anchor last (empty if no path)

    @property
    def accepted(self) -> bool:
        """True when no finding is an error."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def codes(self) -> tuple[str, ...]:
        """The finding codes, in order, as plain strings (for audit records)."""
        return tuple(str(f.code) for f in self.findings)


# --- audit ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditTarget:
    """One APIM target a rotation considered: a certificate entity, a backend, or a policy
    document (inbound identities).

    A ``policy`` target also carries its ``scope``, the policy's ARM ``resource_id``, the
    thumbprints ``added`` and ``removed`` (upper case) and ``at``, when the write was made
    (None when nothing was written); ``from_``/``to`` are then the certificate's thumbprints the
    document pinned before and after, comma-separated. These fields are emitted for policy
    targets only, so certificate and backend targets serialise exactly as before.
    """

    service: str  # APIM service name
    kind: TargetKind
    name: str  # entity id, backend id, or the policy's path below the service ("global", ...)
    from_: str | None  # what it referenced before (secret id or certificate entity id)
    to: str | None  # what it references now / would reference
    result: TargetResult
    scope: str | None = None  # policy: global, product, api, operation
    resource_id: str | None = None  # policy: the policy's full ARM id
    added: tuple[str, ...] = ()  # policy: thumbprints added
    removed: tuple[str, ...] = ()  # policy: thumbprints removed
    at: datetime | None = None  # policy: when the write was made

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict; ``from_`` is spelled ``from`` as in the audit record. Policy
        targets add ``scope``, ``resource_id``, ``added``, ``removed`` and ``at``."""
        out: dict[str, object] = {
            "service": self.service,
            "kind": str(self.kind),
            "name": self.name,
            "from": self.from_,
            "to": self.to,
            "result": str(self.result),
        }
        if self.kind is TargetKind.POLICY:
            out["scope"] = self.scope
            out["resource_id"] = self.resource_id
            out["added"] = list(self.added)
            out["removed"] = list(self.removed)
            out["at"] = self.at.isoformat().replace("+00:00", "Z") if self.at else None
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """The canonical audit record of one event (docs/architecture.md, "Audit record")."""

    event: str  # dotted name, e.g. "rotation.applied"
    decision: Decision
    trigger: Trigger
    event_id: str | None = None
    event_type: str | None = None
    topic: str | None = None  # the delivering topic (Event Grid ``topic``, CloudEvents ``source``)
    vault: str | None = None
    certificate: str | None = None
    version: str | None = None
    previous_version: str | None = None
    thumbprint_sha1: str | None = None
    thumbprint_sha256: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    days_left: int | None = None  # expiry alerts: whole days until not_after
    findings: tuple[str, ...] = ()
    targets: tuple[AuditTarget, ...] = ()
    strategy: Strategy | None = None
    dry_run: bool = False
    duration_ms: float | None = None
    correlation_id: str | None = None
    error: str | None = None  # message only, never a traceback
    message: str | None = None  # why (ignored/deferred/alert), for people reading the trail

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict with the audit record's field names (``targets`` entries use ``from``)."""
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "targets":
                value = [t.as_dict() for t in value]
            elif name == "findings":
                value = list(value)
            elif isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            elif isinstance(value, StrEnum):
                value = str(value)
            out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One event to re-drive through Event Grid: its JSON fields (without dead-letter fields) and its schema."""

    location: str
    event_id: str
    schema: str  # "eventgrid" | "cloudevents"
    fields: dict[str, Any]
    event_time: datetime | None
