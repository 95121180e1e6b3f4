"""Survey every binding and inbound identity for ``certrotate status``: reads only (APIM lists,
one policy listing per service when inbound certificates are configured, one version list per
certificate); the status of each row is decided by ``rotation.domain.status``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rotation.domain.bindings import bound_certificates, vault_key
from rotation.domain.status import BindingStatus, IdentityStatus, binding_status, identity_status
from rotation.rollout.inbound import list_policies
from rotation.rollout.resolve import bindings_in
from rotation.rollout.state import Inventory, RolloutContext

__all__ = ["survey", "survey_inbound"]


def survey(
    ctx: RolloutContext,
    vaults: Sequence[str],
    *,
    now: datetime,
    alert_days: int,
    inbound: Sequence[tuple[str, str]] = (),
) -> tuple[BindingStatus | IdentityStatus, ...]:
    """One ``BindingStatus`` per APIM certificate entity naming a certificate in a configured
    vault (``vaults``: the configured vault URLs), by service, entity; then the inbound
    identities of the ``inbound`` (vault URL, certificate) pairs (``survey_inbound``).

    Raises:
        RotationError: an APIM or Key Vault read failed.
    """
    inventory: Inventory = {}
    for service_id in ctx.apim_services:
        certs = tuple(ctx.gateway.list_certificates(service_id))
        inventory[service_id] = (certs, tuple(ctx.gateway.list_backends(service_id)))
    entities = [c for certs, _ in inventory.values() for c in certs]
    inbound_keys = {(vault_key(v), n.lower()) for v, n in inbound}
    rows: list[BindingStatus] = []
    for vault, name in bound_certificates(vaults, entities):
        if (vault_key(vault), name.lower()) in inbound_keys:
            continue  # an inbound certificate: certrotate keeps its policy pins, not its entities
        versions = tuple(ctx.source.list_certificate_versions(vault, name))
        rows.extend(
            binding_status(b, versions, vault=vault, now=now, alert_days=alert_days)
            for b in bindings_in(inventory, vault, name)
        )
    rows.sort(key=lambda r: (r.service.lower(), r.entity.lower()))
    configured = {vault_key(v) for v in vaults}
    ours = [(v, n) for v, n in inbound if vault_key(v) in configured]
    return (*rows, *survey_inbound(ctx, ours, now=now, alert_days=alert_days))


def survey_inbound(
    ctx: RolloutContext,
    certificates: Sequence[tuple[str, str]],
    *,
    now: datetime,
    alert_days: int,
) -> tuple[IdentityStatus, ...]:
    """One ``IdentityStatus`` per (policy document, pinned thumbprint of a version of one of
    ``certificates``), by service, certificate, policy, version age: one ``list_policies`` per
    configured service and one version list per certificate, none when ``certificates`` is
    empty.

    Raises:
        RotationError: an APIM or Key Vault read failed, or a policy document that mentions a
            pinned thumbprint cannot be parsed (``PolicyDocumentError``).
    """
    if not certificates or ctx.inbound is None:
        return ()
    listing = list_policies(ctx.inbound, ctx.apim_services)
    documents = [d for docs in listing.values() for d in docs]
    rows: list[IdentityStatus] = []
    for vault, name in certificates:
        versions = tuple(ctx.source.list_certificate_versions(vault, name))
        for document in documents:
            found = identity_status(
                document, versions, vault=vault, certificate=name, now=now, alert_days=alert_days
            )
            rows.extend(found)
    # Stable: within a document, oldest version first (as identity_status gives them).
    rows.sort(key=lambda r: (r.service.lower(), r.certificate.lower(), r.resource.lower()))
    return tuple(rows)
