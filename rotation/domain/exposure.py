"""Which backends a plan exposes to the candidate: the canary's targets (``docs/canary.md``).

Pure: from the plan's actions and the bindings, the backends to probe before any write, each
with the version it presents today (the canary's baseline), and the entities no backend
references (``canary.skipped``):

- ``pin`` / ``follow``: the backends that reference an entity the plan re-points or refreshes;
- ``blue-green``: the backends the plan moves to the new entity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rotation.domain.actions import Action, MoveBackend, PinEntity, RefreshEntity
from rotation.domain.bindings import Binding, references
from rotation.domain.canary import CanaryTarget
from rotation.domain.follow import presented_version
from rotation.domain.model import ApimBackend, CertificateVersion

__all__ = ["CanaryCheck", "canary_checks"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryCheck:
    """One canary target and the version it presents now (None: none other than the
    candidate, or it cannot be told)."""

    target: CanaryTarget
    current: str | None


def _key(service_id: str, name: str) -> tuple[str, str]:
    return (service_id.rstrip("/").lower(), name.lower())


def _service_name(service_id: str) -> str:
    return service_id.rstrip("/").rsplit("/", 1)[-1]


def canary_checks(
    actions: Iterable[Action],
    bindings: Sequence[Binding],
    versions: Sequence[CertificateVersion],
    candidate: CertificateVersion,
) -> tuple[CanaryCheck, ...]:
    """The backends ``actions`` expose to ``candidate`` (each once, in plan order), plus one
    backend-less target per changed entity that no backend references."""
    entities = {_key(b.entity.service_id, b.entity.certificate_id): b for b in bindings}
    backends = {_key(bk.service_id, bk.backend_id): bk for b in bindings for bk in b.backends}
    checks: dict[tuple[str, ...], CanaryCheck] = {}

    def add_backend(backend: ApimBackend) -> None:
        key = ("backend", *_key(backend.service_id, backend.backend_id))
        if key not in checks:
            current = _current(backend, bindings, versions, candidate)
            checks[key] = CanaryCheck(target=CanaryTarget.for_backend(backend), current=current)

    for action in actions:
        if isinstance(action, PinEntity | RefreshEntity):
            binding = entities.get(_key(action.service_id, action.certificate_id))
            if binding is None:
                continue
            for backend in binding.backends:
                add_backend(backend)
            if not binding.backends:
                key = ("entity", *_key(action.service_id, action.certificate_id))
                target = CanaryTarget(
                    service=_service_name(action.service_id), backend=None, url=""
                )
                checks.setdefault(key, CanaryCheck(target=target, current=None))
        elif isinstance(action, MoveBackend):
            moved = backends.get(_key(action.service_id, action.backend_id))
            if moved is not None:
                add_backend(moved)
    return tuple(checks.values())


def _current(
    backend: ApimBackend,
    bindings: Sequence[Binding],
    versions: Sequence[CertificateVersion],
    candidate: CertificateVersion,
) -> str | None:
    """The newest version other than the candidate that the backend's entities present."""
    shown = [
        presented_version(b, versions)
        for b in bindings
        if b.entity.service_id.rstrip("/").lower() == backend.service_id.rstrip("/").lower()
        and any(references(cid, b.entity) for cid in backend.certificate_ids)
    ]
    older = [v for v in shown if v is not None and v.version != candidate.version]
    return max(older, key=lambda v: (v.created, v.version)).version if older else None
