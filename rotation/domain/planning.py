"""Pure rotation planning: which APIM references move where (docs/architecture.md, "The rotation path", steps 1-2).

No I/O and no Azure imports: plain value objects in, a tuple of actions out, in the style of
cosmicpython's ``determine_actions()``. ``RotationService`` fetches the inputs and applies the
actions; idempotency falls out of the plan (a binding already on the candidate yields
``AlreadyCurrent``, so the same event ten times changes APIM once).

Ordering is always by Key Vault ``created`` (ties broken by version id), never by list or
arrival order, so a late event can never roll a binding back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rotation.domain.actions import (
    Action,
    AlreadyCurrent,
    CreateEntity,
    MoveBackend,
    PinEntity,
    RefreshEntity,
    RetireEntity,
    Superseded,
)
from rotation.domain.bindings import (
    Binding,
    SecretRef,
    bound_certificates,
    discover_bindings,
    parse_secret_identifier,
    references,
    vault_key,
)
from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    CertificateVersion,
    Strategy,
    TargetKind,
    version_order,
)

__all__ = [
    "Action",
    "AlreadyCurrent",
    "Binding",
    "CreateEntity",
    "MoveBackend",
    "PinEntity",
    "RetireEntity",
    "SecretRef",
    "Superseded",
    "base_name",
    "bound_certificates",
    "choose_candidate",
    "discover_bindings",
    "is_superseded",
    "lists_backends",
    "live_bindings",
    "needs_change",
    "parse_secret_identifier",
    "plan_rotation",
    "vault_key",
    "versionless_secret",
]

_SUFFIX = re.compile(r"^(?P<base>.+?)--[0-9A-Za-z]{8}$")


# --- ordering ---------------------------------------------------------------------------------


def _index(versions: Iterable[CertificateVersion]) -> dict[str, CertificateVersion]:
    return {v.version.lower(): v for v in versions}


def choose_candidate(versions: Iterable[CertificateVersion]) -> CertificateVersion | None:
    """The newest ENABLED version by ``created`` (ties by version id); None if none is enabled."""
    enabled = [v for v in versions if v.enabled]
    return max(enabled, key=version_order, default=None)


def _compare(
    version: str | None, candidate: CertificateVersion, index: dict[str, CertificateVersion]
) -> str:
    """``current``, ``newer`` or ``older`` (versionless and unknown versions count as older)."""
    if version is not None and version.lower() == candidate.version.lower():
        return "current"
    known = index.get(version.lower()) if version else None
    if known is not None and version_order(known) > version_order(candidate):
        return "newer"
    return "older"


def is_superseded(
    event_version: str, live: Sequence[Binding], versions: Iterable[CertificateVersion]
) -> bool:
    """True when every live binding already uses a version created after the event's version.

    Versionless or unknown in-use versions never supersede (we cannot tell what they present).
    """
    index = _index(versions)
    event = index.get(event_version.lower())
    if event is None or not live:
        return False
    for binding in live:
        in_use = index.get(binding.version.lower()) if binding.version else None
        if in_use is None or version_order(in_use) <= version_order(event):
            return False
    return True


# --- planning ---------------------------------------------------------------------------------


def base_name(certificate_id: str) -> str:
    """The entity id without a blue-green ``--xxxxxxxx`` suffix."""
    match = _SUFFIX.match(certificate_id)
    return match["base"] if match else certificate_id


def _groups(bindings: Iterable[Binding]) -> dict[tuple[str, str], list[Binding]]:
    groups: dict[tuple[str, str], list[Binding]] = {}
    for b in bindings:
        key = (b.entity.service_id.lower(), base_name(b.entity.certificate_id).lower())
        groups.setdefault(key, []).append(b)
    return groups


def live_bindings(bindings: Sequence[Binding], strategy: Strategy) -> tuple[Binding, ...]:
    """The bindings that are actually presented: for blue-green, those backends reference
    (retained rollback entities are not live) unless no entity of the group has a backend."""
    if strategy in {Strategy.PIN, Strategy.FOLLOW}:
        return tuple(bindings)
    live: list[Binding] = []
    for group in _groups(bindings).values():
        used = [b for b in group if b.backends]
        live.extend(used or group)
    return tuple(live)


def lists_backends(strategy: Strategy, *, canary: bool = False) -> bool:
    """Whether planning needs the APIM backends. Only ``blue-green`` moves backends; ``pin``
    and ``follow`` change the entity in place and their targets name only the entity, so they
    list certificate entities alone and their cost does not grow with the number of backends,
    unless the canary is on: it probes the backends that reference a changed entity, so it
    needs their URLs."""
    return canary or strategy is Strategy.BLUE_GREEN


def needs_change(actions: Iterable[Action]) -> bool:
    """Whether applying the plan changes what any target presents (retirement does not)."""
    return any(
        isinstance(a, PinEntity | CreateEntity | MoveBackend | RefreshEntity) for a in actions
    )


def _plan_pin(
    b: Binding, candidate: CertificateVersion, index: dict[str, CertificateVersion]
) -> Action:
    entity = b.entity
    state = _compare(b.version, candidate, index)
    if state == "current" and _presents(entity, candidate):
        return AlreadyCurrent(
            service_id=entity.service_id,
            kind=TargetKind.CERTIFICATE,
            name=entity.certificate_id,
            reference=entity.secret_identifier,
        )
    if state == "newer":
        return Superseded(
            service_id=entity.service_id,
            kind=TargetKind.CERTIFICATE,
            name=entity.certificate_id,
            in_use=b.version,
            candidate=candidate.version,
        )
    return PinEntity(
        service_id=entity.service_id,
        certificate_id=entity.certificate_id,
        from_secret=entity.secret_identifier or "",  # a binding always names a secret
        to_secret=candidate.secret_id,
        identity_client_id=entity.identity_client_id,
        versionless=b.version is None,
    )


def versionless_secret(secret_identifier: str) -> str:
    """``…/secrets/{name}/{version}`` without its version (a versionless one unchanged)."""
    ref = parse_secret_identifier(secret_identifier)
    if ref is None or ref.version is None:
        return secret_identifier
    return secret_identifier.rstrip("/").rsplit("/", 1)[0]


def _plan_follow(
    b: Binding, candidate: CertificateVersion, index: dict[str, CertificateVersion]
) -> Action:
    """``follow``: keep (or return) the entity versionless and let APIM fetch the candidate.

    A versionless entity that presents the candidate is current; otherwise it is refreshed. A
    pinned entity (pinned back after a failed version, or left by another strategy) returns to
    versionless, unless it names a newer version (never roll back); the PUT makes APIM fetch."""
    entity = b.entity
    secret = entity.secret_identifier or ""  # a binding always names a secret
    if b.version is None:
        if entity.thumbprint and _presents(entity, candidate):
            return AlreadyCurrent(
                service_id=entity.service_id,
                kind=TargetKind.CERTIFICATE,
                name=entity.certificate_id,
                reference=secret,
            )
        return RefreshEntity(
            service_id=entity.service_id, certificate_id=entity.certificate_id, secret=secret
        )
    if _compare(b.version, candidate, index) == "newer":
        return Superseded(
            service_id=entity.service_id,
            kind=TargetKind.CERTIFICATE,
            name=entity.certificate_id,
            in_use=b.version,
            candidate=candidate.version,
        )
    return PinEntity(
        service_id=entity.service_id,
        certificate_id=entity.certificate_id,
        from_secret=secret,
        to_secret=versionless_secret(secret),
        identity_client_id=entity.identity_client_id,
    )


def _presents(entity: ApimCertificate, candidate: CertificateVersion) -> bool:
    """Whether an entity that names the candidate also serves it. When APIM's Key Vault fetch
    failed, the entity names the new version but still presents the old certificate
    (``lastStatus`` not ``Success``, old thumbprint): it must be written again, so that a
    redelivery converges instead of calling it current."""
    if entity.last_status_code not in {None, "Success"}:
        return False
    expected = (candidate.thumbprint_sha1 or "").upper()
    return not expected or not entity.thumbprint or entity.thumbprint.upper() == expected


def plan_rotation(
    *,
    bindings: Sequence[Binding],
    versions: Sequence[CertificateVersion],
    candidate: CertificateVersion,
    strategy: Strategy,
    retain_previous: int = 2,
) -> tuple[Action, ...]:
    """Every action that brings ``bindings`` onto ``candidate``, in a safe application order:
    entity writes first, then backend moves, then retirements (so a crash part-way leaves every
    target on its old or its new certificate, never a missing one)."""
    index = _index(versions)
    if strategy is Strategy.PIN:
        return tuple(_plan_pin(b, candidate, index) for b in bindings)
    if strategy is Strategy.FOLLOW:
        return tuple(_plan_follow(b, candidate, index) for b in bindings)
    actions: list[Action] = []
    for group in _groups(bindings).values():
        actions.extend(_plan_group(group, candidate, index, retain_previous))
    rank = {CreateEntity: 0, PinEntity: 0, MoveBackend: 1, RetireEntity: 2}
    return tuple(sorted(actions, key=lambda a: rank.get(type(a), 0)))


def _plan_group(
    group: list[Binding],
    candidate: CertificateVersion,
    index: dict[str, CertificateVersion],
    retain_previous: int,
) -> list[Action]:
    backends = {(b.service_id.lower(), b.backend_id.lower()): b for g in group for b in g.backends}
    if not backends:  # referenced only by policies: blue-green cannot move those, pin in place
        return [_plan_pin(b, candidate, index) for b in group]
    service_id = group[0].entity.service_id
    target_id = f"{base_name(group[0].entity.certificate_id)}--{candidate.version[:8]}"
    target = next((b for b in group if b.entity.certificate_id.lower() == target_id.lower()), None)
    actions: list[Action] = []
    if target is None:
        newest = max(group, key=lambda b: _rank(b, index))
        actions.append(
            CreateEntity(
                service_id=service_id,
                certificate_id=target_id,
                to_secret=candidate.secret_id,
                identity_client_id=newest.entity.identity_client_id,
            )
        )
        target_resource = f"{service_id}/certificates/{target_id}"
    else:
        actions.append(_plan_pin(target, candidate, index))
        target_resource = target.entity.resource_id
    moves = [
        _plan_backend(bk, group, target_resource, candidate, index) for bk in backends.values()
    ]
    actions.extend(moves)
    actions.extend(_plan_retire(group, target_id, moves, index, retain_previous))
    return actions


def _rank(b: Binding, index: dict[str, CertificateVersion]) -> tuple[object, ...]:
    known = index.get(b.version.lower()) if b.version else None
    return (1, *version_order(known)) if known else (0,)


def _plan_backend(
    backend: ApimBackend,
    group: list[Binding],
    target_resource: str,
    candidate: CertificateVersion,
    index: dict[str, CertificateVersion],
) -> Action:
    used = [g for g in group if any(references(c, g.entity) for c in backend.certificate_ids)]
    if all(g.entity.resource_id.lower() == target_resource.lower() for g in used):
        return AlreadyCurrent(
            service_id=backend.service_id,
            kind=TargetKind.BACKEND,
            name=backend.backend_id,
            reference=target_resource,
        )
    newer = [g for g in used if _compare(g.version, candidate, index) == "newer"]
    if newer:
        return Superseded(
            service_id=backend.service_id,
            kind=TargetKind.BACKEND,
            name=backend.backend_id,
            in_use=newer[0].version,
            candidate=candidate.version,
        )
    to_ids: list[str] = []
    for cid in backend.certificate_ids:
        replaced = target_resource if any(references(cid, g.entity) for g in group) else cid
        if replaced not in to_ids:
            to_ids.append(replaced)
    return MoveBackend(
        service_id=backend.service_id,
        backend_id=backend.backend_id,
        from_ids=backend.certificate_ids,
        to_ids=tuple(to_ids),
    )


def _plan_retire(
    group: list[Binding],
    target_id: str,
    moves: list[Action],
    index: dict[str, CertificateVersion],
    retain_previous: int,
) -> list[Action]:
    """Entities beyond ``retain_previous`` (newest kept), only ones we created (suffixed: a
    policy may name the original entity by id) and only when no backend will reference them."""
    still_used = {
        m.name.lower() for m in moves if isinstance(m, Superseded)
    }  # backends we do not move keep their references
    pinned = [
        b
        for b in group
        if b.entity.certificate_id.lower() != target_id.lower()
        and not any(bk.backend_id.lower() in still_used for bk in b.backends)
    ]
    pinned.sort(key=lambda b: _rank(b, index), reverse=True)
    return [
        RetireEntity(
            service_id=b.entity.service_id,
            certificate_id=b.entity.certificate_id,
            secret=b.entity.secret_identifier,
            etag=b.entity.etag,
        )
        for b in pinned[retain_previous:]
        if _SUFFIX.match(b.entity.certificate_id)
    ]
