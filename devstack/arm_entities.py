"""Operations on APIM entities for the ARM stand-in: GET/HEAD/PUT/PATCH/DELETE, lists, backends.

Each handler takes a ``Call`` (app, request, service, store, key, route) as routed by
``devstack.arm``; ``devstack.arm_certificates``, ``devstack.arm_apis`` and
``devstack.arm_policies`` hold the kinds with more to them.
ETags change on every write; a mismatching ``If-Match`` gets 412 without ``Retry-After``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devstack import apim
from devstack.server import Request, Response, json_response
from devstack.state import ApimService, Entity, Store

if TYPE_CHECKING:
    from devstack.arm import ArmApp


_SCOPE_TYPES = {
    "global": "Microsoft.ApiManagement/service/policies",
    "product": "Microsoft.ApiManagement/service/products/policies",
    "api": "Microsoft.ApiManagement/service/apis/policies",
    "operation": "Microsoft.ApiManagement/service/apis/operations/policies",
}


@dataclass(frozen=True, slots=True)
class Route:
    """What a request path addresses below the service.

    ``kind`` is ``certificates``, ``backends``, ``apis``, ``operations``, ``products`` or
    ``policies``; ``name`` the entity id as written (``""`` for the collection; ``policy`` for
    a policy document); ``api``/``operation``/``product`` the parents named in the path (an
    operation's API; a policy's scope); ``action`` ``refreshSecret`` for that POST.
    """

    kind: str
    name: str = ""
    api: str = ""
    operation: str = ""
    product: str = ""
    action: str = ""

    @property
    def scope(self) -> str:
        """A policy's scope: ``global``, ``product``, ``api`` or ``operation``."""
        if self.product:
            return "product"
        if self.operation:
            return "operation"
        return "api" if self.api else "global"

    def store_and_key(self, service: ApimService) -> tuple[Store, str]:
        """The store holding the addressed entity, and its key there (see ``ApimService``)."""
        if self.kind == "policies":
            return {
                "global": (service.policies, ""),
                "api": (service.policies, self.api.lower()),
                "product": (service.product_policies, self.product.lower()),
                "operation": (
                    service.operation_policies,
                    f"{self.api}/{self.operation}".lower(),
                ),
            }[self.scope]
        if self.kind == "operations":
            return service.operations, f"{self.api}/{self.name}".lower() if self.name else ""
        return service.store(self.kind), self.name.lower()


@dataclass(slots=True)
class Call:
    """One routed request: the app, the request, and the entity it addresses."""

    app: ArmApp
    request: Request
    service: ApimService
    store: Store
    key: str
    route: Route

    def unpack(self) -> tuple[ArmApp, Request, ApimService, Store, str, Route]:
        """All fields, in declaration order."""
        return self.app, self.request, self.service, self.store, self.key, self.route


BACKEND_FIELDS: dict[str, Callable[[Entity], str | None]] = {
    "name": lambda e: e.name,
    "title": lambda e: e.properties.get("title"),
    "url": lambda e: e.properties.get("url"),
}


def arm_error(status: int, code: str, message: str) -> Response:
    """ARM's error shape ``{"error": {"code", "message", "details", "additionalInfo"}}``."""
    payload = {"error": {"code": code, "message": message, "details": [], "additionalInfo": []}}
    return json_response(status, payload, {"x-ms-request-id": str(uuid.uuid4())})


def entity_json(app: ArmApp, service: ApimService, entity: Entity, route: Route) -> dict[str, Any]:
    """The ARM contract of an entity (id, type, name, properties)."""
    base = app.service_id(service.name)
    if route.kind == "policies":
        prefix = {
            "global": base,
            "product": f"{base}/products/{route.product}",
            "api": f"{base}/apis/{route.api}",
            "operation": f"{base}/apis/{route.api}/operations/{route.operation}",
        }[route.scope]
        return {
            "id": f"{prefix}/policies/policy",
            "type": _SCOPE_TYPES[route.scope],
            "name": "policy",
            "properties": entity.properties,
        }
    if route.kind == "operations":
        return {
            "id": f"{base}/apis/{route.api}/operations/{entity.name}",
            "type": "Microsoft.ApiManagement/service/apis/operations",
            "name": entity.name,
            "properties": entity.properties,
        }
    return {
        "id": f"{base}/{route.kind}/{entity.name}",
        "type": f"Microsoft.ApiManagement/service/{route.kind}",
        "name": entity.name,
        "properties": entity.properties,
    }


def with_etag(status: int, payload: Any, entity: Entity) -> Response:
    return json_response(status, payload, {"ETag": entity.etag})


def not_found(route: Route) -> Response:
    """ARM's 404 for the addressed entity."""
    return arm_error(404, "ResourceNotFound", f"The {route.kind} entity was not found.")


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
    app, _, service, store, key, route = call.unpack()
    with app.state.lock:
        entity = store.get(key)
        if entity is None:
            return not_found(route)
        return with_etag(200, entity_json(app, service, entity, route), entity)


def head(call: Call) -> Response:
    """HEAD: 200 with the ETag, no body."""
    app, _, _, store, key, route = call.unpack()
    with app.state.lock:
        entity = store.get(key)
        return not_found(route) if entity is None else Response(200, b"", {"ETag": entity.etag})


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


def list_entities(call: Call, fields: Any, *, within: str = "") -> Response:
    """One page of a collection (``within``: only keys with that prefix, an API's operations).
    The filtered list is the store's cached view for this ``$filter``/``isKeyVaultRefreshFailed``,
    so each page costs O(page) while nothing changes."""
    app, request, service, store, _, route = call.unpack()
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

        def build_within(_: Iterable[Entity]) -> list[Entity]:
            return build(e for k, e in store.items() if k.startswith(within))

        with app.state.lock:
            items = store.view((within, expression, want), build_within if within else build)
            page, next_link = apim.paginate(items, request.query, request.base_url, request.path)
            payload: dict[str, Any] = {
                "value": [entity_json(app, service, e, route) for e in page],
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
    app, request, service, store, key, route = call.unpack()
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
        entity, status = store_entity(app, store, key, route.name, props)
        return with_etag(status, entity_json(app, service, entity, route), entity)


def patch_backend(call: Call) -> Response:
    """PATCH a backend (``If-Match`` required): properties merge like a JSON merge patch."""
    app, request, service, store, key, route = call.unpack()
    props = body_properties(request)
    if isinstance(props, Response):
        return props
    with app.state.lock:
        existing = store.get(key)
        if existing is None:
            return not_found(route)
        failed = precondition(request, existing, required=True)
        if failed is not None:
            return failed
        merged = apim.merge_patch(existing.properties, props)
        invalid = _check_backend(merged)
        if invalid is not None:
            return invalid
        existing.properties = merged
        existing.etag = app.state.next_etag()
        return with_etag(200, entity_json(app, service, existing, route), existing)
