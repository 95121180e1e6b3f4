"""``ArmInboundPolicies``: the ``InboundPolicies`` port over ``azure-mgmt-apimanagement``.

Policy documents are read and written in ``rawxml`` only: in the SDK's default ``xml`` format
APIM entity-escapes the inside of policy expressions (``=>`` reads ``=&gt;``), and a document
written back from that would not be the bytes an operator wrote. So a document's value is the
text of ``GET …/policies/policy?format=rawxml`` and a write is ``PolicyContract(format="rawxml")``.

Cost of ``list_policies``, per service with P products, A APIs and O operations: the product
and API lists (one request per page of 100), one operation list per API (per page), and one
``GET ?format=rawxml`` per scope, so 1 + P + A + O GETs plus ⌈P/100⌉ + ⌈A/100⌉ + A (or more)
list pages (10 products, 150 APIs, 600 operations: 914 requests). The product list comes first,
then the reads and the API list run ``concurrency`` at a time (``ROTATION_ARM_CONCURRENCY``,
default 8), each operation list queueing its operations' reads; the documents,
their order and the error raised are those of reading one after another (``bench/bench_inbound.py``
measures it). A scope without a policy costs its one GET, a 404. The
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

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Self

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
        operations: Any = getattr(client, _GROUPS[document.scope])
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
    (settings and client cache: ``ArmApimClients``).

    ``concurrency`` (``ROTATION_ARM_CONCURRENCY``) bounds the reads ``list_policies`` has in
    flight at once; 1 makes them one after another on the calling thread, in the order of the
    listing. Each worker thread reads through a client no other thread uses meanwhile (spare
    clients, kept per subscription and reused by later listings): ``RequestsTransport`` holds
    one ``requests.Session``, which neither azure-core nor requests documents as safe to share
    between threads, and one session per thread also keeps every connection pool at one
    connection to ARM (no "Connection pool is full" however large the bound).
    """

    def __init__(self, credential: Any, *, concurrency: int = 8, **options: Any) -> None:
        """``options`` are ``ArmApimClients``'.

        Raises:
            ValueError: ``concurrency`` is below 1.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        super().__init__(credential, **options)
        self._concurrency = concurrency
        self._spare: dict[str, list[ApiManagementClient]] = {}  # guarded by self._lock

    @property
    def concurrency(self) -> int:
        """The most reads ``list_policies`` has in flight at once."""
        return self._concurrency

    def list_policies(self, service_id: str) -> list[PolicyDocument]:
        """Every policy document of the service, each read in ``rawxml`` with its ETag: global,
        then each product's, then each API's followed by its operations'.

        The product list comes first (it checks that the service exists), then the reads and
        the API list run ``concurrency`` at a time; an API's operation list, once read, queues
        its operations' reads. The result and its errors are those of
        the reads one after another: documents in listing order, and the first failure in
        that order is raised (reads after a known failure are skipped, queued ones cancelled,
        and the worker threads are gone when this returns or raises).

        Raises:
            ConfigError: the service does not exist (a mistyped ``ROTATION_APIM_SERVICES``).
            TransientDependencyError / AuthorizationError / DependencyError: see the port.
        """
        client, rg, name = self._client(service_id)
        subscription = self._parts(service_id)[0].lower()
        with listing("list_policies", service_id, name):
            products = [p.name or "" for p in client.product.list_by_service(rg, name)]
        lease = functools.partial(self._lease, subscription)
        release = functools.partial(self._release, subscription)
        with _Reads(client, self._concurrency, lease, release) as reads:
            scope = _Scope(service_id, rg, name)
            head = [reads.submit((0, 0), scope.reader(PolicyScope.GLOBAL))]
            head += [
                reads.submit((0, 1 + i), scope.reader(PolicyScope.PRODUCT, product))
                for i, product in enumerate(products)
            ]
            listed = reads.submit((0, 1 + len(products)), scope.apis())
            try:
                apis: list[str] = listed.result()
            except Exception:
                _collect(head)  # an earlier failure wins
                raise
            per_api = [
                (
                    reads.submit((1, i, 0), scope.reader(PolicyScope.API, api)),
                    reads.submit((1, i, 1), scope.operations(reads, i, api)),
                )
                for i, api in enumerate(apis)
            ]
            documents = _collect(head)
            for api_read, operations in per_api:
                documents += _collect([api_read])
                documents += _collect(operations.result())
            return documents

    def _lease(self, subscription: str) -> ApiManagementClient:
        """A spare client of ``subscription`` for one read on a worker thread (``_release``
        it after)."""
        with self._lock:
            spare = self._spare.setdefault(subscription, [])
            if spare:
                return spare.pop()
        return self._new_client(subscription)

    def _release(self, subscription: str, client: ApiManagementClient) -> None:
        with self._lock:
            self._spare[subscription].append(client)

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


_Key = tuple[int, ...]  # a read's place in the listing order: tuples compare in that order
_Read = Callable[[ApiManagementClient], Any]


class _SkippedError(Exception):
    """A read not made because an earlier one (in listing order) failed; never raised out of
    ``list_policies``: the earlier failure is."""


class _Reads:
    """The reads of one listing: inline (``concurrency`` 1) or on at most ``concurrency``
    worker threads, each read through a client leased from the adapter for its duration.

    ``submit`` takes a read's key (its place in the listing order); a read whose key comes
    after a failure already seen is skipped, so a listing stops about as early as one made
    read by read. Leaving the ``with`` block shuts the pool down: queued reads are cancelled
    and running ones waited for (each is one request and its retries).
    """

    def __init__(
        self,
        client: ApiManagementClient,
        concurrency: int,
        lease: Callable[[], ApiManagementClient],
        release: Callable[[ApiManagementClient], None],
    ) -> None:
        """``client`` serves the inline reads; the threads' come from ``lease`` and go back
        through ``release``."""
        self._client, self._lease, self._release = client, lease, release
        self._pool = (
            ThreadPoolExecutor(concurrency, thread_name_prefix="certrotate-policies")
            if concurrency > 1
            else None
        )
        self._lock = threading.Lock()
        self._first_failure: _Key | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def failed_before(self, key: _Key) -> bool:
        """True when a read that comes before ``key`` in the listing order failed."""
        with self._lock:
            return self._first_failure is not None and self._first_failure < key

    def submit(self, key: _Key, read: _Read) -> Future[Any]:
        """Run ``read`` (inline, or queued on the pool) and return its future."""
        if self._pool is not None:
            return self._pool.submit(self._run, key, read)
        future: Future[Any] = Future()
        try:
            future.set_result(self._run(key, read))
        except Exception as exc:  # noqa: BLE001 - handed over through the future
            future.set_exception(exc)
        return future

    def _run(self, key: _Key, read: _Read) -> Any:
        if self.failed_before(key):
            raise _SkippedError
        client = self._client if self._pool is None else self._lease()
        try:
            return read(client)
        except Exception:
            with self._lock:
                if self._first_failure is None or key < self._first_failure:
                    self._first_failure = key
            raise
        finally:
            if self._pool is not None:
                self._release(client)


class _Scope:
    """The reads of one service's listing, as functions of the client they go through."""

    def __init__(self, service_id: str, rg: str, name: str) -> None:
        self.service_id, self.rg, self.name = service_id, rg, name

    def reader(self, scope: PolicyScope, *ids: str) -> _Read:
        """The rawxml read of one scope's document (``ids``: the product, the API, or the API
        and the operation; none for the global policy): a ``PolicyDocument`` or None."""
        parent = {
            PolicyScope.GLOBAL: "",
            PolicyScope.PRODUCT: "/products/{}",
            PolicyScope.API: "/apis/{}",
            PolicyScope.OPERATION: "/apis/{}/operations/{}",
        }[scope].format(*ids)
        group = _GROUPS[scope]

        def read(client: ApiManagementClient) -> PolicyDocument | None:
            get = getattr(client, group).get
            return _read(self.service_id, scope, parent, get, self.rg, self.name, *ids)

        return read

    def apis(self) -> _Read:
        """The API list (a 404: the service is gone, ``ConfigError``)."""

        def read(client: ApiManagementClient) -> list[str]:
            with listing("list_policies", self.service_id, self.name):
                return [a.name or "" for a in client.api.list_by_service(self.rg, self.name)]

        return read

    def operations(self, reads: _Reads, index: int, api: str) -> _Read:
        """The operation list of the ``index``th API, which submits one read per operation
        and returns their futures (none when the API went away since it was listed)."""

        def read(client: ApiManagementClient) -> list[Future[Any]]:
            try:
                with translating(APIM, "list_policies", api):
                    names = [
                        o.name or ""
                        for o in client.api_operation.list_by_api(self.rg, self.name, api)
                    ]
            except CertificateNotFoundError:  # the API went away since it was listed
                return []
            return [
                reads.submit((1, index, 2, k), self.reader(PolicyScope.OPERATION, api, operation))
                for k, operation in enumerate(names)
            ]

        return read


_GROUPS = {
    PolicyScope.GLOBAL: "policy",
    PolicyScope.PRODUCT: "product_policy",
    PolicyScope.API: "api_policy",
    PolicyScope.OPERATION: "api_operation_policy",
}


def _collect(futures: list[Future[Any]]) -> list[PolicyDocument]:
    """The documents of ``futures`` in order (None: no policy); the first failure raises."""
    return [document for future in futures if (document := future.result()) is not None]


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
