"""Expiry as operators see it: what each binding presents, days left, and when to alert again.

Pure (plain values in, plain values out; "now" is always passed in):

- ``binding_expirations``: after a run, the ``not_after`` each APIM certificate entity presents,
  and for inbound identities the ``not_after`` of the newest version each policy document pins
  (the ``certrotate.certificate.expiration`` gauge; docs/operations.md, "Metrics");
- ``pinned_after``, ``pinned_versions``, ``callers_use``: what policy documents pin after an
  inbound run (the versions its outcome keeps in use; what callers can present, which the
  near-expiry alert watches);
- ``days_left``: whole days from ``now`` until ``not_after`` (negative once expired);
- ``AlertMemo``: the near-expiry alert is raised once per certificate per UTC day, not on every
  reconcile sweep (docs/operations.md, "Logs").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from rotation.domain.bindings import parse_secret_identifier
from rotation.domain.model import (
    AuditTarget,
    CertificateVersion,
    TargetKind,
    TargetResult,
    by_thumbprint,
    version_order,
)

__all__ = [
    "AlertMemo",
    "BindingExpiry",
    "binding_expirations",
    "callers_use",
    "days_left",
    "pinned_after",
    "pinned_versions",
]

_NOW_PRESENTS_TO = frozenset(
    {TargetResult.UPDATED, TargetResult.CREATED, TargetResult.ALREADY_CURRENT}
)
_SECONDS_PER_DAY = 86400


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingExpiry:
    """What one binding presents: the ``not_after`` of the version an APIM certificate entity
    references, or of the newest version of an inbound certificate a policy document pins
    (``expires=None``: unknown, or the entity was retired, so its series ends)."""

    vault: str
    certificate: str
    service: str  # APIM service name
    entity: str  # APIM certificate entity id, or a policy's ARM path below its service
    expires: datetime | None


def _version_of(reference: str | None, candidate: CertificateVersion | None) -> str | None:
    """The version a target reference names: a secret URL (a versionless one presents the
    candidate) or a bare version."""
    if not reference:
        return None
    if "/secrets/" not in reference:
        return reference
    ref = parse_secret_identifier(reference)
    if ref is None:
        return None
    if ref.version is None:
        return candidate.version if candidate else None
    return ref.version


def binding_expirations(
    *,
    vault: str,
    certificate: str,
    targets: Iterable[AuditTarget],
    candidate: CertificateVersion | None,
    in_use: Sequence[CertificateVersion],
) -> tuple[BindingExpiry, ...]:
    """The ``not_after`` each certificate-entity target of a run presents after it: the new
    reference when the run changed it or it was already current, the old one when the run left
    it (rejected, deferred, superseded, failed, dry run); a retired entity presents nothing.

    A policy target (inbound identities) gives the ``not_after`` of the newest version its
    document pins after the run (``pinned_after``; the versions are found by thumbprint among
    ``in_use`` and ``candidate``), under ``entity`` = the policy's ARM path below its service
    (``policies/policy``, ``apis/{a}/policies/policy``, ...): never an entity id, which holds no
    ``/``."""
    index = {v.version.lower(): v for v in in_use}
    if candidate is not None:
        index[candidate.version.lower()] = candidate
    out: list[BindingExpiry] = []
    for target in targets:
        if target.kind is TargetKind.POLICY:
            newest = _newest(pinned_after(target), index.values())
            out.append(
                BindingExpiry(
                    vault=vault,
                    certificate=certificate,
                    service=target.service,
                    entity=_policy_path(target),
                    expires=newest.expires if newest else None,
                )
            )
            continue
        if target.kind is not TargetKind.CERTIFICATE:
            continue
        expires: datetime | None = None
        if target.result is not TargetResult.RETIRED:
            reference = target.to if target.result in _NOW_PRESENTS_TO else target.from_
            version = _version_of(reference, candidate)
            shown = index.get(version.lower()) if version else None
            expires = shown.expires if shown else None
        out.append(
            BindingExpiry(
                vault=vault,
                certificate=certificate,
                service=target.service,
                entity=target.name,
                expires=expires,
            )
        )
    return tuple(out)


def _policy_path(target: AuditTarget) -> str:
    """A policy target's ARM path below its service: ``policies/policy`` for the global scope,
    else ``{name}/policies/policy`` (``apis/orders/policies/policy``)."""
    return "policies/policy" if target.name == "global" else f"{target.name}/policies/policy"


# --- inbound: what the policy documents pin after a run -----------------------------------------


def pinned_after(target: AuditTarget) -> tuple[str, ...]:
    """The certificate's thumbprints (upper case) a policy target's document pins after the run:
    what it pins now when the run wrote it or it was already current (``to``), else what it
    pinned before (``from_``: rejected, deferred, failed, dry run)."""
    pins = target.to if target.result in _NOW_PRESENTS_TO else target.from_
    return tuple(dict.fromkeys(t.strip().upper() for t in (pins or "").split(",") if t.strip()))


def _newest(
    thumbprints: Iterable[str], versions: Iterable[CertificateVersion]
) -> CertificateVersion | None:
    index = by_thumbprint(versions)
    found = [index[t] for t in thumbprints if t in index]
    return max(found, key=version_order, default=None)


def pinned_versions(
    targets: Iterable[AuditTarget], versions: Iterable[CertificateVersion]
) -> tuple[CertificateVersion, ...]:
    """The ``versions`` some policy target pins after the run (``pinned_after``), oldest first:
    what an inbound run leaves in use."""
    index = by_thumbprint(versions)
    pinned = {
        index[t].version.lower(): index[t]
        for target in targets
        if target.kind is TargetKind.POLICY
        for t in pinned_after(target)
        if t in index
    }
    return tuple(sorted(pinned.values(), key=version_order))


def callers_use(
    targets: Iterable[AuditTarget], versions: Iterable[CertificateVersion]
) -> tuple[CertificateVersion, ...]:
    """The newest version each policy target pins after the run, each once, oldest first: what
    callers can present there once they renew. An older identity kept next to a newer one
    (the overlap) is not among them: its expiry is expected, not a reason to alert."""
    known = tuple(versions)
    newest = {
        found.version.lower(): found
        for target in targets
        if target.kind is TargetKind.POLICY
        and (found := _newest(pinned_after(target), known)) is not None
    }
    return tuple(sorted(newest.values(), key=version_order))


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days from ``now`` until ``not_after``, rounded down (0 on the last day, negative
    once expired)."""
    return math.floor((not_after - now).total_seconds() / _SECONDS_PER_DAY)


class AlertMemo:
    """Which certificates were alerted on which UTC day (one process's memory).

    ``due`` is the decision: alert unless this certificate (with this version) was alerted on
    ``now``'s UTC day already. The memory lives as long as the service that holds it: a
    Functions worker keeps it across timer runs; a restarted worker or a new CLI process alerts
    again once (docs/operations.md, "Logs").
    """

    def __init__(self) -> None:
        self._alerted: dict[tuple[str, str], tuple[date, str]] = {}

    def due(self, vault: str, certificate: str, version: str, now: datetime) -> bool:
        """Whether to alert now; if so, remember it for the rest of ``now``'s UTC day."""
        key = (vault.lower(), certificate.lower())
        today = now.date()
        if self._alerted.get(key) == (today, version.lower()):
            return False
        self._alerted[key] = (today, version.lower())
        return True
