"""One contract suite, two implementations of each port: the fakes of ``rotation.testing`` and
the real adapters against the devstack's stand-ins.

Every test in this folder takes ``apim`` (an ``ApimWorld``), ``vault`` (a ``VaultWorld``) or
``inbound`` (a ``PolicyWorld``), parametrized ``fake`` / ``devstack``: the same assertions run
against ``FakeApimGateway`` and ``ArmApimGateway`` (through the unmodified
``azure-mgmt-apimanagement`` client), against ``FakeCertificateSource`` and
``KeyVaultCertificateSource`` (the unmodified Key Vault SDKs), and against
``FakeInboundPolicies`` and ``ArmInboundPolicies``. A world seeds state the way the outside world would (Key Vault versions, APIM entities that exist
before the test, another writer) and counts what reached the service; the tests only call the
port. When the two disagree, the fake is what gets fixed.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest
from cryptography.hazmat.primitives import hashes

from devstack.arm_entities import Route
from devstack.faults import FaultKind, FaultRule
from devstack.pki import Issued, to_pem_bundle, to_pkcs12
from devstack.stack import Devstack
from devstack.state import Store
from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.keyvault import KeyVaultCertificateSource
from rotation.adapters.policies import ArmInboundPolicies
from rotation.domain.inbound import PolicyScope
from rotation.ports import ApimGateway, CertificateSource, InboundPolicies
from rotation.testing import FakeApimGateway, FakeCertificateSource, FakeInboundPolicies
from tests.devstack_fixture import DevstackPki

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
FAKE_VAULT = "https://kv-contract.vault.azure.net"
FAKE_SERVICE = (
    "/subscriptions/00000000-0000-4000-8000-00000000c0de/resourceGroups/rg-contract/providers/"
    "Microsoft.ApiManagement/service/apim-contract"
)
FAKE_OTHER_SERVICE = FAKE_SERVICE.replace("apim-contract", "apim-contract-2")
_READS = frozenset({"get_certificate", "get_backend"})
_WRITES = frozenset({"put_certificate", "update_backend_certificates", "delete_certificate"})


def sha1(issued: Issued) -> str:
    """The upper-case SHA-1 thumbprint, as Key Vault and APIM show it."""
    return issued.cert.fingerprint(hashes.SHA1()).hex().upper()


@dataclass(frozen=True)
class Version:
    """A Key Vault version a world created, with the leaf it holds."""

    name: str
    version: str
    leaf: Issued
    secret_id: str


class VaultWorld(Protocol):
    """A Key Vault seen through a ``CertificateSource``."""

    @property
    def source(self) -> CertificateSource:
        """The implementation under test."""
        ...

    @property
    def vault_url(self) -> str:
        """The vault's URL."""
        ...

    def add(
        self, name: str, chain: list[Issued], *, pem: bool = False, enabled: bool = True
    ) -> Version:
        """Create a version of ``name`` holding ``chain`` (leaf first, with its key)."""
        ...


class ApimWorld(VaultWorld, Protocol):
    """An APIM service (and the vault its entities fetch from) seen through an ``ApimGateway``."""

    @property
    def gateway(self) -> ApimGateway:
        """The implementation under test."""
        ...

    @property
    def service_id(self) -> str:
        """The APIM service's ARM id."""
        ...

    def seed_certificate(self, certificate_id: str, secret_identifier: str) -> None:
        """An entity that exists (or is re-pinned by another writer), fetched by APIM."""
        ...

    def seed_backend(self, backend_id: str, certificate_ids: list[str]) -> None:
        """A backend that exists (or is changed by another writer)."""
        ...

    def conflict_on_next_write(self, collection: str, name: str) -> None:
        """Another writer changes ``{collection}/{name}`` just before our next write to it."""
        ...

    def sent(self) -> Counter[str]:
        """The single reads (``read``) and writes (``write``) that reached APIM since the last
        ``forget``."""
        ...

    def forget(self) -> None:
        """Start counting ``sent`` afresh."""
        ...


def _bundle(chain: list[Issued], *, pem: bool) -> bytes:
    return to_pem_bundle(chain[0], chain[1:]) if pem else to_pkcs12(chain[0], chain[1:])


@dataclass
class FakeWorld:
    """Both fakes, wired as ``rotation.testing`` documents."""

    vault_url: str = FAKE_VAULT
    service_id: str = FAKE_SERVICE
    source: FakeCertificateSource = field(default_factory=FakeCertificateSource)
    gateway: FakeApimGateway = field(init=False)
    _created: itertools.count[int] = field(default_factory=itertools.count)
    _baseline: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.gateway = FakeApimGateway(self.source)

    def add(
        self, name: str, chain: list[Issued], *, pem: bool = False, enabled: bool = True
    ) -> Version:
        version = uuid.uuid4().hex
        created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=next(self._created))
        added = self.source.add_version(
            self.vault_url,
            name,
            version,
            created=created,
            secret=_bundle(chain, pem=pem),
            leaf=chain[0].cert,
            content_type=PEM if pem else PKCS12,
            enabled=enabled,
        )
        return Version(name, version, chain[0], added.secret_id)

    def seed_certificate(self, certificate_id: str, secret_identifier: str) -> None:
        self.gateway.add_certificate(
            self.service_id, certificate_id, secret_identifier=secret_identifier
        )

    def seed_backend(self, backend_id: str, certificate_ids: list[str]) -> None:
        self.gateway.add_backend(self.service_id, backend_id, certificate_ids)

    def conflict_on_next_write(self, collection: str, name: str) -> None:
        self.gateway.conflict_on_write(1)

    def sent(self) -> Counter[str]:
        calls = self.gateway.calls - self._baseline
        return Counter(
            read=sum(n for op, n in calls.items() if op in _READS),
            write=sum(n for op, n in calls.items() if op in _WRITES),
        )

    def forget(self) -> None:
        self._baseline = Counter(self.gateway.calls)


@dataclass
class StackWorld:
    """The real adapters against a fresh devstack."""

    stack: Devstack
    gateway: ArmApimGateway
    source: KeyVaultCertificateSource

    @property
    def vault_url(self) -> str:
        return self.stack.vault_url

    @property
    def service_id(self) -> str:
        return self.stack.service_id(self.stack.apim_services[0])

    def add(
        self, name: str, chain: list[Issued], *, pem: bool = False, enabled: bool = True
    ) -> Version:
        version = self.stack.import_certificate(
            name, _bundle(chain, pem=pem), content_type=PEM if pem else PKCS12, enabled=enabled
        )
        return Version(name, version, chain[0], f"{self.vault_url}/secrets/{name}/{version}")

    def seed_certificate(self, certificate_id: str, secret_identifier: str) -> None:
        self.stack.put_apim_certificate(
            self.stack.apim_services[0], certificate_id, secret_identifier
        )

    def seed_backend(self, backend_id: str, certificate_ids: list[str]) -> None:
        self.stack.put_backend(
            self.stack.apim_services[0],
            backend_id,
            url=f"https://{backend_id}.example.test",
            certificate_ids=certificate_ids,
        )

    def conflict_on_next_write(self, collection: str, name: str) -> None:
        method = "PATCH" if collection == "backends" else "PUT"
        self.stack.faults_arm.concurrent_write(f"*/{collection}/{name}", method=method, count=1)

    def sent(self) -> Counter[str]:
        methods = Counter(e.method for e in self.stack.request_log.arm.entries())
        return Counter(
            read=methods["GET"], write=methods["PUT"] + methods["PATCH"] + methods["DELETE"]
        )

    def forget(self) -> None:
        self.stack.request_log.clear()


IMPLEMENTATIONS = ["fake", "devstack"]


@pytest.fixture(name="world", params=IMPLEMENTATIONS)
def _world(request: pytest.FixtureRequest) -> FakeWorld | StackWorld:
    if request.param == "fake":
        return FakeWorld()
    stack: Devstack = request.getfixturevalue("devstack")
    return StackWorld(
        stack, request.getfixturevalue("apim_gateway"), request.getfixturevalue("kv_source")
    )


@pytest.fixture(name="apim")
def _apim(world: FakeWorld | StackWorld) -> ApimWorld:
    return world


@pytest.fixture(name="vault")
def _vault(world: FakeWorld | StackWorld) -> VaultWorld:
    return world


@pytest.fixture(name="chains")
def _chains(devstack_pki: DevstackPki) -> tuple[list[Issued], list[Issued]]:
    """Two independent chains ``[leaf, intermediate, root]``."""
    return devstack_pki.first, devstack_pki.second


# --- InboundPolicies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """A policy document's place: its service, its scope and the names of the scope (the
    product; the API; the API and the operation)."""

    service_id: str
    scope: PolicyScope
    names: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """The scope's path below the service (``""`` for the global scope)."""
        shape = {
            PolicyScope.GLOBAL: "",
            PolicyScope.PRODUCT: "/products/{0}",
            PolicyScope.API: "/apis/{0}",
            PolicyScope.OPERATION: "/apis/{0}/operations/{1}",
        }[self.scope]
        return shape.format(*self.names)

    @property
    def resource_id(self) -> str:
        """The document's full ARM id, as ARM spells it."""
        return f"{self.service_id}{self.path}/policies/policy"


class PolicyWorld(Protocol):
    """Two APIM services (both exist; nobody configured anything in them yet) seen through an
    ``InboundPolicies``."""

    @property
    def policies(self) -> InboundPolicies:
        """The implementation under test."""
        ...

    @property
    def service_ids(self) -> tuple[str, str]:
        """The two services' ARM ids."""
        ...

    def missing_service_id(self) -> str:
        """The id of a service that does not exist."""
        ...

    def add_scope(self, where: Where) -> None:
        """The product, API or operation of ``where`` exists (with no policy of its own)."""
        ...

    def seed(self, where: Where, value: str) -> None:
        """Someone (the portal, another tool) writes the document at ``where`` (creating its
        scope if need be)."""
        ...

    def delete(self, where: Where) -> None:
        """Someone deletes the document at ``where``."""
        ...

    def stored(self, where: Where) -> str | None:
        """The document's value as the service stores it now (None: there is none)."""
        ...

    def race_next_write(self, where: Where, value: str) -> None:
        """Another writer writes ``value`` to ``where`` just before our next write to it
        (after our read): that write then meets a moved ETag."""
        ...

    def sent(self) -> Counter[str]:
        """The single reads (``read``) and writes (``write``) of policy documents that reached
        the service since the last ``forget``."""
        ...

    def forget(self) -> None:
        """Start counting ``sent`` afresh."""
        ...


@dataclass
class FakePolicyWorld:
    """``FakeInboundPolicies`` with two services added (each has APIM's default global policy)."""

    policies: FakeInboundPolicies = field(default_factory=FakeInboundPolicies)
    service_ids: tuple[str, str] = (FAKE_SERVICE, FAKE_OTHER_SERVICE)
    _baseline: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for service_id in self.service_ids:
            self.policies.add_service(service_id)

    def missing_service_id(self) -> str:
        return FAKE_SERVICE.replace("apim-contract", "apim-nope")

    def add_scope(self, where: Where) -> None:
        """The fake keeps documents only: a scope without one is nothing to it."""

    def seed(self, where: Where, value: str) -> None:
        self.policies.add_policy(where.service_id, where.scope, value, *where.names)

    def delete(self, where: Where) -> None:
        self.policies.delete_policy(where.resource_id)

    def stored(self, where: Where) -> str | None:
        try:
            return self.policies.value(where.resource_id)
        except KeyError:
            return None

    def race_next_write(self, where: Where, value: str) -> None:
        self.policies.race_once(lambda _: value)

    def sent(self) -> Counter[str]:
        calls = self.policies.calls - self._baseline
        return Counter(read=calls["get_policy"], write=calls["write_policy"])

    def forget(self) -> None:
        self._baseline = Counter(self.policies.calls)


@dataclass
class StackPolicyWorld:
    """``ArmInboundPolicies`` against a fresh devstack (its two services); state is seeded
    directly, not through the ARM stand-in, so only the adapter's requests are logged."""

    stack: Devstack
    policies: ArmInboundPolicies

    @property
    def service_ids(self) -> tuple[str, str]:
        first, second = self.stack.apim_services[:2]
        return self.stack.service_id(first), self.stack.service_id(second)

    def missing_service_id(self) -> str:
        return self.stack.service_id("apim-nope")

    def add_scope(self, where: Where) -> None:
        service = _service_name(where)
        svc = self.stack.state.service(service)
        assert svc is not None, service
        if where.scope is PolicyScope.PRODUCT and where.names[0].lower() not in svc.products:
            self.stack.put_product(service, where.names[0], display_name=where.names[0])
        if where.scope in (PolicyScope.API, PolicyScope.OPERATION):
            api = where.names[0]
            if api.lower() not in svc.apis:
                self.stack.put_api(service, api, display_name=api, path=api)
        if where.scope is PolicyScope.OPERATION:
            api, operation = where.names
            if f"{api}/{operation}".lower() not in svc.operations:
                self.stack.put_operation(
                    service, api, operation, method="POST", url_template=f"/{operation}"
                )

    def seed(self, where: Where, value: str) -> None:
        self.add_scope(where)
        self.stack.put_policy(_service_name(where), value, **_parents(where))

    def delete(self, where: Where) -> None:
        store, key = self._store(where)
        with self.stack.state.lock:
            store.pop(key, None)

    def stored(self, where: Where) -> str | None:
        store, key = self._store(where)
        with self.stack.state.lock:
            entity = store.get(key)
            return None if entity is None else str(entity.properties["value"])

    def race_next_write(self, where: Where, value: str) -> None:
        """The stand-in's ``concurrent_write`` fault moves the ETag as the PUT arrives; the
        other writer's value lands at that moment too (the fault injector gets one hook around
        ``take``, since a fault rule alone moves only the ETag)."""
        faults = self.stack.faults_arm
        rule = faults.concurrent_write(
            f"*/service/{_service_name(where)}{where.path}/policies/policy", method="PUT", count=1
        )
        take = faults.take

        def taking(method: str, path: str, kinds: Iterable[FaultKind]) -> FaultRule | None:
            fired = take(method, path, kinds)
            if fired is rule:
                self.seed(where, value)
            return fired

        faults.take = taking  # type: ignore[method-assign]  # this stack dies with the test

    def sent(self) -> Counter[str]:
        methods = Counter(e.method for e in self.stack.request_log.arm.entries())
        return Counter(read=methods["GET"], write=methods["PUT"])

    def forget(self) -> None:
        self.stack.request_log.clear()

    def _store(self, where: Where) -> tuple[Store, str]:
        svc = self.stack.state.service(_service_name(where))
        assert svc is not None, where.service_id
        return Route("policies", "policy", **_parents(where)).store_and_key(svc)


def _service_name(where: Where) -> str:
    return where.service_id.rstrip("/").rsplit("/", 1)[-1]


def _parents(where: Where) -> dict[str, str]:
    """``Devstack.put_policy``'s / ``Route``'s keywords for the scope."""
    if where.scope is PolicyScope.PRODUCT:
        return {"product": where.names[0]}
    if where.scope is PolicyScope.API:
        return {"api": where.names[0]}
    if where.scope is PolicyScope.OPERATION:
        return {"api": where.names[0], "operation": where.names[1]}
    return {}


@pytest.fixture(name="inbound", params=IMPLEMENTATIONS)
def _inbound(request: pytest.FixtureRequest) -> PolicyWorld:
    if request.param == "fake":
        return FakePolicyWorld()
    stack: Devstack = request.getfixturevalue("devstack")
    credential: StaticTokenCredential = request.getfixturevalue("devstack_credential")
    adapter = ArmInboundPolicies(
        credential,
        base_url=stack.arm_endpoint,
        connection_verify=str(stack.ca_bundle),
        retry_total=1,
        retry_backoff_factor=0,
    )
    return StackPolicyWorld(stack, adapter)
