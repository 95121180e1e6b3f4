"""``ArmApimGateway``: the ``ApimGateway`` port over ``azure-mgmt-apimanagement``.

One ``ApiManagementClient`` per subscription, created on first use. ETags come from the
response headers through the SDK's ``cls`` hook; a 412 is recognised by its status code (the
SDK raises a plain ``HttpResponseError`` for it). Lists follow every ``nextLink``.

Conditional updates are compare-and-swaps, stateless: ARM list items carry no ETag (wire
reference E.4: it is a header of GET/HEAD/PUT/PATCH responses), so ``put_certificate`` (update
form) and ``update_backend_certificates`` each GET the target, compare it with what the caller's
plan saw (the entity's ``secretIdentifier``, the backend's ``certificateIds``), refuse with
``PreconditionFailedError`` when it moved or is gone, and then PUT/PATCH with ``If-Match`` the
ETag of that GET (a write in between is a genuine 412). The adapter remembers nothing about
earlier lists or reads. The backend PATCH sends the whole ``credentials`` object of that GET with
only ``certificateIds`` changed, so header/query/authorization credentials survive whether the
service merges or replaces ``credentials``.

Classified by what a retry can change (docs/events.md, "Failures and retries"): a 400 to a
Key Vault-backed *create* that says APIM could not fetch the secret (its identity, the vault's
access policy or the vault itself) is retryable, as the same fault is under ``pin``; a connection
reset before the backend PATCH's response (the SDK never retries PATCH) is retried once, under
the same ``If-Match``: if the first PATCH landed, the second gets a 412 and the run re-plans.
"""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError
from azure.mgmt.apimanagement.models import (
    BackendContract,
    BackendCredentialsContract,
    BackendUpdateParameters,
    CertificateContract,
    CertificateCreateOrUpdateParameters,
    KeyVaultContractCreateProperties,
)

from rotation.adapters.apim_arm import ArmApimClients, etagged, listing, moved, read_for_swap
from rotation.adapters.errors import APIM, response_lost, translating
from rotation.domain.errors import (
    CertificateNotFoundError,
    DependencyError,
    TransientDependencyError,
)
from rotation.domain.model import ApimBackend, ApimCertificate

__all__ = ["ArmApimGateway"]

_SERVICE = APIM.name


class ArmApimGateway(ArmApimClients):
    """APIM certificate entities and backends through ARM, with ETags (settings and client
    cache: ``ArmApimClients``)."""

    # --- certificates -----------------------------------------------------------------------

    def list_certificates(self, service_id: str) -> list[ApimCertificate]:
        """Every certificate entity (all pages); list items carry no ETag.

        Raises:
            ConfigError: the service does not exist (a mistyped ``ROTATION_APIM_SERVICES``).
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        with listing("list_certificates", service_id, name):
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
        with translating(APIM, "get_certificate", certificate_id):
            model, etag = etagged(client.certificate.get, rg, name, certificate_id)
        return _certificate_to_domain(service_id, model, etag)

    def put_certificate(
        self,
        service_id: str,
        certificate_id: str,
        *,
        secret_identifier: str,
        identity_client_id: str | None,
        expected_secret: str | None,
    ) -> ApimCertificate:
        """Create (``expected_secret=None``: unconditional PUT) or compare-and-swap an entity.

        The update form GETs the entity, refuses unless its ``secretIdentifier`` still equals
        ``expected_secret``, then PUTs with ``If-Match`` the ETag of that GET.

        Raises:
            PreconditionFailedError: the entity is gone or names another secret, or its ETag
                moved between the GET and the PUT (412).
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        if_match: str | None = None
        if expected_secret is not None:
            entity: CertificateContract
            entity, if_match = read_for_swap(
                "put_certificate", certificate_id, client.certificate.get, rg, name, certificate_id
            )
            if entity.key_vault is None or entity.key_vault.secret_identifier != expected_secret:
                raise moved("put_certificate", certificate_id)
        parameters = CertificateCreateOrUpdateParameters(
            key_vault=KeyVaultContractCreateProperties(
                secret_identifier=secret_identifier, identity_client_id=identity_client_id
            )
        )
        try:
            with translating(APIM, "put_certificate", certificate_id):
                model, new_etag = etagged(
                    client.certificate.create_or_update,
                    rg,
                    name,
                    certificate_id,
                    parameters,
                    if_match=if_match,
                )
        except DependencyError as exc:
            if if_match is None and key_vault_fetch_failed(exc.__cause__):
                raise TransientDependencyError(
                    f"{exc}: APIM could not fetch the Key Vault secret",
                    service=_SERVICE,
                    operation="put_certificate",
                    status_code=exc.status_code,
                ) from exc.__cause__
            raise
        return _certificate_to_domain(service_id, model, new_etag)

    def refresh_certificate(self, service_id: str, certificate_id: str) -> ApimCertificate:
        """Ask APIM to re-fetch the entity's Key Vault secret now (``refreshSecret``).

        Raises:
            CertificateNotFoundError / TransientDependencyError / AuthorizationError /
            DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        with translating(APIM, "refresh_certificate", certificate_id):
            model, etag = etagged(client.certificate.refresh_secret, rg, name, certificate_id)
        return _certificate_to_domain(service_id, model, etag)

    def delete_certificate(self, service_id: str, certificate_id: str, *, etag: str) -> None:
        """Delete an entity with ``If-Match: etag`` (``*`` when empty); succeeds if already gone.

        Raises:
            PreconditionFailedError: the ETag no longer matches.
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        try:
            with translating(APIM, "delete_certificate", certificate_id):
                client.certificate.delete(rg, name, certificate_id, if_match=etag or "*")
        except CertificateNotFoundError:
            return

    # --- backends ---------------------------------------------------------------------------

    def list_backends(self, service_id: str) -> list[ApimBackend]:
        """Every backend (all pages); list items carry no ETag.

        Raises:
            ConfigError: the service does not exist (a mistyped ``ROTATION_APIM_SERVICES``).
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        with listing("list_backends", service_id, name):
            return [
                _backend_to_domain(service_id, item, "")
                for item in client.backend.list_by_service(rg, name)
            ]

    def update_backend_certificates(
        self,
        service_id: str,
        backend_id: str,
        *,
        expected_ids: tuple[str, ...],
        certificate_ids: tuple[str, ...],
    ) -> ApimBackend:
        """Compare-and-swap ``credentials.certificateIds``: GET, compare, PATCH with If-Match.

        Refuses unless the backend's certificate ids still equal ``expected_ids``; the PATCH
        sends the ``credentials`` of that GET with only ``certificateIds`` replaced.

        Raises:
            PreconditionFailedError: the backend is gone or its certificate ids moved, or its
                ETag moved between the GET and the PATCH (412).
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        backend: BackendContract
        backend, etag = read_for_swap(
            "update_backend_certificates", backend_id, client.backend.get, rg, name, backend_id
        )
        if _ids(backend.credentials) != tuple(expected_ids):
            raise moved("update_backend_certificates", backend_id)
        credentials = _replace_ids(backend.credentials, certificate_ids)
        for attempt in (1, 2):
            try:
                with translating(APIM, "update_backend_certificates", backend_id):
                    model, new_etag = etagged(
                        client.backend.update,
                        rg,
                        name,
                        backend_id,
                        if_match=etag,
                        parameters=BackendUpdateParameters(credentials=credentials),
                    )
                break
            except TransientDependencyError as exc:
                # No response: the PATCH may or may not have landed. Once more under the same
                # If-Match is safe (a landed first PATCH turns it into a 412).
                if attempt == 2 or not response_lost(exc):  # noqa: PLR2004
                    raise
        return _backend_to_domain(service_id, model, new_etag)


_BAD_REQUEST = 400
_KEY_VAULT_WORDS = ("keyvault", "key vault", "identityclientid", "managed identity")


def key_vault_fetch_failed(exc: BaseException | None) -> bool:
    """True for ARM's 400 to a Key Vault-backed certificate PUT saying APIM could not fetch the
    secret (the error, or one of its details, names Key Vault or the managed identity).

    Only read to classify: the text is never copied into a message.
    """
    if not isinstance(exc, HttpResponseError) or exc.status_code != _BAD_REQUEST:
        return False
    error = getattr(exc, "error", None)
    parts = [getattr(exc, "message", None), error and error.message, error and error.target]
    for detail in (getattr(error, "details", None) or []) if error else []:
        parts += [getattr(detail, "message", None), getattr(detail, "target", None)]
    text = " ".join(p for p in parts if isinstance(p, str)).lower()
    return any(word in text for word in _KEY_VAULT_WORDS)


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
        validate_certificate_chain=model.tls is None
        or model.tls.validate_certificate_chain is not False,
        validate_certificate_name=model.tls is None
        or model.tls.validate_certificate_name is not False,
    )
