"""``FakeApimGateway``: APIM entities and backends in memory, with ETags and injectable faults.

It mirrors ARM as ``rotation.adapters.apim.ArmApimGateway`` sees it: list items carry no ETag
(``etag == ""``), ``get_*`` return the current one, and the compare-and-swap writes
(``put_certificate`` with ``expected_secret``, ``update_backend_certificates``) do what the
adapter does on the wire: one counted read (``get_certificate`` / ``get_backend``), the compare,
then one counted write with ``If-Match`` the ETag read. So ``calls`` counts what the adapter
would send, and an injected conflict (``conflict_on_write``) lands between the read and the write,
where a concurrent writer's 412 happens.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from rotation.domain.errors import (
    CertificateNotFoundError,
    PreconditionFailedError,
    TransientDependencyError,
)
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
)
from rotation.domain.planning import parse_secret_identifier
from rotation.testing._keyvault import FakeCertificateSource


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """One write the fake gateway accepted."""

    op: str  # put_certificate | update_backend_certificates | delete_certificate | refresh_certificate
    service_id: str
    name: str
    value: object = None


@dataclass
class _Fault:
    at_write: int
    error: Exception | None  # None: a concurrent writer (bump the ETag, then 412)
    target: tuple[str, str] | None = field(default=None)


class FakeApimGateway:
    """In-memory APIM. Writes check ETags; entity thumbprints come from ``source``'s versions.

    ``calls`` counts every port method and every read a compare-and-swap makes; ``updates``
    lists the writes that happened."""

    def __init__(self, source: FakeCertificateSource | None = None) -> None:
        self.source = source
        self.certificates: dict[tuple[str, str], ApimCertificate] = {}
        self.backends: dict[tuple[str, str], ApimBackend] = {}
        self.updates: list[Write] = []
        self.calls: Counter[str] = Counter()
        self.keyvault_fetch_fails = False  # APIM cannot fetch the secret: lastStatus Failed
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
            last_status_code="Success" if ok else "Failed",
            last_status_message=None if ok else "secret could not be fetched",
            etag=self._etag(),
        )

    def _fetched(
        self, service_id: str, cid: str, secret: str, identity: str | None
    ) -> ApimCertificate:
        """What a PUT stores, as APIM fetches the secret then: a new entity needs a fetchable
        (existing, enabled) version, else HTTP 400; an existing one whose fetch fails keeps
        presenting what it fetched last, with a failed ``lastStatus``. Without a ``source``
        (no Key Vault modelled) every PUT is stored as seeded."""
        ref = parse_secret_identifier(secret)
        found = None
        if ref is not None and self.source is not None and not self.keyvault_fetch_fails:
            found = self.source.lookup(f"https://{ref.vault}", ref.name, ref.version)
        if self.source is None or (found is not None and found.enabled):
            return self._entity(service_id, cid, secret, identity)
        previous = self.certificates.get((service_id.lower(), cid.lower()))
        if previous is None:
            # Like ArmApimGateway: APIM failing to fetch the secret on a create is retryable (the
            # secret or APIM's access to it may appear), see docs/events.md.
            raise TransientDependencyError(
                f"apim put_certificate {cid!r} failed: HTTP 400 (ValidationError): APIM could "
                "not fetch the Key Vault secret",
                service="apim",
                operation="put_certificate",
                status_code=400,
            )
        return replace(
            previous,
            secret_identifier=secret,
            identity_client_id=identity,
            last_status_code="Failed",
            last_status_message="secret could not be fetched",
            etag=self._etag(),
        )

    def _write(
        self, key: tuple[str, str], etag: str | None, store: Mapping[tuple[str, str], object]
    ) -> None:
        """Apply injected faults, then the ETag precondition (``None``: none; ``""``/``*``: any)."""
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
        if etag and etag != "*" and current is not None and current.etag != etag:  # type: ignore[attr-defined]
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
        """Every entity of the service; like ARM list items, without ETags."""
        self.calls["list_certificates"] += 1
        if "list_certificates" in self.fail:
            raise self.fail["list_certificates"]
        return [
            replace(c, etag="") for k, c in self.certificates.items() if k[0] == service_id.lower()
        ]

    def list_backends(self, service_id: str) -> Iterable[ApimBackend]:
        """Every backend of the service; like ARM list items, without ETags."""
        self.calls["list_backends"] += 1
        return [
            replace(b, etag="") for k, b in self.backends.items() if k[0] == service_id.lower()
        ]

    def get_certificate(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """One entity with its current ETag; raises ``CertificateNotFoundError``."""
        self.calls["get_certificate"] += 1
        found = self.certificates.get((service_id.lower(), certificate_id.lower()))
        if found is None:
            raise CertificateNotFoundError(f"certificate entity {certificate_id!r} not found")
        return found

    def _get_backend(self, service_id: str, backend_id: str) -> ApimBackend:
        """One backend with its current ETag: the read of a compare-and-swap (counted as
        ``get_backend``, the GET the adapter makes)."""
        self.calls["get_backend"] += 1
        found = self.backends.get((service_id.lower(), backend_id.lower()))
        if found is None:
            raise CertificateNotFoundError(f"backend {backend_id!r} not found")
        return found

    def put_certificate(
        self,
        service_id: str,
        certificate_id: str,
        *,
        secret_identifier: str,
        identity_client_id: str | None,
        expected_secret: str | None,
    ) -> ApimCertificate:
        """Create (``expected_secret=None``, unconditional) or compare-and-swap: read the entity,
        412 unless it names ``expected_secret``, write with If-Match; APIM fetches the secret."""
        key = (service_id.lower(), certificate_id.lower())
        if_match: str | None = None
        if expected_secret is not None:
            try:
                current = self.get_certificate(service_id, certificate_id)
            except CertificateNotFoundError:
                raise _moved("put_certificate", certificate_id, gone=True) from None
            if current.secret_identifier != expected_secret:
                raise _moved("put_certificate", certificate_id)
            if_match = current.etag
        self.calls["put_certificate"] += 1
        self._write(key, if_match, self.certificates)
        entity = self._fetched(service_id, certificate_id, secret_identifier, identity_client_id)
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
        self,
        service_id: str,
        backend_id: str,
        *,
        expected_ids: tuple[str, ...],
        certificate_ids: tuple[str, ...],
    ) -> ApimBackend:
        """Compare-and-swap: read the backend, 412 unless it presents ``expected_ids``, then
        PATCH ``credentials.certificateIds`` with If-Match."""
        key = (service_id.lower(), backend_id.lower())
        try:
            current = self._get_backend(service_id, backend_id)
        except CertificateNotFoundError:
            raise _moved("update_backend_certificates", backend_id, gone=True) from None
        if current.certificate_ids != tuple(expected_ids):
            raise _moved("update_backend_certificates", backend_id)
        self.calls["update_backend_certificates"] += 1
        self._write(key, current.etag, self.backends)
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

    def refresh_certificate(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """``refreshSecret``: APIM re-fetches the entity's secret (a versionless one picks up the
        newest enabled version); the ETag moves. No precondition, as on the wire."""
        self.calls["refresh_certificate"] += 1
        key = (service_id.lower(), certificate_id.lower())
        current = self.certificates.get(key)
        if current is None:
            raise CertificateNotFoundError(f"certificate entity {certificate_id!r} not found")
        self._write(key, None, self.certificates)
        entity = self._entity(
            service_id, certificate_id, current.secret_identifier, current.identity_client_id
        )
        self.certificates[key] = entity
        self.updates.append(
            Write(
                op="refresh_certificate",
                service_id=service_id,
                name=certificate_id,
                value=current.secret_identifier,
            )
        )
        return entity

    def poll(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """APIM's own Key Vault poll of one entity (uncounted, no write recorded): what
        ``follow`` keeps as a backstop, and what may run before certrotate sees an event."""
        key = (service_id.lower(), certificate_id.lower())
        current = self.certificates[key]
        entity = self._entity(
            service_id, certificate_id, current.secret_identifier, current.identity_client_id
        )
        self.certificates[key] = entity
        return entity

    def delete_certificate(self, service_id: str, certificate_id: str, *, etag: str) -> None:
        """Delete with If-Match (``*`` when ``etag`` is empty, as listed); succeeds if already gone."""
        self.calls["delete_certificate"] += 1
        key = (service_id.lower(), certificate_id.lower())
        self._write(key, etag, self.certificates)
        if self.certificates.pop(key, None) is not None:
            self.updates.append(
                Write(op="delete_certificate", service_id=service_id, name=certificate_id)
            )


def _moved(operation: str, target: str, *, gone: bool = False) -> PreconditionFailedError:
    """A compare-and-swap found the target not as the plan saw it (the adapter's message)."""
    what = "gone" if gone else "changed"
    return PreconditionFailedError(
        f"apim {operation} {target!r}: {what} since it was listed",
        service="apim",
        operation=operation,
        status_code=412,
    )
