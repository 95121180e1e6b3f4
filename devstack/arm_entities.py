"""Operations on APIM entities for the ARM stand-in: GET/HEAD/PUT/PATCH/DELETE, lists, policies.

Each handler takes ``(app, request, service, store, key, match)`` as routed by ``devstack.arm``.
ETags change on every write; a mismatching ``If-Match`` gets 412 without ``Retry-After``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devstack import apim
from devstack.server import Request, Response, json_response
from devstack.state import ApimService, Entity, Store

if TYPE_CHECKING:
    from devstack.arm import ArmApp


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


def with_etag(status: int, payload: Any, entity: Entity) -> Response:
    return json_response(status, payload, {"ETag": entity.etag})


def not_found(match: re.Match[str]) -> Response:
    return arm_error(404, "ResourceNotFound", f"The {_kind(match)} entity was not found.")


def precondition(request: Request, existing: Entity | None, *, required: bool) -> Response | None:
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


def body_properties(request: Request) -> dict[str, Any] | Response:
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
            return not_found(match)
        payload = entity_json(app, service, entity, match)
        if _kind(match) == "policies" and request.query.get("format"):
            payload["properties"] = {**payload["properties"], "format": request.query["format"]}
        return with_etag(200, payload, entity)


def head(call: Call) -> Response:
    """HEAD: 200 with the ETag, no body."""
    app, _, _, store, key, match = call.unpack()
    with app.state.lock:
        entity = store.get(key)
        return not_found(match) if entity is None else Response(200, b"", {"ETag": entity.etag})


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
        failed = precondition(request, existing, required=True)
        if failed is not None:
            return failed
        del store[key]
        return Response(200)


def store_entity(
    app: ArmApp, store: Store, key: str, name: str, properties: dict[str, Any]
) -> tuple[Entity, int]:
    existing = store.get(key)
    entity = Entity(existing.name if existing else name, properties, app.state.next_etag())
    store[key] = entity
    return entity, 200 if existing else 201


def list_entities(call: Call, fields: Any) -> Response:
    """One page of a collection. The filtered list is the store's cached view for this
    ``$filter``/``isKeyVaultRefreshFailed``, so each page costs O(page) while nothing changes."""
    app, request, service, store, _, match = call.unpack()
    expression = request.query.get("$filter") or ""
    failed_only = request.query.get("isKeyVaultRefreshFailed", "").lower()
    try:
        keep = apim.compile_filter(expression, fields) if expression else None
        want = {"true": True, "false": False}.get(failed_only)

        def build(entities: Iterable[Entity]) -> list[Entity]:
            return [
                e
                for e in entities
                if (keep is None or keep(e)) and (want is None or _refresh_failed(e) == want)
            ]

        with app.state.lock:
            items = store.view((expression, want), build)
            page, next_link = apim.paginate(items, request.query, request.base_url, request.path)
            payload: dict[str, Any] = {
                "value": [entity_json(app, service, e, match) for e in page],
                "count": len(items),
            }
    except apim.FilterError as exc:
        return arm_error(400, "ValidationError", str(exc))
    if next_link:
        payload["nextLink"] = next_link
    return json_response(200, payload)


def _refresh_failed(entity: Entity) -> bool:
    key_vault = entity.properties.get("keyVault") or {}
    return bool(key_vault) and (key_vault.get("lastStatus") or {}).get("code") != "Success"


def list_backends(call: Call) -> Response:
    """GET the backend collection (filters: name, title, url)."""
    return list_entities(call, BACKEND_FIELDS)


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
    props = body_properties(request)
    if isinstance(props, Response):
        return props
    invalid = _check_backend(props)
    if invalid is not None:
        return invalid
    with app.state.lock:
        failed = precondition(request, store.get(key), required=False)
        if failed is not None:
            return failed
        entity, status = store_entity(app, store, key, match["id"], props)
        return with_etag(status, entity_json(app, service, entity, match), entity)


def patch_backend(call: Call) -> Response:
    """PATCH a backend (``If-Match`` required): properties merge like a JSON merge patch."""
    app, request, service, store, key, match = call.unpack()
    props = body_properties(request)
    if isinstance(props, Response):
        return props
    with app.state.lock:
        existing = store.get(key)
        if existing is None:
            return not_found(match)
        failed = precondition(request, existing, required=True)
        if failed is not None:
            return failed
        merged = apim.merge_patch(existing.properties, props)
        invalid = _check_backend(merged)
        if invalid is not None:
            return invalid
        existing.properties = merged
        existing.etag = app.state.next_etag()
        return with_etag(200, entity_json(app, service, existing, match), existing)


def put_policy(call: Call) -> Response:
    """PUT a policy (``xml`` or ``rawxml``; the text is stored as written)."""
    app, request, service, store, key, match = call.unpack()
    props = body_properties(request)
    if isinstance(props, Response):
        return props
    fmt = props.get("format") or "xml"
    if not isinstance(props.get("value"), str) or fmt not in ("xml", "rawxml"):
        return arm_error(
            400, "ValidationError", "A policy needs a string 'value' and format xml or rawxml."
        )
    with app.state.lock:
        failed = precondition(request, store.get(key), required=False)
        if failed is not None:
            return failed
        entity, status = store_entity(
            app, store, key, "policy", {"value": props["value"], "format": fmt}
        )
        return with_etag(status, entity_json(app, service, entity, match), entity)
