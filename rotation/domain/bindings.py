"""Where a certificate is bound in APIM: Key Vault secret URLs and the entities/backends using them.

Pure (no I/O, no Azure imports). Secret identifiers are parsed robustly: https only, host compared
case-insensitively with ``:443`` dropped, path ``/secrets/{name}[/{version}]``. Backends reference
entities by full ARM id (compared case-insensitively) or by the short ``/certificates/{id}`` form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from rotation.domain.model import ApimBackend, ApimCertificate

__all__ = [
    "Binding",
    "SecretRef",
    "bound_certificates",
    "discover_bindings",
    "parse_secret_identifier",
    "references",
    "vault_key",
]

_HTTPS_PORT = 443


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretRef:
    """A parsed Key Vault secret URL: normalised vault host, secret name, optional version."""

    vault: str  # lower-case host, ``:port`` only when not 443
    name: str
    version: str | None  # None for a versionless identifier


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """An APIM certificate entity naming the certificate, with the backends that present it."""

    entity: ApimCertificate
    ref: SecretRef
    backends: tuple[ApimBackend, ...] = ()

    @property
    def version(self) -> str | None:
        """The pinned Key Vault version, or None when the entity is versionless."""
        return self.ref.version


def vault_key(url: str) -> str | None:
    """The normalised host of an https URL (lower-case, ``:443`` dropped), or None if not https."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    return host if port in {None, _HTTPS_PORT} else f"{host}:{port}"


def parse_secret_identifier(url: str | None) -> SecretRef | None:
    """Parse ``https://{vault}/secrets/{name}[/{version}]``; None for anything else."""
    if not url:
        return None
    vault = vault_key(url)
    if vault is None:
        return None
    path = urlsplit(url.strip()).path.rstrip("/")
    segments = path.split("/")[1:] if path.startswith("/") else []
    if len(segments) not in {2, 3} or segments[0].lower() != "secrets" or not all(segments):
        return None
    version = segments[2] if len(segments) == 3 else None  # noqa: PLR2004 - /secrets/name/version
    return SecretRef(vault=vault, name=segments[1], version=version)


def _names(ref: SecretRef, vault: str | None, certificate_name: str) -> bool:
    return ref.vault == vault and ref.name.lower() == certificate_name.lower()


def references(certificate_id: str, entity: ApimCertificate) -> bool:
    """Whether a backend's ``certificateIds`` entry names ``entity`` (full or short form)."""
    ref = certificate_id.strip().rstrip("/").lower()
    short = f"/certificates/{entity.certificate_id}".lower()
    return ref in {entity.resource_id.lower(), short}


def _same_service(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def discover_bindings(
    vault_url: str,
    certificate_name: str,
    certificates: Iterable[ApimCertificate],
    backends: Iterable[ApimBackend],
) -> tuple[Binding, ...]:
    """The entities whose secret identifier names vault/certificate, with their backends."""
    vault = vault_key(vault_url)
    all_backends = tuple(backends)
    found: list[Binding] = []
    for entity in certificates:
        ref = parse_secret_identifier(entity.secret_identifier)
        if ref is None or not _names(ref, vault, certificate_name):
            continue
        users = tuple(
            b
            for b in all_backends
            if _same_service(b.service_id, entity.service_id)
            and any(references(cid, entity) for cid in b.certificate_ids)
        )
        found.append(Binding(entity=entity, ref=ref, backends=users))
    found.sort(key=lambda b: (b.entity.service_id.lower(), b.entity.certificate_id.lower()))
    return tuple(found)


def bound_certificates(
    vaults: Sequence[str], certificates: Iterable[ApimCertificate]
) -> tuple[tuple[str, str], ...]:
    """(configured vault URL, certificate name) pairs that some entity references (reconcile)."""
    by_key = {vault_key(v): v for v in vaults}
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for entity in certificates:
        ref = parse_secret_identifier(entity.secret_identifier)
        if ref is None or ref.vault not in by_key:
            continue
        seen.setdefault((ref.vault, ref.name.lower()), (by_key[ref.vault], ref.name))
    return tuple(sorted(seen.values()))
