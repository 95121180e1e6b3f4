"""The end-to-end world: a devstack, a PKI, and the real trigger over the real adapters.

``World`` wraps a running devstack with a trust-anchor file and a frozen clock, and gives tests
what they need: seed Key Vault versions and APIM entities/backends, deliver Key Vault events
through ``on_key_vault_event`` (``build().get_user_function()``), and read back the full APIM
state and the request logs. ``World.use(...)`` builds the service with
``rotation.bootstrap.build_service`` from ``Settings.from_env(stack.env() | ...)`` (so the real
``KeyVaultCertificateSource``, ``ArmApimGateway`` and ``PolicyValidator``) and installs it as
``bootstrap.get_handler``. Audit records go to the real stdout sink *and* to a
``MemoryAuditSink`` (``world.audit``). The fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from cryptography.hazmat.primitives import hashes, serialization

from devstack.faults import LoggedRequest
from devstack.pki import (
    Issued,
    PrivateKey,
    make_key,
    mint_certificate,
    to_pem_bundle,
    to_pkcs12,
)
from devstack.stack import Devstack
from rotation import bootstrap
from rotation.adapters.audit import CompositeAuditSink, StructlogAuditSink
from rotation.config import Settings
from rotation.entrypoints.functions import on_key_vault_event
from rotation.service import RotationService
from rotation.testing import FrozenClock, MemoryAuditSink

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CERT = "partner-mtls"
NEW_VERSION = "Microsoft.KeyVault.CertificateNewVersionCreated"
NEAR_EXPIRY = "Microsoft.KeyVault.CertificateNearExpiry"
WRITES = ("PUT", "PATCH", "DELETE")

trigger = on_key_vault_event.build().get_user_function()


@dataclass(frozen=True)
class E2ePki:
    """One trusted root/intermediate and one untrusted chain; leaves minted on demand (fast:
    the keys are generated once per session)."""

    root: Issued
    intermediate: Issued
    stranger: list[Issued]  # [leaf, root] under a root nobody trusts
    key: PrivateKey = field(repr=False)
    serials: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    def leaf(self, *, not_before: datetime = NOW - timedelta(days=30), days: int = 365) -> Issued:
        """A fresh clientAuth leaf under the trusted intermediate."""
        return mint_certificate(
            "partner.certrotate.test",
            issuer=self.intermediate,
            key=self.key,
            not_before=not_before,
            not_after=not_before + timedelta(days=days),
            serial=next(self.serials),
        )

    def pfx(self, leaf: Issued | None = None) -> bytes:
        """PKCS#12 with key, leaf and the intermediate (as Key Vault stores it)."""
        return to_pkcs12(leaf or self.leaf(), [self.intermediate])

    def key_pem(self) -> bytes:
        """The shared leaf private key as PKCS#8 PEM (what must never be logged)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def pem(self, leaf: Issued | None = None, *, with_key: bool = True) -> bytes:
        """PEM bundle: key (optional), leaf, intermediate."""
        return to_pem_bundle(leaf or self.leaf(), [self.intermediate], with_key=with_key)


def mint_stranger() -> list[Issued]:
    """[leaf, root] under a root with its own name, which no test trusts."""
    root = mint_certificate("Stranger Root CA", key=make_key("ec", 256), ca=True)
    leaf = mint_certificate("partner.certrotate.test", issuer=root, key=make_key("ec", 256))
    return [leaf, root]


def secret_url(stack: Devstack, name: str, version: str | None) -> str:
    """The secret identifier APIM entities use (versionless when ``version`` is None)."""
    return f"{stack.vault_url}/secrets/{name}" + (f"/{version}" if version else "")


class World:
    """A devstack plus the helpers an end-to-end test needs."""

    def __init__(
        self, stack: Devstack, pki: E2ePki, tmp: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.stack, self.pki, self.monkeypatch = stack, pki, monkeypatch
        self.clock = FrozenClock(NOW)
        self.audit = MemoryAuditSink()
        self.anchors = tmp / "anchors.pem"
        self.anchors.write_bytes(pki.root.pem)
        self.svc1, self.svc2 = stack.apim_services
        self.thumbprints: dict[str, str] = {}
        self._event_ids = itertools.count(1)
        monkeypatch.setenv("ROTATION_VAULTS", stack.vault_url)

    # --- seeding ----------------------------------------------------------------------------

    def add_version(self, name: str = CERT, *, data: bytes | None = None, **opts: Any) -> str:
        """Import a version (a fresh trusted leaf unless ``data``); return its version id."""
        leaf = self.pki.leaf(**opts) if data is None else None
        version = self.stack.import_certificate(name, data or self.pki.pfx(leaf))
        if leaf is not None:
            self.thumbprints[version] = leaf.cert.fingerprint(_sha1()).hex().upper()
        return version

    def bind(self, service: str, entity: str, version: str | None, name: str = CERT) -> str:
        """Create entity ``entity`` in ``service`` pinned to ``version``; return its ARM id."""
        self.stack.put_apim_certificate(service, entity, secret_url(self.stack, name, version))
        return self.entity_id(service, entity)

    def add_backend(self, service: str, backend: str, *entities: str) -> None:
        """A backend presenting the given certificate entities (by entity id)."""
        ids = [self.entity_id(service, e) for e in entities]
        self.stack.put_backend(
            service, backend, url=f"https://{backend}.test", certificate_ids=ids
        )

    def entity_id(self, service: str, entity: str) -> str:
        """The ARM id of an entity, as backends reference it."""
        return f"{self.stack.service_id(service)}/certificates/{entity}"

    # --- service and delivery ---------------------------------------------------------------

    def settings(self, **overrides: str) -> Settings:
        """Settings from the stack's env, quick retries, plus ``ROTATION_*`` overrides. The
        canary is off unless asked for (``canary="enforce"``): the seeded backends' URLs are
        made up (``https://{backend}.test``)."""
        env = {
            **self.stack.env(),
            "ROTATION_TRUST_ANCHORS": str(self.anchors),
            "ROTATION_HTTP_RETRIES": "1",
            "ROTATION_CANARY": "off",
            **{f"ROTATION_{k.upper()}": v for k, v in overrides.items()},
        }
        return Settings.from_env(env)

    def use(self, gateway: Any = None, **overrides: str) -> RotationService:
        """Build the real service and make ``bootstrap.get_handler`` return it."""
        sink = CompositeAuditSink(StructlogAuditSink(), self.audit)
        service = build(self.settings(**overrides), self.clock, sink, gateway=gateway)
        self.monkeypatch.setattr(bootstrap, "get_handler", lambda: service)
        return service

    def event(
        self, version: str, name: str = CERT, *, event_type: str = NEW_VERSION, **data: Any
    ) -> func.EventGridEvent:
        """A real ``func.EventGridEvent`` as Key Vault publishes it for this stack's vault."""
        payload = event_data(self.stack, name, version) | data
        return func.EventGridEvent(
            id=f"eg-{next(self._event_ids)}", data=payload, topic=topic(self.stack),
            subject=name, event_type=event_type, event_time=self.clock.now(),
            data_version="1",
        )  # fmt: skip

    def deliver(self, version: str, name: str = CERT, **kwargs: Any) -> str:
        """Deliver one event through the trigger; return its event id."""
        return self.deliver_event(self.event(version, name, **kwargs))

    def deliver_event(self, event: func.EventGridEvent) -> str:
        """Deliver a prepared event through the trigger; return its id."""
        trigger(event)
        return event.id

    # --- reading back -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every entity and backend of every service: properties and ETag (deep copy)."""
        with self.stack.state.lock:
            return {
                svc.name: {
                    kind: {k: (e.name, copy.deepcopy(e.properties), e.etag) for k, e in store.items()}
                    for kind, store in (("certificates", svc.certificates), ("backends", svc.backends))
                }
                for svc in self.stack.state.services.values()
            }  # fmt: skip

    def entity(self, service: str, entity: str) -> dict[str, Any]:
        """An entity's properties (KeyError when it does not exist)."""
        with self.stack.state.lock:
            svc = self.stack.state.service(service)
            assert svc is not None
            return copy.deepcopy(svc.certificates[entity.lower()].properties)

    def pinned(self, service: str, entity: str) -> str:
        """The secret identifier an entity uses."""
        return str(self.entity(service, entity)["keyVault"]["secretIdentifier"])

    def backend_ids(self, service: str, backend: str) -> list[str]:
        """The certificate ids a backend presents."""
        with self.stack.state.lock:
            svc = self.stack.state.service(service)
            assert svc is not None
            props = svc.backends[backend.lower()].properties
            return list(props["credentials"]["certificateIds"])

    def presented(self, service: str, backend: str) -> list[str]:
        """The thumbprints a backend presents (through the entities it references)."""
        return [
            str(self.entity(service, ref.rsplit("/", 1)[-1])["thumbprint"])
            for ref in self.backend_ids(service, backend)
        ]

    def writes(self) -> list[LoggedRequest]:
        """Successful ARM writes (PUT/PATCH/DELETE with a 2xx answer)."""
        return [
            e
            for e in self.stack.request_log.arm.entries()
            if e.method in WRITES and 200 <= e.status < 300
        ]

    def kv_calls(self, path: str = "*") -> int:
        """Authenticated Key Vault requests matching ``path`` (challenges excluded)."""
        return sum(
            1
            for e in self.stack.request_log.kv.entries()
            if e.status != 401 and _glob(path, e.path)
        )


def _glob(pattern: str, path: str) -> bool:
    return fnmatch.fnmatchcase(path.lower(), pattern.lower())


def _sha1() -> Any:
    return hashes.SHA1()


def build(
    settings: Settings, clock: FrozenClock, sink: Any, *, gateway: Any = None
) -> RotationService:
    """``bootstrap.build_service`` with a frozen clock and the given audit sink (and gateway)."""
    return bootstrap.build_service(settings, clock=clock, audit=sink, gateway=gateway)


def topic(stack: Devstack) -> str:
    """The Event Grid topic (the vault's ARM id)."""
    return (
        f"/subscriptions/{stack.subscription_id}/resourceGroups/{stack.resource_group}"
        f"/providers/Microsoft.KeyVault/vaults/{stack.vault_name}"
    )


def event_data(stack: Devstack, name: str, version: str) -> dict[str, Any]:
    """The ``data`` object of a Key Vault certificate event for this stack."""
    return {
        "Id": f"{stack.vault_url}/certificates/{name}/{version}",
        "VaultName": stack.vault_name,
        "ObjectType": "Certificate",
        "ObjectName": name,
        "Version": version,
        "NBF": None,
        "EXP": None,
    }


def audit_lines(text: str) -> list[dict[str, Any]]:
    """The JSON audit lines (``audit: true``) in captured stdout."""
    lines = []
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("audit") is True:
            lines.append(line)
    return lines
