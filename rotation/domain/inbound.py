"""Inbound mTLS: the policy documents that pin a certificate's thumbprints, and the decisions
about them (``docs/architecture.md``, "Inbound identities").

Callers present client certificates to API Management, which checks them with the
``validate-client-certificate`` policy at global, product, API or operation scope. When Key Vault
renews such a certificate, every policy document that pins a thumbprint of one of its versions
learns the new thumbprint (next to the old one); after the overlap, or once the old certificate
has expired, reconcile removes the old one, never the last. The byte-preserving edits themselves
are ``rotation.domain.policies``'; this module holds the values the port speaks in and the
decisions, as pure functions of plain values:

* ``plan_document`` / ``plan_inbound``: what to add and remove in each document (one
  ``EditPolicy`` per document that pins the certificate);
* ``retirable``: may an old identity go now (the overlap or its expiry, never the last);
* ``settle``: what a plan decides before validation (``ignored``, ``already_current``, or
  whether the candidate must be validated);
* ``added_at``: when the audit trail says certrotate added each thumbprint to each document.

"Added at" comes from the durable trail only. When it does not say (no durable trail, or a
thumbprint someone else added), the overlap cannot be measured: the old identity is retired
only once its certificate has expired, and the plan's notes say why. Callers are never cut
off on a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from rotation.domain.actions import EditPolicy
from rotation.domain.bindings import vault_key
from rotation.domain.model import (
    CertificateVersion,
    Decision,
    TargetKind,
    TargetResult,
    by_thumbprint,
    version_order,
)
from rotation.domain.policies import (
    PolicyDocumentError,
    add_thumbprint,
    find_thumbprints,
    remove_thumbprint,
)

__all__ = [
    "AddedAt",
    "InboundPlan",
    "PolicyDocument",
    "PolicyScope",
    "added_at",
    "plan_document",
    "plan_inbound",
    "retirable",
    "settle",
]

AddedAt = Mapping[tuple[str, str], datetime]
"""When certrotate added a thumbprint to a policy document: (the policy's resource id lower
case, the thumbprint upper case) -> the time of the write, as the audit trail records it."""


class PolicyScope(StrEnum):
    """Where a policy document applies."""

    GLOBAL = "global"
    PRODUCT = "product"
    API = "api"
    OPERATION = "operation"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyDocument:
    """One APIM policy document, read in ``rawxml`` format.

    ``resource_id`` is the policy's full ARM id (``{service}/policies/policy``,
    ``{service}/products/{p}/policies/policy``, ``{service}/apis/{a}/policies/policy`` or
    ``{service}/apis/{a}/operations/{o}/policies/policy``); ``service_id`` is the service's.
    ``etag`` is the one the read returned ("" when unknown): a gateway never trusts it for a
    write, it re-reads (compare-and-swap on ``value``).
    """

    service_id: str
    scope: PolicyScope
    resource_id: str
    value: str = field(repr=False)
    etag: str = ""


# --- the trail -----------------------------------------------------------------------------------


def added_at(
    records: Iterable[Mapping[str, object]], vault_url: str, certificate: str
) -> dict[tuple[str, str], datetime]:
    """When the trail says certrotate added each thumbprint of ``certificate`` to each policy
    document: the ``policy`` targets with result ``updated`` of the canonical records
    (``rotation.<decision>``, not dry runs) about ``certificate`` in ``vault_url``, keyed by
    (resource id lower case, thumbprint upper case). A later record wins (a thumbprint removed
    by hand and added again counts from its last addition). ``records`` are
    ``AuditRecord.as_dict()`` shaped, as every sink stores them."""
    vault, name = vault_key(vault_url), certificate.lower()
    found: dict[tuple[str, str], datetime] = {}
    for record in records:
        decision = record.get("decision")
        if (
            record.get("event") != f"rotation.{decision}"
            or record.get("dry_run")
            or vault_key(str(record.get("vault") or "")) != vault
            or str(record.get("certificate") or "").lower() != name
        ):
            continue
        targets = record.get("targets")
        for target in targets if isinstance(targets, list | tuple) else ():
            if not isinstance(target, Mapping):
                continue
            when = _when(target.get("at"))
            resource = target.get("resource_id")
            added = target.get("added")
            if (
                target.get("kind") != TargetKind.POLICY
                or target.get("result") != TargetResult.UPDATED
                or when is None
                or not isinstance(resource, str)
                or not isinstance(added, list | tuple)
            ):
                continue
            for thumbprint in added:
                if isinstance(thumbprint, str):
                    found[(resource.lower(), thumbprint.upper())] = when
    return found


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# --- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundPlan:
    """What converging one certificate's inbound identities takes: one ``EditPolicy`` per
    document that pins a version of it (``changes`` or not), the versions pinned anywhere
    before, and notes for people (why an old identity was kept)."""

    edits: tuple[EditPolicy, ...]
    pinned: tuple[CertificateVersion, ...]
    notes: tuple[str, ...] = ()

    @property
    def adds(self) -> bool:
        """Some document learns the candidate: the candidate must be validated first."""
        return any(e.added for e in self.edits)


def _blocks(value: str, index: Mapping[str, CertificateVersion]) -> dict[int, list[str]]:
    """Per ``validate-client-certificate`` block (by offset): the certificate's thumbprints it
    pins, in document order."""
    blocks: dict[int, list[str]] = {}
    for pin in find_thumbprints(value):
        if pin.thumbprint in index and pin.thumbprint not in blocks.get(pin.block_offset, []):
            blocks.setdefault(pin.block_offset, []).append(pin.thumbprint)
    return blocks


def retirable(
    old: CertificateVersion,
    newer: Sequence[CertificateVersion],
    *,
    resource_id: str,
    now: datetime,
    overlap: timedelta,
    added: AddedAt | None,
    just_added: Iterable[str] = (),
) -> tuple[bool, str | None]:
    """May ``old``'s identity leave a block that also pins the ``newer`` versions (those newer
    than ``old`` by ``created``)? Yes when ``old`` has expired, or when the overlap has passed
    since certrotate added one of ``newer`` to this document (``added``; a thumbprint of
    ``just_added`` was added by this very edit). Never when nothing newer is pinned: the newest
    pinned identity of a block stays. The second value says why an identity stays although it
    might go (the trail does not say when a newer one was added), else None."""
    if not newer:
        return False, None
    if old.expires is not None and old.expires <= now:
        return True, None
    fresh = {t.upper() for t in just_added}
    unknown: list[str] = []
    for version in newer:
        thumbprint = (version.thumbprint_sha1 or "").upper()
        if thumbprint in fresh:
            continue
        when = added.get((resource_id.lower(), thumbprint)) if added is not None else None
        if when is None:
            unknown.append(version.version)
        elif when + overlap <= now:
            return True, None
    if not unknown:
        return False, None
    if added is None:
        return False, (
            f"kept {old.version} in {resource_id}: no durable audit trail says when a newer "
            "version was added, so only its expiry retires it"
        )
    return False, (
        f"kept {old.version} in {resource_id}: the audit trail does not say certrotate added "
        f"{', '.join(unknown)} there, so only its expiry retires it"
    )


def plan_document(
    document: PolicyDocument,
    versions: Sequence[CertificateVersion],
    candidate: CertificateVersion,
    *,
    now: datetime,
    overlap: timedelta,
    added: AddedAt | None,
) -> tuple[EditPolicy | None, tuple[str, ...]]:
    """The edit of one document (None when it pins no version of the certificate) and its notes.

    Adds: every block that pins a version of the certificate but not ``candidate`` learns the
    candidate's thumbprint, next to the newest version the block pins. Removes: a version
    leaves the document when ``retirable`` in every block that pins it (``remove_thumbprint``
    edits every block), judged on the document with the additions made; so each block keeps at
    least its newest pinned version. Thumbprints of other certificates are never touched.

    Raises:
        PolicyDocumentError: the document cannot be parsed (naming its resource id).
    """
    index = by_thumbprint(versions)
    upper = document.value.upper()
    if not any(t in upper for t in index):  # cheap: most documents pin nothing of ours
        return None, ()
    try:
        return _plan_document(document, index, candidate, now=now, overlap=overlap, added=added)
    except PolicyDocumentError as exc:
        raise PolicyDocumentError(
            f"{document.resource_id}: {exc.reason}",
            line=exc.line, column=exc.column, offset=exc.offset,
        ) from None  # fmt: skip


def _plan_document(
    document: PolicyDocument,
    index: Mapping[str, CertificateVersion],
    candidate: CertificateVersion,
    *,
    now: datetime,
    overlap: timedelta,
    added: AddedAt | None,
) -> tuple[EditPolicy | None, tuple[str, ...]]:
    blocks = _blocks(document.value, index)
    if not blocks:
        return None, ()
    before = tuple(dict.fromkeys(t for pins in blocks.values() for t in pins))
    value = document.value
    new = (candidate.thumbprint_sha1 or "").upper()
    if new:
        anchors = {
            max((index[t] for t in pins), key=version_order)
            for pins in blocks.values()
            if new not in pins
        }
        for anchor in sorted(
            anchors, key=version_order, reverse=True
        ):  # newest first: see docstring
            value = add_thumbprint(value, anchor.thumbprint_sha1 or "", new)
    # A block that learns the candidate starts its overlap now, in the whole document (as the
    # trail keys "added at" per document): conservative, never early.
    just_added = (new,) if value != document.value else ()
    notes: list[str] = []
    doomed: list[str] = []
    after_blocks = _blocks(value, index)
    for thumbprint in dict.fromkeys(t for pins in after_blocks.values() for t in pins):
        old = index[thumbprint]
        verdicts = [
            retirable(
                old,
                [index[t] for t in pins if version_order(index[t]) > version_order(old)],
                resource_id=document.resource_id,
                now=now,
                overlap=overlap,
                added=added,
                just_added=just_added,
            )
            for pins in after_blocks.values()
            if thumbprint in pins
        ]
        if all(ok for ok, _ in verdicts):
            doomed.append(thumbprint)
        else:
            notes.extend(note for _, note in verdicts if note and note not in notes)
    for thumbprint in doomed:
        value = remove_thumbprint(value, thumbprint)
    after = tuple(dict.fromkeys(t for pins in _blocks(value, index).values() for t in pins))
    edit = EditPolicy(
        service_id=document.service_id, scope=str(document.scope),
        resource_id=document.resource_id, before=before, after=after, added=just_added,
        removed=tuple(doomed), expected_value=document.value, value=value,
    )  # fmt: skip
    return edit, tuple(notes)


def plan_inbound(
    documents: Iterable[PolicyDocument],
    versions: Sequence[CertificateVersion],
    candidate: CertificateVersion,
    *,
    now: datetime,
    overlap: timedelta,
    added: AddedAt | None,
) -> InboundPlan:
    """``plan_document`` over every document; ``pinned`` are the versions some document pinned
    before (oldest first).

    Raises:
        PolicyDocumentError: a document that mentions a thumbprint of the certificate cannot be
            parsed.
    """
    edits: list[EditPolicy] = []
    notes: list[str] = []
    for document in documents:
        edit, why = plan_document(
            document, versions, candidate, now=now, overlap=overlap, added=added
        )
        if edit is not None:
            edits.append(edit)
            notes.extend(n for n in why if n not in notes)
    index = by_thumbprint(versions)
    pinned = sorted({index[t] for e in edits for t in e.before}, key=version_order)
    return InboundPlan(edits=tuple(edits), pinned=tuple(pinned), notes=tuple(notes))


def settle(plan: InboundPlan, *, certificate: str) -> tuple[Decision, str | None] | None:
    """What a plan decides before any secret is read: ``ignored`` (no document pins a version
    of ``certificate``) or ``already_current`` (no document changes), with the message; None
    when documents change (``plan.adds``: validate the candidate first; else ``applied``
    removes old identities only)."""
    if not plan.edits:
        return Decision.IGNORED, (
            f"no APIM policy document pins a thumbprint of a version of {certificate}"
        )
    if not any(e.changes for e in plan.edits):
        return Decision.ALREADY_CURRENT, "; ".join(plan.notes) or None
    return None
