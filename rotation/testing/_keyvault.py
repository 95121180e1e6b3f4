"""``FakeCertificateSource``: Key Vault versions and secrets in memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from rotation.domain.errors import (
    CertificateNotFoundError,
    DependencyError,
)
from rotation.domain.model import (
    CertificateVersion,
    SecretMaterial,
)
from rotation.domain.planning import choose_candidate, vault_key
from rotation.testing._certs import PKCS12, summarize_certificate


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

    def get_secret(self, vault_url: str, name: str, version: str) -> SecretMaterial:
        """The stored secret; raises ``CertificateNotFoundError``, or ``DependencyError`` for a
        disabled version (as Key Vault refuses to read it)."""
        self._check("get_secret")
        stored = self._versions.get(self._key(vault_url, name, version))
        if stored is None:
            raise CertificateNotFoundError(f"secret {name!r} version {version!r} not found")
        if not stored.version.enabled:  # Key Vault: 403 SecretDisabled, as the adapter maps it
            raise DependencyError(
                f"keyvault get_secret '{name}/{version}' failed: the secret version is disabled",
                service="keyvault",
                operation="get_secret",
                status_code=403,
            )
        return stored.secret
