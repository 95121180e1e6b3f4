"""Operations on APIM entities for the ARM stand-in: GET/HEAD/PUT/PATCH/DELETE, lists, refresh.

Each handler takes ``(app, request, service, store, key, match)`` as routed by ``devstack.arm``.
ETags change on every write; a mismatching ``If-Match`` gets 412 without ``Retry-After``.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devstack import apim
from devstack.bundles import BundleError, parse_bundle, subject_string, thumbprint_hex
from devstack.server import Request, Response, json_response
from devstack.state import ApimService, Entity

if TYPE_CHECKING:
    from devstack.arm import ArmApp

Store = dict[str, Entity]


@dataclass(slots=True)
class Call:
    """One routed request: the app, the request, and the entity it addresses."""

    app: ArmApp
    request: Request
    service: ApimService
    store: Store
    key: str
    match: re.Match[str]

    def unpack(self) -> tuple[ArmApp, Request, ApimService, Store, str, re.Match[str]]:
        """All fields, in declaration order."""
        return self.app, self.request, self.service, self.store, self.key, self.match


CERT_FIELDS: dict[str, Callable[[Entity], str | None]] = {
    "name": lambda e: e.name,
    "subject": lambda e: e.properties.get("subject"),
    "thumbprint": lambda e: e.properties.get("thumbprint"),
    "expirationDate": lambda e: e.properties.get("expirationDate"),
}
BACKEND_FIELDS: dict[str, Callable[[Entity], str | None]] = {
    "name": lambda e: e.name,
    "title": lambda e: e.properties.get("title"),
    "url": lambda e: e.properties.get("url"),
}


def arm_error(status: int, code: str, message: str) -> Response:
    """ARM's error shape ``{"error": {"code", "message", "details", "additionalInfo"}}``."""
    payload = {"error": {"code": code, "message": message, "details": [], "additionalInfo": []}}
    return json_response(status, payload, {"x-ms-request-id": str(uuid.uuid4())})


def _kind(match: re.Match[str]) -> str:
    return (match.groupdict().get("kind") or "policies").lower()


def entity_json(
    app: ArmApp, service: ApimService, entity: Entity, match: re.Match[str]
) -> dict[str, Any]:
    """The ARM contract of an entity (id, type, name, properties)."""
    kind = _kind(match)
    base = app.service_id(service.name)
    if kind == "policies":
        api = match.groupdict().get("api")
        prefix = f"{base}/apis/{api}" if api else base
        rtype = (
            "Microsoft.ApiManagement/service/apis/policies"
            if api
            else "Microsoft.ApiManagement/service/policies"
        )
        return {
            "id": f"{prefix}/policies/policy",
            "type": rtype,
            "name": "policy",
            "properties": entity.properties,
        }
    return {
        "id": f"{base}/{kind}/{entity.name}",
        "type": f"Microsoft.ApiManagement/service/{kind}",
        "name": entity.name,
        "properties": entity.properties,
    }


def _with_etag(status: int, payload: Any, entity: Entity) -> Response:
    return json_response(status, payload, {"ETag": entity.etag})


def _not_found(match: re.Match[str]) -> Response:
    return arm_error(404, "ResourceNotFound", f"The {_kind(match)} entity was not found.")


def _precondition(request: Request, existing: Entity | None, *, required: bool) -> Response | None:
    header = request.headers.get("if-match")
    if header is None:
        if required:
            return arm_error(
                400, "ValidationError", "The If-Match header is required for this operation."
            )
        return None
    if header.strip() == "*" or (
        existing is not None and header.strip().strip('"') == existing.etag.strip('"')
    ):
        return None
    return arm_error(
        412, "PreconditionFailed", "The entity's ETag does not match the If-Match header."
    )


def _body_properties(request: Request) -> dict[str, Any] | Response:
    try:
        body = request.json()
    except ValueError:
        return arm_error(400, "ValidationError", "The request body is not valid JSON.")
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        return arm_error(
            400, "ValidationError", "The request body must carry a 'properties' object."
        )
    properties: dict[str, Any] = body["properties"]
    return properties


def get(call: Call) -> Response:
    """GET one entity with its ETag."""
    app, request, service, store, key, match = call.unpack()
    with app.state.lock:
        entity = store.get(key)
        if entity is None:
            return _not_found(match)
        payload = entity_json(app, service, entity, match)
        if _kind(match) == "policies" and request.query.get("format"):
            payload["properties"] = {**payload["properties"], "format": request.query["format"]}
        return _with_etag(200, payload, entity)


def head(call: Call) -> Response:
    """HEAD: 200 with the ETag, no body."""
    app, _, _, store, key, match = call.unpack()
    with app.state.lock:
        entity = store.get(key)
        return _not_found(match) if entity is None else Response(200, b"", {"ETag": entity.etag})


def delete(call: Call) -> Response:
    """DELETE with a required ``If-Match``: 200, or 204 when already gone."""
    app, request, _, store, key, _ = call.unpack()
    if "if-match" not in request.headers:
        return arm_error(
            400, "ValidationError", "The If-Match header is required for this operation."
        )
    with app.state.lock:
        existing = store.get(key)
        if existing is None:
            return Response(204)
        failed = _precondition(request, existing, required=True)
        if failed is not None:
            return failed
        del store[key]
        return Response(200)


def _store(
    app: ArmApp, store: Store, key: str, name: str, properties: dict[str, Any]
) -> tuple[Entity, int]:
    existing = store.get(key)
    entity = Entity(existing.name if existing else name, properties, app.state.next_etag())
    store[key] = entity
    return entity, 200 if existing else 201


def put_certificate(call: Call) -> Response:
    """PUT from a Key Vault reference (fetched like APIM's identity would) or from data+password."""
    app, request, service, store, key, match = call.unpack()
    props = _body_properties(request)
    if isinstance(props, Response):
        return props
    with app.state.lock:
        existing = store.get(key)
        failed = _precondition(request, existing, required=False)
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
        entity, status = _store(app, store, key, match["id"], computed)
        return _with_etag(status, entity_json(app, service, entity, match), entity)


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
    app, request, service, store, key, match = call.unpack()
    with app.state.lock:
        existing = store.get(key)
        if existing is None:
            return _not_found(match)
        key_vault = existing.properties.get("keyVault")
        if not isinstance(key_vault, dict):
            return arm_error(400, "ValidationError", "The certificate is not backed by Key Vault.")
        computed = _from_key_vault(app, request, key_vault, existing)
        assert isinstance(computed, dict)
        existing.properties = computed
        existing.etag = app.state.next_etag()
        return _with_etag(200, entity_json(app, service, existing, match), existing)


def _list(call: Call, fields: Any) -> Response:
    app, request, service, store, _, match = call.unpack()
    with app.state.lock:
        items = list(store.values())
    try:
        if request.query.get("$filter"):
            keep = apim.compile_filter(request.query["$filter"], fields)
            items = [e for e in items if keep(e)]
        failed_only = request.query.get("isKeyVaultRefreshFailed", "").lower()
        if failed_only in ("true", "false"):
            want = failed_only == "true"
            items = [e for e in items if _refresh_failed(e) == want]
        page, next_link = apim.paginate(items, request.query, request.base_url, request.path)
    except apim.FilterError as exc:
        return arm_error(400, "ValidationError", str(exc))
    payload: dict[str, Any] = {
        "value": [entity_json(app, service, e, match) for e in page],
        "count": len(items),
    }
    if next_link:
        payload["nextLink"] = next_link
    return json_response(200, payload)


def _refresh_failed(entity: Entity) -> bool:
    key_vault = entity.properties.get("keyVault") or {}
    return bool(key_vault) and (key_vault.get("lastStatus") or {}).get("code") != "Success"


def list_certificates(call: Call) -> Response:
    """GET the certificate collection (filters: name, subject, thumbprint, expirationDate)."""
    return _list(call, CERT_FIELDS)


def list_backends(call: Call) -> Response:
    """GET the backend collection (filters: name, title, url)."""
    return _list(call, BACKEND_FIELDS)


def _check_backend(props: dict[str, Any]) -> Response | None:
    if not props.get("url") or props.get("protocol") not in ("http", "soap"):
        return arm_error(
            400, "ValidationError", "A backend needs 'url' and 'protocol' (http or soap)."
        )
    ids = (props.get("credentials") or {}).get("certificateIds") or []
    if not isinstance(ids, list) or len(ids) > 32:
        return arm_error(
            400, "ValidationError", "credentials.certificateIds must be a list of at most 32 ids."
        )
    return None


def put_backend(call: Call) -> Response:
    """PUT a backend: full replace of ``properties``; 201 created, 200 updated."""
    app, request, service, store, key, match = call.unpack()
    props = _body_properties(request)
    if isinstance(props, Response):
        return props
    invalid = _check_backend(props)
    if invalid is not None:
        return invalid
    with app.state.lock:
        failed = _precondition(request, store.get(key), required=False)
        if failed is not None:
            return failed
        entity, status = _store(app, store, key, match["id"], props)
        return _with_etag(status, entity_json(app, service, entity, match), entity)


def patch_backend(call: Call) -> Response:
    """PATCH a backend (``If-Match`` required): properties merge like a JSON merge patch."""
    app, request, service, store, key, match = call.unpack()
    props = _body_properties(request)
    if isinstance(props, Response):
        return props
    with app.state.lock:
        existing = store.get(key)
        if existing is None:
            return _not_found(match)
        failed = _precondition(request, existing, required=True)
        if failed is not None:
            return failed
        merged = apim.merge_patch(existing.properties, props)
        invalid = _check_backend(merged)
        if invalid is not None:
            return invalid
        existing.properties = merged
        existing.etag = app.state.next_etag()
        return _with_etag(200, entity_json(app, service, existing, match), existing)


def put_policy(call: Call) -> Response:
    """PUT a policy (``xml`` or ``rawxml``; the text is stored as written)."""
    app, request, service, store, key, match = call.unpack()
    props = _body_properties(request)
    if isinstance(props, Response):
        return props
    fmt = props.get("format") or "xml"
    if not isinstance(props.get("value"), str) or fmt not in ("xml", "rawxml"):
        return arm_error(
            400, "ValidationError", "A policy needs a string 'value' and format xml or rawxml."
        )
    with app.state.lock:
        failed = _precondition(request, store.get(key), required=False)
        if failed is not None:
            return failed
        entity, status = _store(
            app, store, key, "policy", {"value": props["value"], "format": fmt}
        )
        return _with_etag(status, entity_json(app, service, entity, match), entity)
