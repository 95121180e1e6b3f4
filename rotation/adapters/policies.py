"""``ArmInboundPolicies``: the ``InboundPolicies`` port over ``azure-mgmt-apimanagement``.

Policy documents are read and written in ``rawxml`` only: in the SDK's default ``xml`` format
APIM entity-escapes the inside of policy expressions (``=>`` reads ``=&gt;``), and a document
written back from that would not be the bytes an operator wrote. So a document's value is the
text of ``GET …/policies/policy?format=rawxml`` and a write is ``PolicyContract(format="rawxml")``.

Cost of ``list_policies``, per service with P products, A APIs and O operations: the product
and API lists (one request per page of 100), one operation list per API (per page), and one
``GET ?format=rawxml`` per scope, so 1 + P + A + O GETs plus ⌈P/100⌉ + ⌈A/100⌉ + A (or more)
list pages; sequential (10 products, 150 APIs, 600 operations: 914 requests, about 2 s against
the devstack). A scope without a policy costs its one GET, a 404. The
``policy.list_by_*`` calls would not save a request: they return values in ``xml`` format only
(no ``format`` parameter), so a document found that way still needs its ``rawxml`` GET, and an
empty scope costs the list request just as it costs the 404. The service's existence is checked
by its first request, the product list (a 404 there is a ``ConfigError`` naming
``ROTATION_APIM_SERVICES``, as in ``ArmApimGateway``); a 404 on a scope's GET means the scope
has no policy (or its API, operation or product went away meanwhile).

Writes are compare-and-swaps, stateless, as for certificates and backends: ``put_policy`` GETs
the document (``rawxml``, with its ETag), refuses with ``PreconditionFailedError`` unless it
exists and its value equals what the caller's plan saw, then PUTs with ``If-Match`` that ETag
(a write in between is a 412: ``PreconditionFailedError`` too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import PolicyContract

from rotation.adapters.apim_arm import ArmApimClients, etagged, listing, moved, read_for_swap
from rotation.adapters.errors import APIM, translating
from rotation.domain.errors import CertificateNotFoundError
from rotation.domain.inbound import PolicyDocument, PolicyScope

__all__ = ["ArmInboundPolicies"]

_POLICY = "policy"
_RAWXML = "rawxml"


class _Scoped:
    """The SDK calls of a document's scope (``get``/``put``), the parent ids they take
    (``args``) and the id below the service (``suffix``, for messages).

    Raises:
        ValueError: the document's ``resource_id`` is not a policy of its scope in its service.
    """

    __slots__ = ("args", "get", "put", "suffix")

    def __init__(self, client: ApiManagementClient, document: PolicyDocument) -> None:
        service = document.service_id.rstrip("/")
        inside = document.resource_id.lower().startswith(service.lower() + "/")
        tail = document.resource_id[len(service) :].strip("/").split("/")
        parents = _parents(document.scope, tail) if inside else None
        if parents is None:
            raise ValueError(
                f"not a {document.scope}-scope policy id under {document.service_id!r}: "
                f"{document.resource_id!r}"
            )
        self.args = parents
        self.suffix = "/".join(tail)
        operations: Any = {
            PolicyScope.GLOBAL: client.policy,
            PolicyScope.PRODUCT: client.product_policy,
            PolicyScope.API: client.api_policy,
            PolicyScope.OPERATION: client.api_operation_policy,
        }[document.scope]
        self.get: Callable[..., Any] = operations.get
        self.put: Callable[..., Any] = operations.create_or_update


def _parents(scope: PolicyScope, tail: list[str]) -> tuple[str, ...] | None:
    """The parent ids in a policy id's path below the service, or None if it is not ``scope``'s
    (``policies/policy``, ``products/{p}/…``, ``apis/{a}/…``, ``apis/{a}/operations/{o}/…``)."""
    if [part.lower() for part in tail[-2:]] != ["policies", _POLICY]:
        return None
    head = tail[:-2]
    shapes = {
        PolicyScope.GLOBAL: ([], ()),
        PolicyScope.PRODUCT: (["products", "*"], (1,)),
        PolicyScope.API: (["apis", "*"], (1,)),
        PolicyScope.OPERATION: (["apis", "*", "operations", "*"], (1, 3)),
    }
    shape, picks = shapes[scope]
    if len(head) != len(shape) or any(
        want not in ("*", got.lower()) for want, got in zip(shape, head, strict=True)
    ):
        return None
    return tuple(head[i] for i in picks)


class ArmInboundPolicies(ArmApimClients):
    """APIM policy documents at global, product, API and operation scope, in ``rawxml``
    (settings and client cache: ``ArmApimClients``)."""

    def list_policies(self, service_id: str) -> list[PolicyDocument]:
        """Every policy document of the service, each read in ``rawxml`` with its ETag: global,
        then each product's, then each API's followed by its operations'.

        Raises:
            ConfigError: the service does not exist (a mistyped ``ROTATION_APIM_SERVICES``).
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        return list(self._documents(client, service_id, rg, name))

    def _documents(
        self, client: ApiManagementClient, service_id: str, rg: str, name: str
    ) -> Iterator[PolicyDocument]:
        with listing("list_policies", service_id, name):
            products = [p.name or "" for p in client.product.list_by_service(rg, name)]
        document = self._read(service_id, PolicyScope.GLOBAL, "", client.policy.get, rg, name)
        if document is not None:
            yield document
        for product in products:
            document = self._read(
                service_id, PolicyScope.PRODUCT, f"/products/{product}",
                client.product_policy.get, rg, name, product,
            )  # fmt: skip
            if document is not None:
                yield document
        with listing("list_policies", service_id, name):
            apis = [a.name or "" for a in client.api.list_by_service(rg, name)]
        for api in apis:
            yield from self._api_documents(client, service_id, rg, name, api)

    def _api_documents(
        self, client: ApiManagementClient, service_id: str, rg: str, name: str, api: str
    ) -> Iterator[PolicyDocument]:
        document = self._read(
            service_id, PolicyScope.API, f"/apis/{api}", client.api_policy.get, rg, name, api
        )
        if document is not None:
            yield document
        try:
            with translating(APIM, "list_policies", api):
                operations = [
                    o.name or "" for o in client.api_operation.list_by_api(rg, name, api)
                ]
        except CertificateNotFoundError:  # the API went away since it was listed
            return
        for operation in operations:
            document = self._read(
                service_id, PolicyScope.OPERATION, f"/apis/{api}/operations/{operation}",
                client.api_operation_policy.get, rg, name, api, operation,
            )  # fmt: skip
            if document is not None:
                yield document

    @staticmethod
    def _read(
        service_id: str, scope: PolicyScope, parent: str, get: Callable[..., Any], *args: str
    ) -> PolicyDocument | None:
        """One scope's document (``rawxml``, with its ETag), or None when it has none."""
        resource_id = f"{service_id.rstrip('/')}{parent}/policies/{_POLICY}"
        try:
            with translating(APIM, "list_policies", parent or "global"):
                model, etag = etagged(get, *args, _POLICY, format=_RAWXML)
        except CertificateNotFoundError:
            return None
        return PolicyDocument(
            service_id=service_id,
            scope=scope,
            resource_id=resource_id,
            value=model.value or "",
            etag=etag,
        )

    def put_policy(
        self, document: PolicyDocument, *, expected_value: str, value: str
    ) -> PolicyDocument:
        """Compare-and-swap ``document``'s value: GET ``rawxml`` (for the ETag), refuse unless
        it still reads ``expected_value``, then PUT ``value`` (``rawxml``) with ``If-Match``.

        Raises:
            ValueError: ``document.resource_id`` is not a policy of its scope in its service.
            PreconditionFailedError: the document is gone or its value changed, or its ETag
                moved between the GET and the PUT (412).
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(document.service_id)
        scoped = _Scoped(client, document)
        operation = "put_policy"
        current, etag = read_for_swap(
            operation, scoped.suffix, scoped.get, rg, name, *scoped.args, _POLICY, format=_RAWXML
        )
        if (current.value or "") != expected_value:
            raise moved(operation, scoped.suffix)
        with translating(APIM, operation, scoped.suffix):
            _, new_etag = etagged(
                scoped.put,
                rg,
                name,
                *scoped.args,
                _POLICY,
                PolicyContract(value=value, format=_RAWXML),
                if_match=etag,
            )
        return PolicyDocument(
            service_id=document.service_id,
            scope=document.scope,
            resource_id=document.resource_id,
            value=value,
            etag=new_etag,
        )
