"""``KeyVaultCertificateSource``: the ``CertificateSource`` port over the Key Vault SDKs.

One ``CertificateClient``/``SecretClient`` pair per vault URL, created on first use and cached.
SDK models become domain objects in the private ``_to_domain`` functions; every SDK failure
leaves as a domain error (``rotation.adapters.errors``).
"""

from __future__ import annotations

import base64
import binascii
import threading
from datetime import UTC, datetime
from typing import Any

from azure.keyvault.certificates import CertificateClient, CertificateProperties
from azure.keyvault.secrets import KeyVaultSecret, SecretClient

from rotation.adapters.errors import KEY_VAULT, translating
from rotation.domain.errors import DependencyError
from rotation.domain.model import CertificateVersion, SecretMaterial

__all__ = ["KeyVaultCertificateSource"]

_SERVICE = KEY_VAULT.name
_PKCS12 = "application/x-pkcs12"
_PEM = "application/x-pem-file"
_NO_DATE = datetime.min.replace(tzinfo=UTC)


class KeyVaultCertificateSource:
    """Key Vault certificates and their secrets through ``azure-keyvault-certificates``/``-secrets``.

    ``connection_verify`` is a CA bundle path (the devstack's ``ca.pem``) or a bool;
    ``verify_challenge_resource=False`` is only for the devstack (its host is not a vault host).
    """

    def __init__(
        self,
        credential: Any,
        *,
        connection_verify: str | bool = True,
        verify_challenge_resource: bool = True,
        retry_total: int = 3,
        retry_backoff_factor: float = 0.8,
        read_timeout: float = 60.0,
    ) -> None:
        self._credential = credential
        self._options: dict[str, Any] = {
            "connection_verify": connection_verify,
            "verify_challenge_resource": verify_challenge_resource,
            "retry_total": retry_total,
            "retry_backoff_factor": retry_backoff_factor,
            "read_timeout": read_timeout,
        }
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[CertificateClient, SecretClient]] = {}

    def __repr__(self) -> str:
        return f"KeyVaultCertificateSource(vaults={sorted(self._clients)})"

    def _pair(self, vault_url: str) -> tuple[CertificateClient, SecretClient]:
        key = vault_url.rstrip("/").lower()
        with self._lock:
            pair = self._clients.get(key)
            if pair is None:
                pair = (
                    CertificateClient(key, self._credential, **self._options),
                    SecretClient(key, self._credential, **self._options),
                )
                self._clients[key] = pair
            return pair

    def list_certificate_versions(self, vault_url: str, name: str) -> list[CertificateVersion]:
        """Every version of ``name`` (all pages), in the service's order.

        Raises:
            CertificateNotFoundError / TransientDependencyError / AuthorizationError /
            DependencyError: as the ``CertificateSource`` port documents.
        """
        certificates, _ = self._pair(vault_url)
        with translating(KEY_VAULT, "list_certificate_versions", name):
            pages = certificates.list_properties_of_certificate_versions(name)
            return [_to_domain(vault_url, item) for item in pages]

    def get_secret(self, vault_url: str, name: str, version: str) -> SecretMaterial:
        """The certificate's secret: PKCS#12 DER bytes or PEM text bytes.

        Raises:
            CertificateNotFoundError: the secret or version does not exist.
            DependencyError: the secret version is disabled or its value is unreadable.
            TransientDependencyError / AuthorizationError: see the port.
        """
        _, secrets = self._pair(vault_url)
        with translating(KEY_VAULT, "get_secret", f"{name}/{version}"):
            secret = secrets.get_secret(name, version)
        return _secret_to_domain(secret, name)


def _to_domain(vault_url: str, properties: CertificateProperties) -> CertificateVersion:
    thumbprint = properties.x509_thumbprint
    return CertificateVersion(
        vault_url=vault_url.rstrip("/"),
        name=properties.name or "",
        version=properties.version or "",
        enabled=bool(properties.enabled),
        created=properties.created_on or _NO_DATE,
        not_before=properties.not_before,
        expires=properties.expires_on,
        thumbprint_sha1=thumbprint.hex().upper() if thumbprint else None,
    )


def _secret_to_domain(secret: KeyVaultSecret, name: str) -> SecretMaterial:
    value = secret.value or ""
    content_type = secret.properties.content_type or ""
    if content_type != _PEM and not value.lstrip().startswith("-----BEGIN"):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise DependencyError(
                f"keyvault get_secret {name!r}: the PKCS#12 value is not base64",
                service=_SERVICE,
                operation="get_secret",
            ) from None
        return SecretMaterial(content_type=_PKCS12, value=raw, secret_id=secret.id or "")
    return SecretMaterial(content_type=_PEM, value=value.encode(), secret_id=secret.id or "")
