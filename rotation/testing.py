"""Fakes with observable state for testing code built on the rotation ports (like ``structlog.testing``).

- ``FrozenClock(at)``: a ``Clock`` that only moves when told (``advance``).
- ``FakeCertificateSource``: versions and secrets added with ``add_version``; ``calls`` per method.
- ``FakeApimGateway``: entities and backends with ETags that change on every write; ``updates``
  lists the writes, ``calls`` counts every method; inject a 412 (a concurrent writer) or any error
  on the Nth write, or a failing ``list_certificates`` through ``fail``; entity thumbprints are computed from the source's versions, as APIM does.
- ``MemoryAuditSink``: ``records`` in write order.
- ``MemoryLock``: a threading ``RotationLock`` per certificate; ``held``, ``acquisitions``,
  ``contended`` (set when a ``hold`` finds the lock taken) and ``fail`` (raise on ``hold``).
- ``FakeValidator``: parses the bundle for its leaf and returns the findings you configured.

Nothing here imports ``devstack``: callers pass bytes and ``cryptography`` objects.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from rotation.domain.errors import (
    CertificateNotFoundError,
    PreconditionFailedError,
    RotationError,
    TransientDependencyError,
)
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    AuditRecord,
    CertificateSummary,
    CertificateVersion,
    Finding,
    FindingCode,
    SecretMaterial,
    Severity,
    ValidationReport,
)
from rotation.domain.planning import choose_candidate, parse_secret_identifier, vault_key

__all__ = [
    "FakeApimGateway",
    "FakeCertificateSource",
    "FakeValidator",
    "FrozenClock",
    "MemoryAuditSink",
    "MemoryLock",
    "summarize_certificate",
]

PKCS12 = "application/x-pkcs12"


class FrozenClock:
    """A clock that returns ``at`` until ``advance`` moves it."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs a tz-aware datetime")
        self.at = at

    def now(self) -> datetime:
        """The frozen instant."""
        return self.at

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or ``timedelta(**kwargs)``; returns the new instant."""
        self.at += delta if delta is not None else timedelta(**kwargs)
        return self.at


def summarize_certificate(cert: x509.Certificate) -> CertificateSummary:
    """The ``CertificateSummary`` of a certificate (thumbprints upper-case hex)."""
    key = cert.public_key()
    size = key.key_size if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else None
    kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "EC" if size else type(key).__name__
    return CertificateSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "X"),
        thumbprint_sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - APIM's id
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=kind,
        key_size=size,
    )


@dataclass
class _Stored:
    version: CertificateVersion
    secret: SecretMaterial


class FakeCertificateSource:
    """An in-memory Key Vault. ``calls`` counts each port method; ``fail`` injects errors."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str, str], _Stored] = {}
        self.calls: Counter[str] = Counter()
        self.fail: dict[str, Exception] = {}  # method name -> error raised on every call

    def add_version(
        self,
        vault_url: str,
        name: str,
        version: str,
        *,
        created: datetime,
        secret: bytes,
        leaf: x509.Certificate | None = None,
        content_type: str = PKCS12,
        enabled: bool = True,
    ) -> CertificateVersion:
        """Store a version; ``leaf`` fills not_before/expires/thumbprint as Key Vault would."""
        summary = summarize_certificate(leaf) if leaf is not None else None
        props = CertificateVersion(
            vault_url=vault_url.rstrip("/"),
            name=name,
            version=version,
            enabled=enabled,
            created=created,
            not_before=summary.not_before if summary else None,
            expires=summary.not_after if summary else None,
            thumbprint_sha1=summary.thumbprint_sha1 if summary else None,
        )
        material = SecretMaterial(
            content_type=content_type, value=secret, secret_id=props.secret_id
        )
        self._versions[self._key(vault_url, name, version)] = _Stored(props, material)
        return props

    def set_enabled(self, vault_url: str, name: str, version: str, *, enabled: bool) -> None:
        """Enable or disable a stored version."""
        stored = self._versions[self._key(vault_url, name, version)]
        stored.version = replace(stored.version, enabled=enabled)

    @staticmethod
    def _key(vault_url: str, name: str, version: str) -> tuple[str, str, str]:
        return (vault_key(vault_url) or vault_url, name.lower(), version.lower())

    def _check(self, method: str) -> None:
        self.calls[method] += 1
        if method in self.fail:
            raise self.fail[method]

    def lookup(self, vault_url: str, name: str, version: str | None) -> CertificateVersion | None:
        """Uncounted lookup (the gateway uses it); ``version=None`` means newest enabled."""
        if version is None:
            vk, nk = vault_key(vault_url) or vault_url, name.lower()
            mine = [s.version for k, s in self._versions.items() if k[:2] == (vk, nk)]
            return choose_candidate(mine)
        stored = self._versions.get(self._key(vault_url, name, version))
        return stored.version if stored else None

    def list_certificate_versions(self, vault_url: str, name: str) -> Iterable[CertificateVersion]:
        """Every version, newest insertion FIRST (callers must not rely on list order)."""
        self._check("list_certificate_versions")
        vk, nk = vault_key(vault_url) or vault_url, name.lower()
        found = [s.version for k, s in self._versions.items() if k[:2] == (vk, nk)]
        if not found:
            raise CertificateNotFoundError(f"certificate {name!r} not found")
        return list(reversed(found))

    def get_certificate_version(
        self, vault_url: str, name: str, version: str
    ) -> CertificateVersion:
        """One version's properties; raises ``CertificateNotFoundError``."""
        self._check("get_certificate_version")
        found = self.lookup(vault_url, name, version)
        if found is None:
            raise CertificateNotFoundError(f"certificate {name!r} version {version!r} not found")
        return found

    def get_secret(self, vault_url: str, name: str, version: str) -> SecretMaterial:
        """The stored secret; raises ``CertificateNotFoundError``."""
        self._check("get_secret")
        stored = self._versions.get(self._key(vault_url, name, version))
        if stored is None:
            raise CertificateNotFoundError(f"secret {name!r} version {version!r} not found")
        return stored.secret


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """One write the fake gateway accepted."""

    op: str  # put_certificate | update_backend_certificates | delete_certificate
    service_id: str
    name: str
    value: object = None


@dataclass
class _Fault:
    at_write: int
    error: Exception | None  # None: a concurrent writer (bump the ETag, then 412)
    target: tuple[str, str] | None = field(default=None)


class FakeApimGateway:
    """In-memory APIM. Writes check ETags; entity thumbprints come from ``source``'s versions."""

    def __init__(self, source: FakeCertificateSource | None = None) -> None:
        self.source = source
        self.certificates: dict[tuple[str, str], ApimCertificate] = {}
        self.backends: dict[tuple[str, str], ApimBackend] = {}
        self.updates: list[Write] = []
        self.calls: Counter[str] = Counter()
        self.keyvault_fetch_fails = False  # APIM cannot fetch the secret: lastStatus Failure
        self.fail: dict[str, Exception] = {}  # read method name -> error raised on every call
        self._etags = itertools.count(1)
        self._writes = 0
        self._faults: list[_Fault] = []

    # --- seeding and fault injection --------------------------------------------------------

    def add_certificate(
        self,
        service_id: str,
        certificate_id: str,
        *,
        secret_identifier: str | None,
        identity_client_id: str | None = None,
    ) -> ApimCertificate:
        """Seed an entity (no call counted, no write recorded)."""
        entity = self._entity(service_id, certificate_id, secret_identifier, identity_client_id)
        self.certificates[(service_id.lower(), certificate_id.lower())] = entity
        return entity

    def add_backend(
        self, service_id: str, backend_id: str, certificate_ids: Iterable[str]
    ) -> ApimBackend:
        """Seed a backend presenting ``certificate_ids`` (full or short ids, stored as given)."""
        backend = ApimBackend(
            service_id=service_id,
            backend_id=backend_id,
            certificate_ids=tuple(certificate_ids),
            url=f"https://{backend_id}.example.test",
            etag=self._etag(),
        )
        self.backends[(service_id.lower(), backend_id.lower())] = backend
        return backend

    def conflict_on_write(self, n: int = 1) -> None:
        """On the Nth write from now, a concurrent writer changes the target first: 412."""
        self._faults.append(_Fault(at_write=self._writes + n, error=None))

    def fail_on_write(self, n: int, error: Exception) -> None:
        """Raise ``error`` on the Nth write from now (the write does not happen)."""
        self._faults.append(_Fault(at_write=self._writes + n, error=error))

    def entity(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """Uncounted read of one entity (for assertions)."""
        return self.certificates[(service_id.lower(), certificate_id.lower())]

    def backend(self, service_id: str, backend_id: str) -> ApimBackend:
        """Uncounted read of one backend (for assertions)."""
        return self.backends[(service_id.lower(), backend_id.lower())]

    def _etag(self) -> str:
        return f'"etag-{next(self._etags)}"'

    def _entity(
        self, service_id: str, cid: str, secret: str | None, identity: str | None
    ) -> ApimCertificate:
        ref = parse_secret_identifier(secret)
        found = None
        if ref is not None and self.source is not None:
            found = self.source.lookup(f"https://{ref.vault}", ref.name, ref.version)
        ok = found is not None and not self.keyvault_fetch_fails
        return ApimCertificate(
            service_id=service_id,
            certificate_id=cid,
            secret_identifier=secret,
            identity_client_id=identity,
            thumbprint=found.thumbprint_sha1 if ok and found else None,
            expiration=found.expires if ok and found else None,
            last_status_code="Success" if ok else "Failure",
            last_status_message=None if ok else "secret could not be fetched",
            etag=self._etag(),
        )

    def _write(
        self, key: tuple[str, str], etag: str | None, store: Mapping[tuple[str, str], object]
    ) -> None:
        """Apply injected faults, then the ETag precondition."""
        self._writes += 1
        for fault in [f for f in self._faults if f.at_write == self._writes]:
            self._faults.remove(fault)
            if fault.error is not None:
                raise fault.error
            self._bump(key)
            raise PreconditionFailedError(
                "412 precondition failed", service="apim", operation="write", status_code=412
            )
        current = store.get(key)
        if etag is not None and etag != "*" and current is not None and current.etag != etag:  # type: ignore[attr-defined]
            raise PreconditionFailedError(
                "412 precondition failed", service="apim", operation="write", status_code=412
            )

    def _bump(self, key: tuple[str, str]) -> None:
        if key in self.certificates:
            self.certificates[key] = replace(self.certificates[key], etag=self._etag())
        if key in self.backends:
            self.backends[key] = replace(self.backends[key], etag=self._etag())

    # --- the ApimGateway port ----------------------------------------------------------------

    def list_certificates(self, service_id: str) -> Iterable[ApimCertificate]:
        """Every entity of the service."""
        self.calls["list_certificates"] += 1
        if "list_certificates" in self.fail:
            raise self.fail["list_certificates"]
        return [c for k, c in self.certificates.items() if k[0] == service_id.lower()]

    def list_backends(self, service_id: str) -> Iterable[ApimBackend]:
        """Every backend of the service."""
        self.calls["list_backends"] += 1
        return [b for k, b in self.backends.items() if k[0] == service_id.lower()]

    def get_certificate(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """One entity; raises ``CertificateNotFoundError``."""
        self.calls["get_certificate"] += 1
        found = self.certificates.get((service_id.lower(), certificate_id.lower()))
        if found is None:
            raise CertificateNotFoundError(f"certificate entity {certificate_id!r} not found")
        return found

    def put_certificate(
        self,
        service_id: str,
        certificate_id: str,
        *,
        secret_identifier: str,
        identity_client_id: str | None,
        etag: str | None,
    ) -> ApimCertificate:
        """Create or update (If-Match ``etag``); APIM fetches the secret at once."""
        self.calls["put_certificate"] += 1
        key = (service_id.lower(), certificate_id.lower())
        self._write(key, etag, self.certificates)
        entity = self._entity(service_id, certificate_id, secret_identifier, identity_client_id)
        self.certificates[key] = entity
        self.updates.append(
            Write(
                op="put_certificate",
                service_id=service_id,
                name=certificate_id,
                value=secret_identifier,
            )
        )
        return entity

    def update_backend_certificates(
        self, service_id: str, backend_id: str, *, certificate_ids: tuple[str, ...], etag: str
    ) -> ApimBackend:
        """PATCH ``credentials.certificateIds`` with If-Match."""
        self.calls["update_backend_certificates"] += 1
        key = (service_id.lower(), backend_id.lower())
        self._write(key, etag, self.backends)
        if key not in self.backends:
            raise CertificateNotFoundError(f"backend {backend_id!r} not found")
        updated = replace(self.backends[key], certificate_ids=certificate_ids, etag=self._etag())
        self.backends[key] = updated
        self.updates.append(
            Write(
                op="update_backend_certificates",
                service_id=service_id,
                name=backend_id,
                value=certificate_ids,
            )
        )
        return updated

    def delete_certificate(self, service_id: str, certificate_id: str, *, etag: str) -> None:
        """Delete with If-Match; succeeds if already gone."""
        self.calls["delete_certificate"] += 1
        key = (service_id.lower(), certificate_id.lower())
        self._write(key, etag, self.certificates)
        if self.certificates.pop(key, None) is not None:
            self.updates.append(
                Write(op="delete_certificate", service_id=service_id, name=certificate_id)
            )


class MemoryLock:
    """A ``RotationLock`` over ``threading.Lock``s, one per (vault host, certificate), lower-cased.

    ``held`` is the set of keys held now, ``acquisitions`` every key in acquisition order,
    ``contended`` is set once a ``hold`` finds its key taken (so tests order threads on it);
    ``fail`` makes every ``hold`` raise it. A ``hold`` that cannot acquire within
    ``wait_seconds`` raises ``TransientDependencyError``, as the blob lease does.
    """

    def __init__(self, *, wait_seconds: float = 5.0) -> None:
        self.wait_seconds = wait_seconds
        self.held: set[tuple[str, str]] = set()
        self.acquisitions: list[tuple[str, str]] = []
        self.contended = threading.Event()
        self.fail: RotationError | None = None
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    @contextmanager
    def hold(self, vault_url: str, certificate: str) -> Iterator[None]:
        """Hold the certificate's lock for the block.

        Raises:
            RotationError: ``fail``, when set.
            TransientDependencyError: not acquired within ``wait_seconds``.
        """
        if self.fail is not None:
            raise self.fail
        key = (vault_key(vault_url) or vault_url.lower(), certificate.lower())
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=False):
            self.contended.set()
            if not lock.acquire(timeout=self.wait_seconds):
                raise TransientDependencyError(
                    f"lock for {certificate!r} not acquired within {self.wait_seconds:g} s",
                    service="memory-lock", operation="acquire",
                )  # fmt: skip
        with self._guard:
            self.held.add(key)
            self.acquisitions.append(key)
        try:
            yield
        finally:
            with self._guard:
                self.held.discard(key)
            lock.release()


class MemoryAuditSink:
    """Keeps every record in ``records``."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> None:
        """Append the record."""
        self.records.append(record)

    @property
    def events(self) -> list[str]:
        """The ``event`` names, in order."""
        return [r.event for r in self.records]


class FakeValidator:
    """Parses the bundle for its leaf; ``findings`` maps a leaf SHA-1 to the findings to report.

    Reports ``format.unreadable`` for an unparseable bundle and ``key.missing`` when
    ``require_key`` and the bundle has no private key. ``calls`` records (thumbprint, at,
    expected_identity) for each call.
    """

    def __init__(
        self,
        findings: Mapping[str, tuple[Finding, ...]] | None = None,
        *,
        require_key: bool = True,
    ) -> None:
        self.findings = dict(findings or {})
        self.require_key = require_key
        self.calls: list[tuple[str | None, datetime, tuple[str, str] | None]] = []

    def validate(
        self,
        material: SecretMaterial,
        *,
        at: datetime,
        expected_identity: tuple[str, str] | None = None,
    ) -> ValidationReport:
        """The configured findings for the bundle's leaf."""
        leaf, has_key = _parse(material)
        summary = summarize_certificate(leaf) if leaf is not None else None
        self.calls.append((summary.thumbprint_sha1 if summary else None, at, expected_identity))
        if summary is None:
            bad = Finding(
                code=FindingCode.FORMAT_UNREADABLE,
                severity=Severity.ERROR,
                message="unreadable bundle",
            )
            return ValidationReport(findings=(bad,), leaf=None, chain=())
        found = list(self.findings.get(summary.thumbprint_sha1, ()))
        if self.require_key and not has_key:
            found.append(
                Finding(
                    code=FindingCode.KEY_MISSING, severity=Severity.ERROR, message="no private key"
                )
            )
        if expected_identity and expected_identity != (summary.subject, summary.issuer):
            found.append(
                Finding(
                    code=FindingCode.IDENTITY_CHANGED,
                    severity=Severity.ERROR,
                    message="identity changed",
                )
            )
        return ValidationReport(findings=tuple(found), leaf=summary, chain=(summary,))


def _parse(material: SecretMaterial) -> tuple[x509.Certificate | None, bool]:
    if material.content_type == PKCS12:
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(material.value, None)
        except ValueError:
            return None, False
        return cert, key is not None
    try:
        certs = x509.load_pem_x509_certificates(material.value)
    except ValueError:
        return None, False
    return certs[0], b"PRIVATE KEY-----" in material.value
