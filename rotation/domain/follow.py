"""The ``follow`` strategy's decisions, as pure functions (``docs/rotation.md``, "follow").

Under ``follow`` APIM entities stay versionless, so APIM's own Key Vault polling remains a
backstop. certrotate validates each new version and then asks APIM to fetch it now
(``RefreshEntity``); when a version fails, it pins the versionless entities to the **last
validated version** (``PinBack``) so that APIM's poll cannot pick the failed one up.

"Last validated" comes from the durable audit trail, never from a guess: the newest version of
the certificate whose canonical record says certrotate validated it and saw it presented
(``last_validated``: a ``rotation.applied`` record, or an ``already_current`` one that carries a
validation's ``thumbprint_sha256``). When the trail does not name one (no durable trail, or
nothing validated yet), nothing is pinned: that is the ``binding.last_validated_unknown``
finding, and the entities are left as they are for a person to decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rotation.domain.actions import PinBack
from rotation.domain.bindings import Binding, vault_key
from rotation.domain.model import (
    CertificateVersion,
    Decision,
    FindingCode,
    TargetResult,
)

__all__ = [
    "Fallback",
    "last_validated",
    "needs_validation",
    "pin_back",
    "presented_version",
]

_VALIDATED = frozenset({str(Decision.APPLIED), str(Decision.ALREADY_CURRENT)})


def presented_version(
    binding: Binding, versions: Iterable[CertificateVersion]
) -> CertificateVersion | None:
    """The version an entity presents: the one it pins, else (versionless) the version whose
    thumbprint APIM shows; None when it cannot be told."""
    index = {v.version.lower(): v for v in versions}
    if binding.version is not None:
        return index.get(binding.version.lower())
    shown = (binding.entity.thumbprint or "").upper()
    if not shown or binding.entity.last_status_code not in {None, "Success"}:
        return None
    return next((v for v in index.values() if (v.thumbprint_sha1 or "").upper() == shown), None)


def last_validated(
    records: Iterable[Mapping[str, object]], vault_url: str, certificate: str
) -> str | None:
    """The version of the last record (in trail order) in which certrotate validated a version
    of ``certificate`` and saw it presented: a canonical ``rotation.applied`` record, or a
    ``rotation.already_current`` one carrying a validation's ``thumbprint_sha256``, with no
    failed target. Dry runs do not count. ``records`` are ``AuditRecord.as_dict()`` shaped (as
    every sink stores them). None when the trail names none."""
    vault, name = vault_key(vault_url), certificate.lower()
    found: str | None = None
    for record in records:
        decision, version = record.get("decision"), record.get("version")
        targets = record.get("targets")
        if (
            decision in _VALIDATED
            and record.get("event") == f"rotation.{decision}"
            and not record.get("dry_run")
            and isinstance(version, str)
            and record.get("thumbprint_sha256")  # set only from a validation report
            and vault_key(str(record.get("vault") or "")) == vault
            and str(record.get("certificate") or "").lower() == name
            and not _any_failed(targets)
        ):
            found = version
    return found


def _any_failed(targets: object) -> bool:
    if not isinstance(targets, list | tuple):
        return False
    return any(isinstance(t, Mapping) and t.get("result") == TargetResult.FAILED for t in targets)


def needs_validation(
    bindings: Sequence[Binding], candidate: CertificateVersion, validated: str | None
) -> bool:
    """Whether a plan that changes nothing must still validate the candidate: some versionless
    entity already presents it (APIM polled, or someone refreshed by hand) and the trail does
    not say certrotate validated it."""
    if validated is not None and validated.lower() == candidate.version.lower():
        return False
    shown = (candidate.thumbprint_sha1 or "").upper()
    return any(
        b.version is None and shown and (b.entity.thumbprint or "").upper() == shown
        for b in bindings
    )


@dataclass(frozen=True, slots=True)
class Fallback:
    """What a failed candidate does under ``follow``: the pins, the findings and why."""

    actions: tuple[PinBack, ...]
    findings: tuple[FindingCode, ...]
    message: str | None


def pin_back(
    bindings: Sequence[Binding],
    versions: Iterable[CertificateVersion],
    candidate: CertificateVersion,
    validated: str | None,
) -> Fallback:
    """Pin every versionless entity to the last validated version (``binding.pinned``; also
    ``binding.unvalidated`` where the entity already presented the failed candidate).

    Pinned entities are left as they are (certrotate pins only validated versions). When the
    last validated version is unknown, or is the failed candidate itself, or is no longer an
    enabled version, nothing is pinned: ``binding.last_validated_unknown``.
    """
    loose = [b for b in bindings if b.version is None]
    if not loose:
        return Fallback((), (), None)
    index = {v.version.lower(): v for v in versions}
    target = index.get(validated.lower()) if validated else None
    if target is None or not target.enabled or target.version == candidate.version:
        names = ", ".join(b.entity.certificate_id for b in loose)
        why = "the audit trail names no validated version" if validated is None else (
            f"the last validated version {validated} is not an enabled version other than "
            "the candidate"
        )  # fmt: skip
        return Fallback(
            (),
            (FindingCode.BINDING_LAST_VALIDATED_UNKNOWN,),
            f"{why}: versionless entities {names} were not pinned; pin them by hand",
        )
    shown = (candidate.thumbprint_sha1 or "").upper()
    actions = tuple(
        PinBack(
            service_id=b.entity.service_id,
            certificate_id=b.entity.certificate_id,
            from_secret=b.entity.secret_identifier or "",
            to_secret=target.secret_id,
            identity_client_id=b.entity.identity_client_id,
            thumbprint=target.thumbprint_sha1,
            unvalidated=bool(shown) and (b.entity.thumbprint or "").upper() == shown,
        )
        for b in loose
    )
    findings = [FindingCode.BINDING_PINNED]
    if any(a.unvalidated for a in actions):
        findings.append(FindingCode.BINDING_UNVALIDATED)
    return Fallback(
        actions,
        tuple(findings),
        f"pinned {len(actions)} versionless entit{'y' if len(actions) == 1 else 'ies'} "
        f"to the last validated version {target.version}",
    )
