"""One contract suite, two implementations of each port: the fakes of ``rotation.testing`` and
the real adapters against the devstack's stand-ins.

Every test in this folder takes ``apim`` (an ``ApimWorld``) or ``vault`` (a ``VaultWorld``),
parametrized ``fake`` / ``devstack``: the same assertions run against ``FakeApimGateway`` and
``ArmApimGateway`` (through the unmodified ``azure-mgmt-apimanagement`` client), and against
``FakeCertificateSource`` and ``KeyVaultCertificateSource`` (the unmodified Key Vault SDKs). A
world seeds state the way the outside world would (Key Vault versions, APIM entities that exist
before the test, another writer) and counts what reached the service; the tests only call the
port. When the two disagree, the fake is what gets fixed.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest
from cryptography.hazmat.primitives import hashes

from devstack.pki import Issued, to_pem_bundle, to_pkcs12
from devstack.stack import Devstack
from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.keyvault import KeyVaultCertificateSource
from rotation.ports import ApimGateway, CertificateSource
from rotation.testing import FakeApimGateway, FakeCertificateSource
from tests.devstack_fixture import DevstackPki

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
FAKE_VAULT = "https://kv-contract.vault.azure.net"
FAKE_SERVICE = (
    "/subscriptions/00000000-0000-4000-8000-00000000c0de/resourceGroups/rg-contract/providers/"
    "Microsoft.ApiManagement/service/apim-contract"
)
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
