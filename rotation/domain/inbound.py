"""Inbound mTLS: the policy documents that pin a certificate's thumbprints, and the decisions
about them (``docs/architecture.md``, "Inbound identities").

Callers present client certificates to API Management, which checks them with the
``validate-client-certificate`` policy at global, product, API or operation scope. When Key Vault
renews such a certificate, every policy document that pins a thumbprint of one of its versions
learns the new thumbprint (next to the old one); after the overlap, or once the old certificate
has expired, reconcile removes the old one, never the last. The byte-preserving edits themselves
are ``rotation.domain.policies``'; this module holds the values the port speaks in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["PolicyDocument", "PolicyScope"]


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
