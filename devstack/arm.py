"""The ARM stand-in for API Management: certificates, backends and policies, with ETags.

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

from devstack import arm_certificates as certs
from devstack import arm_entities as ops
from devstack.admin import AdminApi
from devstack.arm_entities import arm_error
from devstack.faults import FaultInjector, FaultKind
from devstack.server import Request, Response, json_response
from devstack.state import ApimService, DevstackState, Store

__all__ = ["ArmApp"]

_SERVICE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.ApiManagement/service/(?P<svc>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
_ENTITY = re.compile(
    r"^/(?P<kind>certificates|backends)(?:/(?P<id>[^/]+)(?P<action>/refreshSecret)?)?$"
    r"|^(?:/apis/(?P<api>[^/]+))?/policies/policy$",
    re.IGNORECASE,
)
_TYPES = {
    "certificates": "Microsoft.ApiManagement/service/certificates",
    "backends": "Microsoft.ApiManagement/service/backends",
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
        if isinstance(located, tuple):
            store, key = located[1], located[2]
            with self.state.lock:
                entity = store.get(key) if store is not None else None
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

    def _locate(
        self, request: Request
    ) -> Response | tuple[ApimService, Store | None, str, re.Match[str]]:
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
        entity = _ENTITY.match(rest)
        if rest in ("", "/") or entity is None:
            return service, None, "", match
        if entity["kind"]:
            store = (
                service.certificates
                if entity["kind"].lower() == "certificates"
                else service.backends
            )
            return service, store, (entity["id"] or "").lower(), entity
        return service, service.policies, (entity["api"] or "").lower(), entity

    def _route(self, request: Request) -> Response:
        located = self._locate(request)
        if isinstance(located, Response):
            return located
        service, store, key, match = located
        if store is None:
            if (
                request.path.rstrip("/").lower().endswith(service.name.lower())
                and request.method == "GET"
            ):
                return json_response(200, self._service_json(service))
            return arm_error(404, "InvalidResourceType", "No such resource type in the devstack.")
        kind = (match.groupdict().get("kind") or "policies").lower()
        handler = self._handlers(kind, key, match).get(request.method)
        if handler is None:
            return arm_error(405, "MethodNotAllowed", f"{request.method} is not supported here.")
        return handler(ops.Call(self, request, service, store, key, match))

    def _handlers(
        self, kind: str, key: str, match: re.Match[str]
    ) -> dict[str, Callable[..., Response]]:
        if kind == "policies":
            return {"GET": ops.get, "HEAD": ops.head, "PUT": ops.put_policy, "DELETE": ops.delete}
        if match.groupdict().get("action"):
            return {"POST": certs.refresh_secret}
        if not key:
            return {
                "GET": certs.list_certificates if kind == "certificates" else ops.list_backends
            }
        put = certs.put_certificate if kind == "certificates" else ops.put_backend
        handlers = {"GET": ops.get, "HEAD": ops.head, "PUT": put, "DELETE": ops.delete}
        if kind == "backends":
            handlers["PATCH"] = ops.patch_backend
        return handlers

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
