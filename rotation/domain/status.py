"""The health of each APIM binding and inbound identity, as ``certrotate status`` shows it
(docs/operations.md).

Pure: a binding, its certificate's versions, "now" and the alert threshold in; one
``BindingStatus`` out. A binding needs attention when it is out of sync (it does not present the
newest enabled Key Vault version) or what it presents expires within ``ROTATION_ALERT_DAYS``.

Inbound identities (``docs/architecture.md``, "Inbound identities"): a policy document and an
inbound certificate's versions in; one ``IdentityStatus`` per thumbprint of a version the document
pins. An identity needs attention when its document does not pin the newest enabled version, or
when it is the newest version the document pins (what callers can present once they renew) and
it expires within ``ROTATION_ALERT_DAYS``. An older identity kept next to a newer one during the
overlap expiring soon is expected: its callers have the newer one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from rotation.domain.actions import policy_name
from rotation.domain.bindings import Binding
from rotation.domain.expiry import days_left
from rotation.domain.inbound import PolicyDocument
from rotation.domain.model import CertificateVersion, TargetKind, by_thumbprint, version_order
from rotation.domain.planning import choose_candidate
from rotation.domain.policies import PolicyDocumentError, find_thumbprints

__all__ = [
    "BindingStatus",
    "IdentityStatus",
    "StatusRow",
    "binding_status",
    "identity_status",
    "needs_attention",
    "with_last_decisions",
]


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
        """JSON-ready (UTC ISO ``not_after``), with ``kind`` ``certificate``."""
        out: dict[str, object] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["backends"] = list(self.backends)
        if self.not_after is not None:
            out["not_after"] = _iso(self.not_after)
        out["healthy"] = self.healthy
        out["kind"] = str(TargetKind.CERTIFICATE)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityStatus:
    """One inbound identity row of ``certrotate status``: a policy document pinning the
    thumbprint of one version of an inbound certificate."""

    service: str  # APIM service name
    scope: str  # global, product, api, operation
    resource: str  # the policy's path below its service: global, products/p, apis/a, ...
    resource_id: str  # the policy's full ARM id
    vault: str
    certificate: str
    version: str  # the Key Vault version the pinned thumbprint belongs to
    thumbprint: str  # SHA-1, upper-case hex
    not_after: datetime | None
    days_left: int | None
    newest: str | None  # the newest enabled Key Vault version
    in_sync: bool  # the document pins the newest enabled version
    current: bool  # the newest version the document pins (what callers can present)
    expiring: bool  # expires within the alert threshold (or has expired)
    last_decision: str | None = None  # from the durable trail, when configured

    @property
    def healthy(self) -> bool:
        """The document is in sync, and this identity is not the newest one it pins expiring
        (an older identity kept through the overlap may expire: callers have the newer one)."""
        return self.in_sync and not (self.expiring and self.current)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (UTC ISO ``not_after``), with ``kind`` ``policy``."""
        out: dict[str, object] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if self.not_after is not None:
            out["not_after"] = _iso(self.not_after)
        out["healthy"] = self.healthy
        out["kind"] = str(TargetKind.POLICY)
        return out


StatusRow = BindingStatus | IdentityStatus
"""One row of ``certrotate status``: an outbound binding or an inbound identity."""

_Row = TypeVar("_Row", bound=StatusRow)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


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


def identity_status(
    document: PolicyDocument,
    versions: Iterable[CertificateVersion],
    *,
    vault: str,
    certificate: str,
    now: datetime,
    alert_days: int,
) -> tuple[IdentityStatus, ...]:
    """One ``IdentityStatus`` per thumbprint of a version of ``certificate`` (in ``vault``) that
    ``document`` pins in a ``validate-client-certificate`` block, oldest version first; none
    when it pins none.

    Raises:
        PolicyDocumentError: the document mentions a thumbprint of the certificate but cannot be
            parsed (naming its resource id).
    """
    all_versions = tuple(versions)
    index = by_thumbprint(all_versions)
    upper = document.value.upper()
    if not any(t in upper for t in index):  # cheap: most documents pin nothing of ours
        return ()
    try:
        pins = find_thumbprints(document.value)
    except PolicyDocumentError as exc:
        raise PolicyDocumentError(
            f"{document.resource_id}: {exc.reason}",
            line=exc.line, column=exc.column, offset=exc.offset,
        ) from None  # fmt: skip
    pinned = sorted(
        {index[p.thumbprint.upper()] for p in pins if p.thumbprint.upper() in index},
        key=version_order,
    )
    if not pinned:
        return ()
    newest = choose_candidate(all_versions)
    in_sync = newest is not None and any(v.version == newest.version for v in pinned)
    limit = now + timedelta(days=alert_days)
    return tuple(
        IdentityStatus(
            service=document.service_id.rstrip("/").rsplit("/", 1)[-1],
            scope=str(document.scope),
            resource=policy_name(document.service_id, document.resource_id),
            resource_id=document.resource_id,
            vault=vault,
            certificate=certificate,
            version=v.version,
            thumbprint=(v.thumbprint_sha1 or "").upper(),
            not_after=v.expires,
            days_left=days_left(v.expires, now) if v.expires is not None else None,
            newest=newest.version if newest else None,
            in_sync=in_sync,
            current=v == pinned[-1],
            expiring=v.expires is not None and v.expires <= limit,
        )
        for v in pinned
    )


def with_last_decisions(
    rows: Iterable[_Row], last: Mapping[tuple[str, str], str]
) -> tuple[_Row, ...]:
    """``rows`` with the last decision recorded for their (vault, certificate), keys
    compared case-insensitively."""
    index = {(v.lower(), c.lower()): d for (v, c), d in last.items()}
    return tuple(
        replace(r, last_decision=index.get((r.vault.lower(), r.certificate.lower()))) for r in rows
    )


def needs_attention(rows: Iterable[StatusRow]) -> bool:
    """Whether any binding or inbound identity is unhealthy (``certrotate status`` exits 1)."""
    return any(not r.healthy for r in rows)
