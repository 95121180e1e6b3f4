"""The actions a rotation plan is made of (``rotation.domain.planning`` returns a tuple of them).

Plain frozen values: ``RotationService`` applies them in order, and ``plan``/dry runs print them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rotation.domain.model import (
    AuditTarget,
    CertificateVersion,
    Decision,
    TargetKind,
    TargetResult,
)

__all__ = [
    "Action",
    "AlreadyCurrent",
    "CreateEntity",
    "EditPolicy",
    "MoveBackend",
    "PinBack",
    "PinEntity",
    "RefreshEntity",
    "RetireEntity",
    "RotationPlan",
    "Superseded",
    "describe",
    "policy_name",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PinEntity:
    """Point an existing entity's ``secretIdentifier`` at the candidate's versioned secret URL.

    ``from_secret`` is what the plan saw; the gateway's compare-and-swap writes only while the
    entity still names it (no ETag here: ARM lists carry none)."""

    service_id: str
    certificate_id: str
    from_secret: str
    to_secret: str
    identity_client_id: str | None
    versionless: bool = False  # the entity was versionless: conversion is audited


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshEntity:
    """``follow``: a versionless entity stays versionless; APIM re-fetches its secret now
    (``refreshSecret``) and must then present the candidate."""

    service_id: str
    certificate_id: str
    secret: str  # the versionless secret identifier it keeps


@dataclass(frozen=True, slots=True, kw_only=True)
class PinBack:
    """``follow``: the candidate failed, so pin a versionless entity to the last validated
    version (a compare-and-swap like ``PinEntity``); APIM's poll can no longer pick it up.
    ``thumbprint`` is what the entity must present afterwards (the version's)."""

    service_id: str
    certificate_id: str
    from_secret: str
    to_secret: str
    identity_client_id: str | None
    thumbprint: str | None
    unvalidated: bool = False  # the entity presented the failed candidate (APIM polled first)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateEntity:
    """Blue-green: create ``{base}--{version[:8]}`` pinned to the candidate."""

    service_id: str
    certificate_id: str
    to_secret: str
    identity_client_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveBackend:
    """Blue-green: replace a backend's references to the group with the new entity.

    ``from_ids`` is what the plan saw; the gateway's compare-and-swap writes only while the
    backend still presents exactly those ids (no ETag here: ARM lists carry none)."""

    service_id: str
    backend_id: str
    from_ids: tuple[str, ...]
    to_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetireEntity:
    """Blue-green: delete an entity beyond the retention count that no backend references.

    ``etag`` is the listed one (``""`` from an ARM list: the delete then sends ``If-Match: *``)."""

    service_id: str
    certificate_id: str
    secret: str | None
    etag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlreadyCurrent:
    """The target already uses the candidate: nothing to do."""

    service_id: str
    kind: TargetKind
    name: str
    reference: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Superseded:
    """The target uses a version newer than the candidate: never roll back."""

    service_id: str
    kind: TargetKind
    name: str
    in_use: str | None
    candidate: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EditPolicy:
    """Inbound identities: one conditional write of one policy document
    (``rotation.domain.inbound``), or, with nothing ``added`` or ``removed``, a document that
    already pins what it should.

    ``before``/``after`` are the certificate's thumbprints the document pins before and after
    the edit; ``expected_value`` is the document as the plan read it (the compare-and-swap's
    expectation) and ``value`` the document to write. Both are excluded from ``repr``.
    """

    service_id: str
    scope: str  # a PolicyScope value
    resource_id: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    expected_value: str = field(default="", repr=False)
    value: str = field(default="", repr=False)

    @property
    def changes(self) -> bool:
        """The edit writes the document."""
        return bool(self.added or self.removed)

    @property
    def name(self) -> str:
        """The policy's path below its service: ``global``, ``products/{p}``, ``apis/{a}``,
        ``apis/{a}/operations/{o}``."""
        return policy_name(self.service_id, self.resource_id)


def policy_name(service_id: str, resource_id: str) -> str:
    """A policy's path below its service (``resource_id`` its full ARM id): ``global``,
    ``products/{p}``, ``apis/{a}``, ``apis/{a}/operations/{o}``."""
    under = resource_id.lower().startswith(service_id.rstrip("/").lower() + "/")
    tail = resource_id[len(service_id.rstrip("/")) :] if under else resource_id
    tail = tail.strip("/").removesuffix("policies/policy").strip("/")
    return tail or "global"


_Reference = (
    PinEntity
    | CreateEntity
    | MoveBackend
    | RetireEntity
    | AlreadyCurrent
    | Superseded
    | RefreshEntity
    | PinBack
)  # outbound: what a certificate entity or a backend references
Action = _Reference | EditPolicy

_CHANGE_RESULT: dict[type, TargetResult] = {
    PinEntity: TargetResult.UPDATED,
    RefreshEntity: TargetResult.REFRESHED,
    PinBack: TargetResult.PINNED,
    CreateEntity: TargetResult.CREATED,
    MoveBackend: TargetResult.UPDATED,
    RetireEntity: TargetResult.RETIRED,
    AlreadyCurrent: TargetResult.ALREADY_CURRENT,
    Superseded: TargetResult.SUPERSEDED,
}
_PLANNED_RESULT: dict[type, TargetResult] = {
    PinEntity: TargetResult.UPDATE,
    RefreshEntity: TargetResult.REFRESH,
    PinBack: TargetResult.PIN,
    CreateEntity: TargetResult.CREATE,
    MoveBackend: TargetResult.MOVE,
    RetireEntity: TargetResult.RETIRE,
    AlreadyCurrent: TargetResult.ALREADY_CURRENT,
    Superseded: TargetResult.SUPERSEDED,
}


def _service_name(service_id: str) -> str:
    return service_id.rstrip("/").rsplit("/", 1)[-1]


def _tail(ids: tuple[str, ...]) -> str:
    return ",".join(i.rstrip("/").rsplit("/", 1)[-1] for i in ids)


def describe(
    action: Action, result: TargetResult | None = None, *, planned: bool = False
) -> AuditTarget:
    """The audit target of an action; ``result`` defaults to what applying it records (or,
    ``planned``, to the verb ``plan`` prints)."""
    if isinstance(action, EditPolicy):
        return _describe_policy(action, result, planned=planned)
    default = (_PLANNED_RESULT if planned else _CHANGE_RESULT)[type(action)]
    return _describe_reference(action, result or default)


def _describe_reference(action: _Reference, result: TargetResult) -> AuditTarget:
    """The target of an outbound action (a certificate entity or a backend)."""
    svc = _service_name(action.service_id)
    if isinstance(action, RefreshEntity):
        return AuditTarget(
            service=svc, kind=TargetKind.CERTIFICATE, name=action.certificate_id,
            from_=action.secret, to=action.secret, result=result,
        )  # fmt: skip
    if isinstance(action, PinEntity | CreateEntity | PinBack):
        old = action.from_secret if isinstance(action, PinEntity | PinBack) else None
        return AuditTarget(
            service=svc, kind=TargetKind.CERTIFICATE, name=action.certificate_id, from_=old,
            to=action.to_secret, result=result,
        )  # fmt: skip
    if isinstance(action, MoveBackend):
        return AuditTarget(
            service=svc, kind=TargetKind.BACKEND, name=action.backend_id,
            from_=_tail(action.from_ids), to=_tail(action.to_ids), result=result,
        )  # fmt: skip
    if isinstance(action, RetireEntity):
        return AuditTarget(
            service=svc, kind=TargetKind.CERTIFICATE, name=action.certificate_id,
            from_=action.secret, to=None, result=result,
        )  # fmt: skip
    if isinstance(action, AlreadyCurrent):
        return AuditTarget(
            service=svc, kind=action.kind, name=action.name, from_=action.reference,
            to=action.reference, result=result,
        )  # fmt: skip
    return AuditTarget(
        service=svc, kind=action.kind, name=action.name, from_=action.in_use, to=action.candidate,
        result=result,
    )  # fmt: skip


def _describe_policy(
    action: EditPolicy, result: TargetResult | None, *, planned: bool
) -> AuditTarget:
    if result is None:
        if not action.changes:
            result = TargetResult.ALREADY_CURRENT
        else:
            result = TargetResult.UPDATE if planned else TargetResult.UPDATED
    return AuditTarget(
        service=_service_name(action.service_id), kind=TargetKind.POLICY, name=action.name,
        from_=",".join(action.before) or None, to=",".join(action.after) or None, result=result,
        scope=action.scope, resource_id=action.resource_id, added=action.added,
        removed=action.removed,
    )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationPlan:
    """What a rotation of one certificate would do right now (``RotationService.plan``)."""

    vault: str
    certificate: str
    decision: Decision  # what handling a new-version event would decide now
    candidate: CertificateVersion | None
    previous_version: str | None
    actions: tuple[Action, ...]
    findings: tuple[str, ...] = ()
    message: str | None = None

    @property
    def targets(self) -> tuple[AuditTarget, ...]:
        """One target per action; ``result`` is the planned verb (update, create, move, retire,
        already_current, superseded)."""
        return tuple(describe(a, planned=True) for a in self.actions)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready view with the audit record's names (``version`` is the candidate's)."""
        return {
            "vault": self.vault,
            "certificate": self.certificate,
            "version": self.candidate.version if self.candidate else None,
            "previous_version": self.previous_version,
            "decision": str(self.decision),
            "findings": list(self.findings),
            "message": self.message,
            "targets": [t.as_dict() for t in self.targets],
        }
