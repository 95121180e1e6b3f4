"""Fixtures for the rotation service tests: one minted PKI per session, a fresh fake world per test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from devstack.pki import Issued, make_key, mint_certificate, mint_chain, to_pem_bundle, to_pkcs12
from rotation.domain.model import CertificateVersion, Disposition, KeyVaultEvent, Strategy
from rotation.service import RotationService
from rotation.testing import (
    FakeApimGateway,
    FakeCertificateSource,
    FakeValidator,
    FrozenClock,
    MemoryAuditSink,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VAULT = "https://kv-demo.vault.azure.net"
CERT = "partner-mtls"
SVC_A = (
    "/subscriptions/1111/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/apim-one"
)
SVC_B = (
    "/subscriptions/1111/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/apim-two"
)
V1 = "11111111aaaaaaaaaaaaaaaaaaaaaaaa"
V2 = "22222222bbbbbbbbbbbbbbbbbbbbbbbb"
V3 = "33333333cccccccccccccccccccccccc"
V4 = "44444444dddddddddddddddddddddddd"
CREATED = {
    "v1": datetime(2026, 1, 1, tzinfo=UTC),
    "v2": datetime(2026, 2, 1, tzinfo=UTC),
    "v3": datetime(2026, 2, 15, tzinfo=UTC),
    "v4": datetime(2026, 2, 20, tzinfo=UTC),
}
NEW_VERSION = "Microsoft.KeyVault.CertificateNewVersionCreated"
NEAR_EXPIRY = "Microsoft.KeyVault.CertificateNearExpiry"


@dataclass(frozen=True)
class Pki:
    """Session-wide certificates: one intermediate, leaves labelled v1..v4, future, soon, other."""

    intermediate: Issued
    leaves: dict[str, Issued]
    pkcs12: dict[str, bytes]
    keyless_pem: dict[str, bytes]


@pytest.fixture(name="pki", scope="session")
def _pki() -> Pki:
    chain = mint_chain(depth=3, kind="ec", size=256)
    inter = chain[1]
    key = make_key("ec", 256)  # reuse: key generation is the slow part
    starts = {
        **CREATED,
        "future": NOW + timedelta(days=30),
        "soon": NOW + timedelta(seconds=120),
        "other": CREATED["v2"],
    }
    leaves = {
        label: mint_certificate(
            "other.certrotate.test" if label == "other" else "client.certrotate.test",
            issuer=inter,
            key=key,
            not_before=start,
            not_after=start + timedelta(days=90),
        )
        for label, start in starts.items()
    }
    return Pki(
        intermediate=inter,
        leaves=leaves,
        pkcs12={k: to_pkcs12(v, [inter]) for k, v in leaves.items()},
        keyless_pem={k: to_pem_bundle(v, [inter], with_key=False) for k, v in leaves.items()},
    )


class World:
    """Fakes wired together: a vault, two APIM services, an audit sink and a frozen clock."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.clock = FrozenClock(NOW)
        self.source = FakeCertificateSource()
        self.gateway = FakeApimGateway(self.source)
        self.audit = MemoryAuditSink()
        self.validator = FakeValidator()

    def add_version(
        self,
        label: str,
        version: str,
        *,
        created: datetime | None = None,
        enabled: bool = True,
        name: str = CERT,
        keyless: bool = False,
    ) -> CertificateVersion:
        """Put leaf ``label`` into the vault as ``version``."""
        secret = self.pki.keyless_pem[label] if keyless else self.pki.pkcs12[label]
        return self.source.add_version(
            VAULT, name, version, created=created or CREATED.get(label, NOW - timedelta(days=1)),
            secret=secret, leaf=self.pki.leaves[label].cert, enabled=enabled,
            content_type="application/x-pem-file" if keyless else "application/x-pkcs12",
        )  # fmt: skip

    def bind(
        self,
        service: str,
        entity: str,
        version: str | None,
        *,
        backend: str | None = None,
        name: str = CERT,
    ) -> None:
        """An entity pinned to ``version`` (None: versionless) and optionally a backend using it."""
        secret = f"{VAULT}/secrets/{name}" + (f"/{version}" if version else "")
        made = self.gateway.add_certificate(
            service, entity, secret_identifier=secret, identity_client_id="mi-1"
        )
        if backend:
            self.gateway.add_backend(service, backend, [made.resource_id])

    def service(self, **kwargs: object) -> RotationService:
        """The service over these fakes (both APIM services configured)."""
        options: dict[str, object] = {"vaults": [VAULT], "apim_services": [SVC_A, SVC_B]}
        options.update(kwargs)
        return RotationService(
            self.source,
            self.gateway,
            self.validator,
            self.audit,
            self.clock,
            **options,  # type: ignore[arg-type]
        )

    def reset_counts(self) -> None:
        """Forget the calls and writes made so far."""
        self.source.calls.clear()
        self.gateway.calls.clear()
        self.gateway.updates.clear()

    def secret_of(self, service: str, entity: str) -> str | None:
        """What the entity references now."""
        return self.gateway.entity(service, entity).secret_identifier


def make_event(
    version: str,
    *,
    event_type: str = NEW_VERSION,
    vault: str = VAULT,
    name: str = CERT,
    event_id: str = "evt-1",
    disposition: Disposition | None = None,
    object_type: str = "Certificate",
) -> KeyVaultEvent:
    """A normalised Key Vault certificate event."""
    if disposition is None:
        disposition = Disposition.ROTATE if event_type == NEW_VERSION else Disposition.ALERT
    return KeyVaultEvent(
        event_id=event_id, event_type=event_type, schema="eventgrid",
        vault_name=vault.split("//")[1].split(".", maxsplit=1)[0], vault_url=vault, object_type=object_type,
        object_name=name, version=version, not_before=None, expires=None, event_time=NOW,
        deadletter=None, disposition=disposition,
    )  # fmt: skip


@pytest.fixture(name="world")
def _world(pki: Pki) -> World:
    return World(pki)


@pytest.fixture(name="rotated")
def _rotated(world: World) -> World:
    """v1 in use by an entity in service A with a backend; v2 just created."""
    world.add_version("v1", V1)
    world.add_version("v2", V2)
    world.bind(SVC_A, CERT, V1, backend="partner-api")
    return world


__all__ = [
    "CERT",
    "NOW",
    "SVC_A",
    "SVC_B",
    "V1",
    "V2",
    "V3",
    "V4",
    "VAULT",
    "Pki",
    "Strategy",
    "World",
    "make_event",
]
