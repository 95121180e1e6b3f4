"""Survey every binding for ``certrotate status``: reads only (APIM lists, one version list per
bound certificate); the status of each binding is decided by ``rotation.domain.status``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rotation.domain.bindings import bound_certificates
from rotation.domain.status import BindingStatus, binding_status
from rotation.rollout.resolve import bindings_in
from rotation.rollout.state import Inventory, RolloutContext

__all__ = ["survey"]


def survey(
    ctx: RolloutContext, vaults: Sequence[str], *, now: datetime, alert_days: int
) -> tuple[BindingStatus, ...]:
    """One ``BindingStatus`` per APIM certificate entity naming a certificate in a configured
    vault (``vaults``: the configured vault URLs), by service, entity.

    Raises:
        RotationError: an APIM or Key Vault read failed.
    """
    inventory: Inventory = {}
    for service_id in ctx.apim_services:
        certs = tuple(ctx.gateway.list_certificates(service_id))
        inventory[service_id] = (certs, tuple(ctx.gateway.list_backends(service_id)))
    entities = [c for certs, _ in inventory.values() for c in certs]
    rows: list[BindingStatus] = []
    for vault, name in bound_certificates(vaults, entities):
        versions = tuple(ctx.source.list_certificate_versions(vault, name))
        rows.extend(
            binding_status(b, versions, vault=vault, now=now, alert_days=alert_days)
            for b in bindings_in(inventory, vault, name)
        )
    rows.sort(key=lambda r: (r.service.lower(), r.entity.lower()))
    return tuple(rows)
