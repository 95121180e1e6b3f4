"""Resolve and plan: which bindings name the certificate, which version is the candidate, and
what would change (``docs/architecture.md``, "The rotation path", steps 1 and 2).

Reads only: the APIM listing (every service's certificate entities; backends only where the
certificate is bound) and, through the rollout, the certificate's version list. The decisions
(candidate, what is presented, superseded, the plan) are the domain's.
"""

from __future__ import annotations

from rotation.domain.bindings import Binding
from rotation.domain.decisions import presented, supersede
from rotation.domain.model import CertificateVersion, Decision, FindingCode, KeyVaultEvent
from rotation.domain.planning import (
    choose_candidate,
    discover_bindings,
    lists_backends,
    live_bindings,
    plan_rotation,
)
from rotation.rollout.state import Inventory, Outcome, RolloutContext

__all__ = ["bindings_in", "list_inventory", "plan"]


def list_inventory(ctx: RolloutContext, vault_url: str, name: str) -> Inventory:
    """Every configured service's certificate entities, and (blue-green only: the one strategy
    that moves backends) its backends where one of those entities names ``name``.

    Raises:
        RotationError: an APIM list failed.
    """
    inventory: Inventory = {}
    for service_id in ctx.apim_services:
        certs = tuple(ctx.gateway.list_certificates(service_id))
        mine = discover_bindings(vault_url, name, certs, ())
        wanted = mine and lists_backends(ctx.strategy, canary=ctx.canary is not None)
        backends = tuple(ctx.gateway.list_backends(service_id)) if wanted else ()
        inventory[service_id] = (certs, backends)
    return inventory


def bindings_in(inventory: Inventory, vault_url: str, name: str) -> tuple[Binding, ...]:
    """The bindings of ``name`` in a listing."""
    found: list[Binding] = []
    for certs, backends in inventory.values():
        found.extend(discover_bindings(vault_url, name, certs, backends))
    return tuple(found)


def plan(
    ctx: RolloutContext,
    out: Outcome,
    bindings: tuple[Binding, ...],
    versions: tuple[CertificateVersion, ...],
    event: KeyVaultEvent | None,
) -> bool:
    """Choose the candidate, note what is presented, and plan; False when the rollout stops
    here (no enabled version, or the event is superseded: ``out`` says why)."""
    out.candidate = candidate = choose_candidate(versions)
    if candidate is None:
        out.message = "the certificate has no enabled version"
        return False
    live = live_bindings(bindings, ctx.strategy)
    shown = presented(live, versions, candidate)
    out.in_use, out.previous_version = shown.versions, shown.previous_version
    if any(b.version is None for b in bindings):
        out.note(str(FindingCode.BINDING_VERSIONLESS))
    superseded = supersede(event, live, versions)
    if superseded is not None:
        out.decision, out.message = Decision.SUPERSEDED, superseded.message
        for action in superseded.actions:
            out.record(action)
        return False
    out.actions = plan_rotation(
        bindings=bindings, versions=versions, candidate=candidate,
        strategy=ctx.strategy, retain_previous=ctx.retain_previous,
    )  # fmt: skip
    return True
