"""APIs, their operations, and products for the ARM stand-in: the scopes policy documents live at.

Only what a policy needs of them is modelled: each is a named entity with ``properties`` (full
replace on PUT, ``If-Match`` optional, 201 created / 200 updated with an ``ETag``), GET/HEAD,
and paged lists with ``$filter``/``$top``/``$skip``. An API's PUT is a long-running operation
in the SDK (``begin_create_or_update``): the stand-in answers it at once with
``provisioningState: Succeeded`` and no ``Location``/``Azure-AsyncOperation`` header, which
ARM polling takes as done without polling. No import (``value``/``format``), revisions,
versions, schemas or gateways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devstack.arm_entities import (
    Call,
    arm_error,
    body_properties,
    entity_json,
    list_entities,
    precondition,
    store_entity,
    with_etag,
)
from devstack.server import Response
from devstack.state import Entity

__all__ = [
    "list_apis",
    "list_operations",
    "list_products",
    "put_api",
    "put_operation",
    "put_product",
]

_Fields = dict[str, Callable[[Entity], str | None]]


def _fields(*names: str) -> _Fields:
    fields: _Fields = {"name": lambda e: e.name}
    for name in names:
        fields[name] = lambda e, n=name: _text(e.properties.get(n))
    return fields


def _text(value: Any) -> str | None:
    return None if value is None else str(value).lower() if isinstance(value, bool) else str(value)


API_FIELDS = _fields("displayName", "description", "serviceUrl", "path", "isCurrent")
OPERATION_FIELDS = _fields("displayName", "method", "description", "urlTemplate")
PRODUCT_FIELDS = _fields("displayName", "description", "terms", "state")

# what APIM fills in when a PUT leaves it out
_API_DEFAULTS: dict[str, Any] = {
    "protocols": ["https"],
    "subscriptionRequired": True,
    "apiRevision": "1",
    "isCurrent": True,
    "type": "http",
}
_PRODUCT_DEFAULTS: dict[str, Any] = {"subscriptionRequired": True, "state": "notPublished"}


def _put(
    call: Call, required: tuple[str, ...], completed: Callable[[dict[str, Any]], Any]
) -> Response:
    """PUT: validate the required properties, check ``If-Match``, store, 201 or 200."""
    app, request, service, store, key, route = call.unpack()
    props = body_properties(request)
    if isinstance(props, Response):
        return props
    missing = [name for name in required if not isinstance(props.get(name), str)]
    if missing:
        return arm_error(
            400, "ValidationError", f"A {route.kind[:-1]} needs {', '.join(missing)} (strings)."
        )
    with app.state.lock:
        failed = precondition(request, store.get(key), required=False)
        if failed is not None:
            return failed
        entity, status = store_entity(app, store, key, route.name, completed(props))
        return with_etag(status, entity_json(app, service, entity, route), entity)


def put_api(call: Call) -> Response:
    """PUT an API (``displayName`` and ``path`` required): answered complete, as a finished LRO."""
    return _put(
        call,
        ("displayName", "path"),
        lambda p: {**_API_DEFAULTS, **p, "provisioningState": "Succeeded"},
    )


def put_operation(call: Call) -> Response:
    """PUT an operation of an existing API (``displayName``, ``method``, ``urlTemplate``)."""
    return _put(
        call,
        ("displayName", "method", "urlTemplate"),
        lambda p: {"templateParameters": [], "responses": [], **p},
    )


def put_product(call: Call) -> Response:
    """PUT a product (``displayName`` required)."""
    return _put(call, ("displayName",), lambda p: {**_PRODUCT_DEFAULTS, **p})


def list_apis(call: Call) -> Response:
    """GET the API collection (filters: name, displayName, description, serviceUrl, path, isCurrent)."""
    return list_entities(call, API_FIELDS)


def list_operations(call: Call) -> Response:
    """GET an API's operations (filters: name, displayName, method, description, urlTemplate)."""
    return list_entities(call, OPERATION_FIELDS, within=f"{call.route.api.lower()}/")


def list_products(call: Call) -> Response:
    """GET the product collection (filters: name, displayName, description, terms, state)."""
    return list_entities(call, PRODUCT_FIELDS)
