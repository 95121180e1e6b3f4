"""``ArmApimGateway``: the ``ApimGateway`` port over ``azure-mgmt-apimanagement``.

One ``ApiManagementClient`` per subscription, created on first use. ETags come from the
response headers through the SDK's ``cls`` hook; a 412 is recognised by its status code (the
SDK raises a plain ``HttpResponseError`` for it). Lists follow every ``nextLink``.

Backends: ARM lists carry no ETags, so ``update_backend_certificates`` with an empty ``etag``
reads the backend first (and refuses with ``PreconditionFailedError`` if its certificate ids
moved since they were listed). The PATCH always sends the backend's whole ``credentials``
object with only ``certificateIds`` changed, so header/query/authorization credentials survive
whether the service merges or replaces ``credentials``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import (
    BackendContract,
    BackendCredentialsContract,
    BackendUpdateParameters,
    CertificateContract,
    CertificateCreateOrUpdateParameters,
    KeyVaultContractCreateProperties,
)

from rotation.adapters.errors import translating
from rotation.domain.errors import CertificateNotFoundError, PreconditionFailedError
from rotation.domain.model import ApimBackend, ApimCertificate

__all__ = ["ArmApimGateway"]

_SERVICE = "apim"
_SERVICE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.ApiManagement/service/(?P<name>[^/]+)$",
    re.IGNORECASE,
)


def _with_etag(_pipeline: Any, model: Any, headers: Any) -> tuple[Any, str]:
    return model, str(headers.get("ETag") or "")


def _etagged(operation: Any, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Call an SDK operation with the ``cls`` hook that also returns the ``ETag`` header."""
    result: tuple[Any, str] = operation(*args, cls=_with_etag, **kwargs)
    return result


@dataclass(frozen=True, slots=True)
class _Seen:
    """What we last read of a backend: its ETag (``""`` from a list) and credentials."""

    etag: str
    credentials: BackendCredentialsContract | None


class ArmApimGateway:
    """APIM certificate entities and backends through ARM, with ETags."""

    def __init__(
        self,
        credential: Any,
        *,
        base_url: str = "https://management.azure.com",
        connection_verify: str | bool = True,
        retry_total: int = 3,
        retry_backoff_factor: float = 0.8,
        read_timeout: float = 60.0,
    ) -> None:
        self._credential = credential
        self._base_url = base_url.rstrip("/")
        self._options: dict[str, Any] = {
            "connection_verify": connection_verify,
            "retry_total": retry_total,
            "retry_backoff_factor": retry_backoff_factor,
            "read_timeout": read_timeout,
        }
        self._lock = threading.Lock()
        self._clients: dict[str, ApiManagementClient] = {}
        self._seen: dict[tuple[str, str], _Seen] = {}

    def __repr__(self) -> str:
        return f"ArmApimGateway(base_url={self._base_url!r})"

    def _client(self, service_id: str) -> tuple[ApiManagementClient, str, str]:
        match = _SERVICE_ID.match(service_id.rstrip("/"))
        if match is None:
            raise ValueError(f"not an APIM service ARM id: {service_id!r}")
        with self._lock:
            client = self._clients.get(match["sub"].lower())
            if client is None:
                client = ApiManagementClient(
                    self._credential, match["sub"], base_url=self._base_url, **self._options
                )
                self._clients[match["sub"].lower()] = client
        return client, match["rg"], match["name"]

    # --- certificates -----------------------------------------------------------------------

    def list_certificates(self, service_id: str) -> list[ApimCertificate]:
        """Every certificate entity (all pages); list items carry no ETag.

        Raises:
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        with translating(_SERVICE, "list_certificates", name):
            return [
                _certificate_to_domain(service_id, item, "")
                for item in client.certificate.list_by_service(rg, name)
            ]

    def get_certificate(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """One certificate entity with its ETag.

        Raises:
            CertificateNotFoundError: no such entity.
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        with translating(_SERVICE, "get_certificate", certificate_id):
            model, etag = _etagged(client.certificate.get, rg, name, certificate_id)
        return _certificate_to_domain(service_id, model, etag)

    def put_certificate(
        self,
        service_id: str,
        certificate_id: str,
        *,
        secret_identifier: str,
        identity_client_id: str | None,
        etag: str | None,
    ) -> ApimCertificate:
        """Create (``etag=None``) or update (``If-Match: etag``) a Key Vault-backed entity.

        Raises:
            PreconditionFailedError: the ETag no longer matches.
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        parameters = CertificateCreateOrUpdateParameters(
            key_vault=KeyVaultContractCreateProperties(
                secret_identifier=secret_identifier, identity_client_id=identity_client_id
            )
        )
        with translating(_SERVICE, "put_certificate", certificate_id):
            model, new_etag = _etagged(
                client.certificate.create_or_update,
                rg,
                name,
                certificate_id,
                parameters,
                if_match=etag or None,
            )
        return _certificate_to_domain(service_id, model, new_etag)

    def refresh_certificate(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """Ask APIM to re-fetch the entity's Key Vault secret now (``refreshSecret``).

        Raises:
            CertificateNotFoundError / TransientDependencyError / AuthorizationError /
            DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        with translating(_SERVICE, "refresh_certificate", certificate_id):
            model, etag = _etagged(client.certificate.refresh_secret, rg, name, certificate_id)
        return _certificate_to_domain(service_id, model, etag)

    def delete_certificate(self, service_id: str, certificate_id: str, *, etag: str) -> None:
        """Delete an entity with ``If-Match: etag`` (``*`` when empty); succeeds if already gone.

        Raises:
            PreconditionFailedError: the ETag no longer matches.
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        try:
            with translating(_SERVICE, "delete_certificate", certificate_id):
                client.certificate.delete(rg, name, certificate_id, if_match=etag or "*")
        except CertificateNotFoundError:
            return

    # --- backends ---------------------------------------------------------------------------

    def list_backends(self, service_id: str) -> list[ApimBackend]:
        """Every backend (all pages); list items carry no ETag.

        Raises:
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        with translating(_SERVICE, "list_backends", name):
            items = list(client.backend.list_by_service(rg, name))
        return [self._remember(service_id, item, "") for item in items]

    def get_backend(self, service_id: str, backend_id: str) -> ApimBackend:
        """One backend with its ETag.

        Raises:
            CertificateNotFoundError: no such backend (the port's not-found error).
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        with translating(_SERVICE, "get_backend", backend_id):
            model, etag = _etagged(client.backend.get, rg, name, backend_id)
        return self._remember(service_id, model, etag)

    def update_backend_certificates(
        self, service_id: str, backend_id: str, *, certificate_ids: tuple[str, ...], etag: str
    ) -> ApimBackend:
        """PATCH ``credentials.certificateIds`` with ``If-Match`` (read first when ``etag`` is empty).

        Raises:
            PreconditionFailedError: the ETag no longer matches, or the backend's certificate
                ids changed since they were listed.
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        key = (service_id.lower(), backend_id.lower())
        seen = self._seen.get(key)
        if not etag:
            listed = _ids(seen.credentials) if seen else None
            current = self.get_backend(service_id, backend_id)
            if listed is not None and current.certificate_ids != listed:
                raise PreconditionFailedError(
                    f"apim update_backend_certificates {backend_id!r}: changed since listed",
                    service=_SERVICE,
                    operation="update_backend_certificates",
                    status_code=412,
                )
            etag, seen = current.etag, self._seen.get(key)
        credentials = _replace_ids(seen.credentials if seen else None, certificate_ids)
        client, rg, name = self._client(service_id)
        with translating(_SERVICE, "update_backend_certificates", backend_id):
            model, new_etag = _etagged(
                client.backend.update,
                rg,
                name,
                backend_id,
                if_match=etag,
                parameters=BackendUpdateParameters(credentials=credentials),
            )
        return self._remember(service_id, model, new_etag)

    def _remember(self, service_id: str, model: BackendContract, etag: str) -> ApimBackend:
        backend = _backend_to_domain(service_id, model, etag)
        key = (service_id.lower(), backend.backend_id.lower())
        with self._lock:
            self._seen[key] = _Seen(etag, model.credentials)
        return backend


def _ids(credentials: BackendCredentialsContract | None) -> tuple[str, ...]:
    return tuple(credentials.certificate_ids or ()) if credentials else ()


def _replace_ids(
    credentials: BackendCredentialsContract | None, certificate_ids: tuple[str, ...]
) -> BackendCredentialsContract:
    if credentials is None:
        return BackendCredentialsContract(certificate_ids=list(certificate_ids))
    return BackendCredentialsContract(
        certificate_ids=list(certificate_ids),
        certificate=credentials.certificate,
        query=credentials.query,
        header=credentials.header,
        authorization=credentials.authorization,
    )


def _certificate_to_domain(
    service_id: str, model: CertificateContract, etag: str
) -> ApimCertificate:
    key_vault = model.key_vault
    status = key_vault.last_status if key_vault else None
    return ApimCertificate(
        service_id=service_id,
        certificate_id=model.name or "",
        secret_identifier=key_vault.secret_identifier if key_vault else None,
        identity_client_id=key_vault.identity_client_id if key_vault else None,
        thumbprint=model.thumbprint.upper() if model.thumbprint else None,
        subject=model.subject,
        expiration=model.expiration_date,
        last_status_code=status.code if status else None,
        last_status_message=status.message if status else None,
        etag=etag,
    )


def _backend_to_domain(service_id: str, model: BackendContract, etag: str) -> ApimBackend:
    return ApimBackend(
        service_id=service_id,
        backend_id=model.name or "",
        certificate_ids=_ids(model.credentials),
        url=model.url or "",
        etag=etag,
    )
