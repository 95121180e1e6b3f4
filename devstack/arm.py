"""The ARM stand-in for API Management: certificates, backends, APIs, operations, products and
the policy documents of every scope, with ETags.

Serves ``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{svc}/…``
as section E of the reference describes: bearer token required (no challenge), ``ETag`` on
GET/HEAD/PUT/PATCH/refreshSecret, ``If-Match`` required for PATCH and DELETE (412 on mismatch,
never with ``Retry-After``), 201 on create and 200 on update, lists with ``$filter``/``$top``/
``$skip``/absolute ``nextLink``/``count``, ARM error bodies. ``/_devstack/…`` is the admin API.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from devstack import arm_apis, arm_policies
from devstack import arm_certificates as certs
from devstack import arm_entities as ops
from devstack.admin import AdminApi
from devstack.arm_entities import arm_error
from devstack.faults import FaultInjector, FaultKind
from devstack.server import Request, Response, json_response
from devstack.state import ApimService, DevstackState

__all__ = ["ArmApp"]

_SERVICE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.ApiManagement/service/(?P<svc>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
_ROUTES = re.compile(
    r"^/(?P<kind>certificates|backends)(?:/(?P<id>[^/]+)(?P<action>/refreshSecret)?)?$"
    r"|^(?:/apis/(?P<papi>[^/]+)(?:/operations/(?P<pop>[^/]+))?|/products/(?P<pprod>[^/]+))?"
    r"/policies(?P<policy>/[^/]+)?$"
    r"|^/(?P<apis>apis)(?:/(?P<api>[^/]+)(?P<ops>/operations(?:/(?P<op>[^/]+))?)?)?$"
    r"|^/(?P<products>products)(?:/(?P<product>[^/]+))?$",
    re.IGNORECASE,
)


def _route(rest: str) -> ops.Route | None:
    """What ``rest`` (the path below the service) addresses, or None."""
    m = _ROUTES.match(rest)
    if m is None:
        return None
    if m["kind"]:
        action = "refreshSecret" if m["action"] else ""
        return ops.Route(m["kind"].lower(), m["id"] or "", action=action)
    if m["apis"]:
        if m["ops"]:
            return ops.Route("operations", m["op"] or "", api=m["api"])
        return ops.Route("apis", m["api"] or "")
    if m["products"]:
        return ops.Route("products", m["product"] or "")
    name = (m["policy"] or "").lstrip("/")
    return ops.Route(
        "policies", name, api=m["papi"] or "", operation=m["pop"] or "", product=m["pprod"] or ""
    )


def _missing_parent(service: ApimService, route: ops.Route) -> Response | None:
    """ARM's 404 when a route names an API, operation or product that does not exist."""
    if route.product and route.product.lower() not in service.products:
        return arm_error(404, "ResourceNotFound", f"Product '{route.product}' was not found.")
    if route.api and route.api.lower() not in service.apis:
        return arm_error(404, "ResourceNotFound", f"API '{route.api}' was not found.")
    operation = f"{route.api}/{route.operation}".lower()
    if route.kind == "policies" and route.operation and operation not in service.operations:
        return arm_error(404, "ResourceNotFound", f"Operation '{route.operation}' was not found.")
    if route.kind == "policies" and route.name and route.name.lower() != "policy":
        return arm_error(404, "ResourceNotFound", "The policy id must be 'policy'.")
    return None


_HANDLERS: dict[str, dict[str, Callable[[ops.Call], Response]]] = {
    "policies": {
        "GET": arm_policies.get_policy,
        "HEAD": ops.head,
        "PUT": arm_policies.put_policy,
        "DELETE": ops.delete,
    },
    "policies/": {"GET": arm_policies.list_policies},
    "apis": {"GET": ops.get, "HEAD": ops.head, "PUT": arm_apis.put_api},
    "apis/": {"GET": arm_apis.list_apis},
    "operations": {"GET": ops.get, "HEAD": ops.head, "PUT": arm_apis.put_operation},
    "operations/": {"GET": arm_apis.list_operations},
    "products": {"GET": ops.get, "HEAD": ops.head, "PUT": arm_apis.put_product},
    "products/": {"GET": arm_apis.list_products},
    "certificates": {
        "GET": ops.get,
        "HEAD": ops.head,
        "PUT": certs.put_certificate,
        "DELETE": ops.delete,
    },
    "certificates/": {"GET": certs.list_certificates},
    "certificates/refreshSecret": {"POST": certs.refresh_secret},
    "backends": {
        "GET": ops.get,
        "HEAD": ops.head,
        "PUT": ops.put_backend,
        "PATCH": ops.patch_backend,
        "DELETE": ops.delete,
    },
    "backends/": {"GET": ops.list_backends},
}


class ArmApp:
    """The ARM/APIM stand-in served by a ``StandInServer``."""

    def __init__(
        self,
        state: DevstackState,
        *,
        token: str,
        subscription_id: str,
        resource_group: str,
        faults: FaultInjector,
        admin: AdminApi,
    ) -> None:
        self.state = state
        self.token = token
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.faults = faults
        self.admin = admin

    def service_id(self, name: str) -> str:
        """The full ARM id of service ``name``."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ApiManagement/service/{name}"
        )

    # --- App protocol ------------------------------------------------------------------------

    def error(self, status: int, code: str, message: str) -> Response:
        """ARM error body."""
        return arm_error(status, code, message)

    def logged(self, request: Request) -> bool:
        """Admin calls stay out of the request log."""
        return not request.path.startswith("/_devstack")

    def simulate_concurrent_write(self, request: Request) -> None:
        """Another writer got there first: the target entity's ETag moves."""
        located = self._locate(request)
        if isinstance(located, tuple) and located[1] is not None:
            service, route = located
            store, key = route.store_and_key(service)
            with self.state.lock:
                entity = store.get(key)
                if entity is not None:
                    entity.etag = self.state.next_etag()

    def handle(self, request: Request) -> Response:
        """Authenticate, route, answer; persist after writes."""
        auth = request.headers.get("authorization")
        if not auth:
            return arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        if auth != f"Bearer {self.token}":
            return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if request.path.startswith("/_devstack/"):
            return self.admin.handle(request)
        response = self._route(request)
        if request.method in ("PUT", "PATCH", "DELETE", "POST") and response.status < 300:
            self.state.save()
        response.headers.setdefault("x-ms-ratelimit-remaining-subscription-reads", "11999")
        response.headers.setdefault("x-ms-ratelimit-remaining-subscription-writes", "1199")
        return response

    # --- routing ----------------------------------------------------------------------------

    def _locate(self, request: Request) -> Response | tuple[ApimService, ops.Route | None]:
        """The service and what the path addresses below it (None: the service itself, or a
        path the stand-in does not serve)."""
        match = _SERVICE.match(request.path)
        if match is None:
            return arm_error(404, "InvalidResourceType", "No such resource type in the devstack.")
        if match["sub"].lower() != self.subscription_id.lower():
            return arm_error(
                404,
                "SubscriptionNotFound",
                f"The subscription '{match['sub']}' could not be found.",
            )
        if match["rg"].lower() != self.resource_group.lower():
            return arm_error(
                404, "ResourceGroupNotFound", f"Resource group '{match['rg']}' could not be found."
            )
        service = self.state.service(match["svc"])
        if service is None:
            return arm_error(
                404,
                "ResourceNotFound",
                f"The API Management service '{match['svc']}' was not found.",
            )
        rest = match["rest"] or ""
        return service, None if rest in ("", "/") else _route(rest)

    def _route(self, request: Request) -> Response:
        located = self._locate(request)
        if isinstance(located, Response):
            return located
        service, route = located
        if route is None:
            if (
                request.path.rstrip("/").lower().endswith(service.name.lower())
                and request.method == "GET"
            ):
                return json_response(200, self._service_json(service))
            return arm_error(404, "InvalidResourceType", "No such resource type in the devstack.")
        with self.state.lock:
            missing = _missing_parent(service, route)
        if missing is not None:
            return missing
        suffix = f"/{route.action}" if route.action else "" if route.name else "/"
        table = route.kind + suffix
        handler = _HANDLERS[table].get(request.method)
        if handler is None:
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here.")
        store, key = route.store_and_key(service)
        return handler(ops.Call(self, request, service, store, key, route))

    def _service_json(self, service: ApimService) -> dict[str, Any]:
        return {
            "id": self.service_id(service.name),
            "type": "Microsoft.ApiManagement/service",
            "name": service.name,
            "location": "devstack",
            "sku": {"name": "Developer", "capacity": 1},
            "properties": {"provisioningState": "Succeeded", "gatewayUrl": "https://127.0.0.1"},
        }

    def refresh_fault(self, request: Request) -> bool:
        """True when an injected Key Vault refresh failure applies to this request."""
        kinds = (FaultKind.KEYVAULT_REFRESH_FAILURE,)
        return self.faults.take(request.method, request.path, kinds) is not None
