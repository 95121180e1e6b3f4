"""Certificate entities for the ARM stand-in: PUT from Key Vault or data, refreshSecret, list.

Like APIM with its managed identity, a Key Vault-backed PUT or refresh fetches the secret (here an
in-process lookup in the Key Vault stand-in) and computes ``subject``, ``thumbprint`` and
``expirationDate``; a failed fetch on an existing entity only changes ``keyVault.lastStatus``.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devstack import apim
from devstack.arm_entities import (
    Call,
    arm_error,
    body_properties,
    entity_json,
    list_entities,
    not_found,
    precondition,
    store_entity,
    with_etag,
)
from devstack.bundles import BundleError, parse_bundle, subject_string, thumbprint_hex
from devstack.server import Request, Response
from devstack.state import Entity

if TYPE_CHECKING:
    from devstack.arm import ArmApp

__all__ = ["list_certificates", "put_certificate", "refresh_secret"]

CERT_FIELDS: dict[str, Callable[[Entity], str | None]] = {
    "name": lambda e: e.name,
    "subject": lambda e: e.properties.get("subject"),
    "thumbprint": lambda e: e.properties.get("thumbprint"),
    "expirationDate": lambda e: e.properties.get("expirationDate"),
}


def put_certificate(call: Call) -> Response:
    """PUT from a Key Vault reference (fetched like APIM's identity would) or from data+password."""
    app, request, service, store, key, route = call.unpack()
    props = body_properties(request)
    if isinstance(props, Response):
        return props
    with app.state.lock:
        existing = store.get(key)
        failed = precondition(request, existing, required=False)
        if failed is not None:
            return failed
        if isinstance(props.get("keyVault"), dict) and props["keyVault"].get("secretIdentifier"):
            computed = _from_key_vault(app, request, props["keyVault"], existing)
        elif props.get("data"):
            computed = _from_data(str(props["data"]), props.get("password"))
        else:
            return arm_error(
                400, "ValidationError", "Either keyVault.secretIdentifier or data is required."
            )
        if isinstance(computed, Response):
            return computed
        entity, status = store_entity(app, store, key, route.name, computed)
        return with_etag(status, entity_json(app, service, entity, route), entity)


def _from_key_vault(
    app: ArmApp, request: Request, key_vault: dict[str, Any], existing: Entity | None
) -> dict[str, Any] | Response:
    identifier = str(key_vault["secretIdentifier"])
    entry, why = apim.fetch_from_key_vault(app.state, identifier)
    if app.refresh_fault(request):
        entry, why = None, "Injected fault: Key Vault could not be reached."
    now = app.state.clock()
    if entry is None and existing is None:
        return arm_error(
            400, "ValidationError", f"Cannot fetch the certificate from Key Vault: {why}"
        )
    if entry is None:
        assert existing is not None
        kept = {
            k: v
            for k, v in existing.properties.items()
            if k in ("subject", "thumbprint", "expirationDate")
        }
        status = apim.status_failed(now, why)
    else:
        kept = {
            "subject": entry.subject,
            "thumbprint": entry.thumbprint,
            "expirationDate": _iso(entry.exp),
        }
        status = apim.status_success(now)
    client_id = key_vault.get("identityClientId")
    return {
        **kept,
        "keyVault": {
            "secretIdentifier": identifier,
            "identityClientId": client_id,
            "lastStatus": status,
        },
    }


def _from_data(data: str, password: Any) -> dict[str, Any] | Response:
    try:
        raw = base64.b64decode(data, validate=True)
        bundle = parse_bundle(raw, password=str(password).encode() if password else None)
    except (ValueError, BundleError):
        return arm_error(400, "ValidationError", "The certificate data or password is invalid.")
    leaf = bundle.leaf
    return {
        "subject": subject_string(leaf),
        "thumbprint": thumbprint_hex(leaf),
        "expirationDate": _iso(int(leaf.not_valid_after_utc.timestamp())),
    }


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def refresh_secret(call: Call) -> Response:
    """POST refreshSecret: re-fetch from Key Vault; a failure shows in ``lastStatus`` only."""
    app, request, service, store, key, route = call.unpack()
    with app.state.lock:
        existing = store.get(key)
        if existing is None:
            return not_found(route)
        key_vault = existing.properties.get("keyVault")
        if not isinstance(key_vault, dict):
            return arm_error(400, "ValidationError", "The certificate is not backed by Key Vault.")
        computed = _from_key_vault(app, request, key_vault, existing)
        assert isinstance(computed, dict)
        existing.properties = computed
        existing.etag = app.state.next_etag()
        return with_etag(200, entity_json(app, service, existing, route), existing)


def list_certificates(call: Call) -> Response:
    """GET the certificate collection (filters: name, subject, thumbprint, expirationDate)."""
    return list_entities(call, CERT_FIELDS)
