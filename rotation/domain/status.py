"""The health of each APIM binding, as ``certrotate status`` shows it (docs/operations.md).

Pure: a binding, its certificate's versions, "now" and the alert threshold in; one
``BindingStatus`` out. A binding needs attention when it is out of sync (it does not present the
newest enabled Key Vault version) or what it presents expires within ``ROTATION_ALERT_DAYS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from rotation.domain.bindings import Binding
from rotation.domain.expiry import days_left
from rotation.domain.model import CertificateVersion
from rotation.domain.planning import choose_candidate

__all__ = ["BindingStatus", "binding_status", "needs_attention", "with_last_decisions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingStatus:
    """One row of ``certrotate status``."""

    service: str  # APIM service name
    entity: str  # APIM certificate entity id
    backends: tuple[str, ...]  # backends presenting the entity
    vault: str
    certificate: str
    version: str | None  # the Key Vault version in use (None: unknown)
    versionless: bool  # the entity names the secret without a version
    thumbprint: str | None  # what APIM presents (SHA-1, upper-case hex)
    not_after: datetime | None
    days_left: int | None
    newest: str | None  # the newest enabled Key Vault version
    in_sync: bool
    expiring: bool  # expires within the alert threshold (or has expired)
    last_decision: str | None = None  # from the durable trail, when configured

    @property
    def healthy(self) -> bool:
        """In sync and not expiring."""
        return self.in_sync and not self.expiring

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (UTC ISO ``not_after``)."""
        out: dict[str, object] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["backends"] = list(self.backends)
        if self.not_after is not None:
            out["not_after"] = self.not_after.isoformat().replace("+00:00", "Z")
        out["healthy"] = self.healthy
        return out


def _in_use(binding: Binding, versions: Sequence[CertificateVersion]) -> CertificateVersion | None:
    """The version the entity presents: the pinned one, or for a versionless entity the one
    whose thumbprint APIM reports."""
    if binding.version is not None:
        wanted = binding.version.lower()
        return next((v for v in versions if v.version.lower() == wanted), None)
    thumb = (binding.entity.thumbprint or "").upper()
    return next(
        (v for v in versions if thumb and (v.thumbprint_sha1 or "").upper() == thumb), None
    )


def binding_status(
    binding: Binding,
    versions: Iterable[CertificateVersion],
    *,
    vault: str,
    now: datetime,
    alert_days: int,
) -> BindingStatus:
    """The status of one binding of certificate ``binding.ref.name`` in ``vault``."""
    all_versions = tuple(versions)
    newest = choose_candidate(all_versions)
    shown = _in_use(binding, all_versions)
    entity = binding.entity
    not_after = shown.expires if shown and shown.expires else entity.expiration
    left = days_left(not_after, now) if not_after is not None else None
    return BindingStatus(
        service=entity.service_id.rstrip("/").rsplit("/", 1)[-1],
        entity=entity.certificate_id,
        backends=tuple(sorted(b.backend_id for b in binding.backends)),
        vault=vault,
        certificate=binding.ref.name,
        version=shown.version if shown else binding.version,
        versionless=binding.version is None,
        thumbprint=entity.thumbprint or (shown.thumbprint_sha1 if shown else None),
        not_after=not_after,
        days_left=left,
        newest=newest.version if newest else None,
        in_sync=shown is not None and newest is not None and shown.version == newest.version,
        expiring=not_after is not None and not_after <= now + timedelta(days=alert_days),
    )


def with_last_decisions(
    rows: Iterable[BindingStatus], last: Mapping[tuple[str, str], str]
) -> tuple[BindingStatus, ...]:
    """``rows`` with the last decision recorded for their (vault, certificate), keys
    compared case-insensitively."""
    index = {(v.lower(), c.lower()): d for (v, c), d in last.items()}
    return tuple(
        replace(r, last_decision=index.get((r.vault.lower(), r.certificate.lower()))) for r in rows
    )


def needs_attention(rows: Iterable[BindingStatus]) -> bool:
    """Whether any binding is out of sync or expiring (``certrotate status`` exits 1)."""
    return any(not r.healthy for r in rows)
