"""Rotation benchmarks against the devstack: Azure calls versus the budgeted lower bound, and wall
time versus a minimal hand-written SDK script (docs/architecture.md, "Budgets").

Run: ``.venv/bin/python bench/bench_rotation.py [--rounds N]``. One devstack, one PKI; the scene
is two APIM services: ``apim-devstack-1`` with 150 entities (2 list pages) and 250 backends (3
pages), 3 of them bound to ``partner-mtls``; ``apim-devstack-2`` with 41 entities and 60 backends,
2 bound. Other certificates' entities and backends fill the pages.

1. Calls. For ``pin``, ``blue-green`` and ``follow`` (its entities versionless), each with the
   canary off and on (``ROTATION_CANARY=warn``; the scene's backends do not resolve, so the
   probes cost no Azure call): after a warm-up rotation (clients built, Key Vault
   challenges answered), import a new version and handle its event through ``RotationService``
   (built by ``bootstrap.build_service`` over the real adapters). Every request both stand-ins
   logged is counted and compared with the lower bound computed independently from the APIM
   state before/after: version-list pages (25 per page) + 1 secret read + entity-list pages (100
   per page) per service + (blue-green only) backend-list pages for each service holding a
   binding (pin never changes a backend, so it does not list them) + 1 write per
   target whose state changed + 1 verify read per entity written, plus one ETag read per
   conditional update of an existing target (ARM list items carry no ETag, so ``If-Match``
   needs a GET; the budgeted count assumes the list supplies it). ``follow`` writes with
   ``refreshSecret``, which needs no ``If-Match``: 1 refresh + 1 verify read per entity. The
   canary adds 1 secret read per distinct version in use (its baseline; the candidate's secret
   is the one validation read). Must be equal; every part is printed.
2. Wall time (pin). Each round imports a new version for each side (untimed) and times, in
   alternating order: ``RotationService.handle`` of the parsed event (intake, lists, version list,
   secret read, validation, PUT + verify per entity, audit lines to /dev/null) versus
   ``hand_written_rotation``: the same SDK calls made directly with the same client settings
   (including the ETag read before each conditional PUT), no validation, no audit. Medians, ratio, budget 1.3x.

Exit status is non-zero when a call count differs from its bound or the ratio exceeds 1.3x.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.keyvault.certificates import CertificateClient
from azure.keyvault.secrets import SecretClient
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import (
    CertificateCreateOrUpdateParameters,
    KeyVaultContractCreateProperties,
)

from devstack.pki import make_key, mint_certificate, mint_chain, to_pkcs12
from devstack.stack import Devstack
from rotation.adapters.credentials import StaticTokenCredential
from rotation.bootstrap import build_service
from rotation.config import Settings
from rotation.domain.model import Trigger
from rotation.intake.events import parse_payload
from rotation.logconfig import configure_logging
from rotation.service import RotationService
from rotation.testing import FrozenClock

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CERT = "partner-mtls"
BUDGET = 1.3
KV_PAGE, ARM_PAGE = 25, 100  # the stand-ins' (and the services') list page sizes


class Scene:
    """A devstack seeded with the benchmark scene, and a way to mint new versions."""

    def __init__(self, stack: Devstack, anchors: Path, *, versionless: bool = False) -> None:
        self.stack, self.anchors = stack, anchors
        chain = mint_chain(depth=3, kind="ec", size=256)
        self.intermediate, self.key = chain[1], make_key("ec", 256)
        self.svc1, self.svc2 = stack.apim_services
        anchors.write_bytes(chain[2].pem)
        first = self.new_version()
        other = self.new_version("other")
        for svc, n_entities, n_backends, n_bound in (
            (self.svc1, 150, 250, 3),
            (self.svc2, 41, 60, 2),
        ):
            self.bind(svc, CERT, CERT, None if versionless else first)
            for i in range(n_entities - 1):
                self.bind(svc, f"other-{i:03d}", "other", other)
            for i in range(n_backends):
                entity = CERT if i < n_bound else f"other-{i % (n_entities - 1):03d}"
                ref = f"{stack.service_id(svc)}/certificates/{entity}"
                stack.put_backend(
                    svc, f"backend-{i:03d}", url="https://b.test", certificate_ids=[ref]
                )

    def new_version(self, name: str = CERT) -> str:
        """Import a fresh trusted leaf as a new version of ``name``."""
        leaf = mint_certificate(
            "partner.bench.test", issuer=self.intermediate, key=self.key,
            not_before=NOW - timedelta(days=10), not_after=NOW + timedelta(days=300),
        )  # fmt: skip
        return self.stack.import_certificate(name, to_pkcs12(leaf, [self.intermediate]))

    def bind(self, svc: str, entity: str, name: str, version: str | None) -> None:
        url = f"{self.stack.vault_url}/secrets/{name}" + (f"/{version}" if version else "")
        self.stack.put_apim_certificate(svc, entity, url)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **self.stack.env(), "ROTATION_TRUST_ANCHORS": str(self.anchors),
            "ROTATION_CANARY": "off", **extra,
        }  # fmt: skip

    def service(self, strategy: str, canary: str = "off") -> RotationService:
        settings = Settings.from_env(
            self.env(
                ROTATION_STRATEGY=strategy,
                ROTATION_RETAIN_PREVIOUS="1",
                ROTATION_CANARY=canary,
                ROTATION_CANARY_TIMEOUT="2",
            )
        )
        return build_service(settings, clock=FrozenClock(NOW))

    def event(self, version: str) -> dict[str, Any]:
        """The raw Event Grid event Key Vault would publish for ``version``."""
        return {
            "id": f"bench-{version}", "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
            "subject": CERT, "eventTime": NOW.isoformat(), "dataVersion": "1",
            "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/"
            + self.stack.vault_name,
            "data": {"Id": f"{self.stack.vault_url}/certificates/{CERT}/{version}",
                     "VaultName": self.stack.vault_name, "ObjectType": "Certificate",
                     "ObjectName": CERT, "Version": version},
        }  # fmt: skip

    def handle(self, service: RotationService, version: str) -> str:
        """Intake + ``RotationService.handle``; returns the decision."""
        (event,) = parse_payload(self.event(version), allowed_vault_urls=[self.stack.vault_url])
        return str(service.handle(event, trigger=Trigger.EVENTGRID).decision)

    def snapshot(self) -> dict[tuple[str, str, str], str]:
        """(service, kind, id) -> ETag for every entity and backend (ETags move on every write)."""
        with self.stack.state.lock:
            return {
                (svc.name, kind, key): entity.etag
                for svc in self.stack.state.services.values()
                for kind, store in (("certificates", svc.certificates), ("backends", svc.backends))
                for key, entity in store.items()
            }


def lower_bound(
    scene: Scene,
    before: dict[tuple[str, str, str], str],
    after: dict[tuple[str, str, str], str],
    *,
    strategy: str = "pin",
    canary: str = "off",
) -> tuple[int, int]:
    """(the budget as written, ETag reads the wire requires on top).

    Budget: version pages + 1 secret + list pages + 1 write per changed target + 1 verify each.
    ARM list items carry no ETag (the ETag is a header of GET/HEAD/PUT/PATCH),
    so every conditional update of an existing target (an entity re-pinned, a backend moved)
    needs one read for its ``If-Match``; creates and retirements (``If-Match: *`` on an entity no
    backend references) need none. The budgeted count assumes the ETag comes with the list.
    """
    versions = math.ceil(len(scene.stack.state.kv.versions(CERT)) / KV_PAGE)
    pages = 0
    for svc in (scene.svc1, scene.svc2):
        entities = [k for k in before if k[0] == svc and k[1] == "certificates"]
        pages += max(1, math.ceil(len(entities) / ARM_PAGE))
        # Backends are listed by blue-green (it moves them) and by the canary (it probes them).
        lists_backends = strategy == "blue-green" or canary != "off"
        if lists_backends and any(k[2] == CERT for k in entities):
            backends = [k for k in before if k[0] == svc and k[1] == "backends"]
            pages += max(1, math.ceil(len(backends) / ARM_PAGE))
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    verified = {k for k in changed if k[1] == "certificates" and k in after}
    # follow's refreshSecret changes no reference: no compare-and-swap, no If-Match read
    etag_reads = (
        set() if strategy == "follow" else {k for k in changed if k in before and k in after}
    )
    return versions + 1 + pages + len(changed) + len(verified), len(etag_reads)


_LABELS = (
    ("kv", "GET", "/certificates/*/versions", "version list page"),
    ("kv", "GET", "/secrets/*", "secret read"),
    ("arm", "GET", "*/certificates", "entity list page"),
    ("arm", "GET", "*/backends", "backend list page"),
    ("arm", "GET", "*/certificates/*", "entity GET"),
    ("arm", "GET", "*/backends/*", "backend GET"),
    ("arm", "PUT", "*/certificates/*", "entity PUT"),
    ("arm", "PATCH", "*/backends/*", "backend PATCH"),
    ("arm", "DELETE", "*/certificates/*", "entity DELETE"),
    ("arm", "POST", "*/certificates/*/refreshSecret", "entity refreshSecret"),
)


def describe(stack: Devstack) -> str:
    """The logged requests by kind, e.g. ``entity PUT x2``."""
    logs = {"kv": stack.request_log.kv, "arm": stack.request_log.arm}
    counts = [(label, logs[server].count(method, path)) for server, method, path, label in _LABELS]
    return ", ".join(f"{label} x{n}" for label, n in counts if n)


def count_calls(strategy: str, canary: str = "off") -> tuple[int, tuple[int, int, int], str]:
    """(calls made, (budget bound, ETag reads, canary baseline reads), breakdown) for one
    rotation with ``strategy`` and ``ROTATION_CANARY=canary``."""
    with tempfile.TemporaryDirectory() as tmp, Devstack.start() as stack:
        scene = Scene(stack, Path(tmp) / "anchors.pem", versionless=strategy == "follow")
        service = scene.service(strategy, canary)
        for _ in range(2):  # warm-up: clients, challenges; blue-green then has one to retire
            scene.handle(service, scene.new_version())
        in_use = len(stack.state.kv.versions(CERT))  # the newest before the candidate
        version = scene.new_version()
        before = scene.snapshot()
        stack.request_log.clear()
        decision = scene.handle(service, version)
        after = scene.snapshot()
        entries = stack.request_log.kv.entries() + stack.request_log.arm.entries()
        assert decision == "applied", decision
        assert all(e.status < 400 for e in entries), [e for e in entries if e.status >= 400]
        breakdown = describe(stack)
        budget, etag_reads = lower_bound(scene, before, after, strategy=strategy, canary=canary)
        baselines = 1 if canary != "off" and in_use else 0  # one distinct version in use
        return len(entries), (budget, etag_reads, baselines), breakdown


class Clients:
    """The hand-written script's SDK clients, with the settings bootstrap gives the adapters."""

    def __init__(self, scene: Scene, retries: int) -> None:
        stack = scene.stack
        credential = StaticTokenCredential(stack.token)
        common: dict[str, Any] = {
            "connection_verify": str(stack.ca_bundle),
            "retry_total": retries,
        }
        kv: dict[str, Any] = {**common, "verify_challenge_resource": False}
        self.certs = CertificateClient(stack.vault_url, credential, **kv)
        self.secrets = SecretClient(stack.vault_url, credential, **kv)
        self.apim = ApiManagementClient(
            credential, stack.subscription_id, base_url=stack.arm_endpoint, **common
        )
        self.rg, self.vault = stack.resource_group, stack.vault_url
        self.services = (scene.svc1, scene.svc2)


def hand_written_rotation(c: Clients, name: str) -> None:
    """The minimal script making certrotate's SDK calls for pin: find bound entities, newest
    version, read its secret, then per entity GET (ETag), PUT with If-Match, GET (verify)."""
    prefix = f"{c.vault}/secrets/{name}/".lower()
    bound: list[tuple[str, str, str]] = []  # (service, entity id, secret identifier)
    for svc in c.services:  # pin lists the entities only: it never changes a backend
        bound += [
            (svc, e.name or "", e.key_vault.secret_identifier or "")
            for e in c.apim.certificate.list_by_service(c.rg, svc)
            if e.key_vault and (e.key_vault.secret_identifier or "").lower().startswith(prefix)
        ]
    versions = [v for v in c.certs.list_properties_of_certificate_versions(name) if v.enabled]
    newest = max(versions, key=lambda v: v.created_on or datetime.min.replace(tzinfo=UTC))
    c.secrets.get_secret(name, newest.version)
    target = f"{c.vault}/secrets/{name}/{newest.version}"
    for svc, entity, current in bound:
        if current != target:
            # as certrotate does: a fresh read for the If-Match ETag (lists carry none), PUT, verify
            etag = _etag_of(c, svc, entity)
            params = CertificateCreateOrUpdateParameters(
                key_vault=KeyVaultContractCreateProperties(secret_identifier=target)
            )
            c.apim.certificate.create_or_update(c.rg, svc, entity, params, if_match=etag)
            got = c.apim.certificate.get(c.rg, svc, entity)
            assert got.thumbprint
            assert newest.x509_thumbprint
            assert got.thumbprint.upper() == newest.x509_thumbprint.hex().upper()


def _etag_of(c: Clients, svc: str, entity: str) -> str:
    """GET the entity, returning its ``ETag`` header (through the SDK's ``cls`` hook)."""
    etag: Any = c.apim.certificate.get(c.rg, svc, entity, cls=lambda _p, _m, h: h["ETag"])
    return str(etag)


def wall_time(rounds: int) -> tuple[float, float]:
    """Medians (seconds) of (ours, baseline) over ``rounds`` interleaved rotations each."""
    with tempfile.TemporaryDirectory() as tmp, Devstack.start() as stack:
        scene = Scene(stack, Path(tmp) / "anchors.pem")
        service = scene.service("pin")
        clients = Clients(scene, Settings.from_env(scene.env()).http_retries)
        scene.handle(service, scene.new_version())  # warm both: clients, challenges
        scene.new_version()
        hand_written_rotation(clients, CERT)
        ours: list[float] = []
        base: list[float] = []

        def run_ours() -> None:
            version = scene.new_version()
            start = time.perf_counter()
            decision = scene.handle(service, version)
            ours.append(time.perf_counter() - start)
            assert decision == "applied", decision

        def run_base() -> None:
            scene.new_version()
            start = time.perf_counter()
            hand_written_rotation(clients, CERT)
            base.append(time.perf_counter() - start)

        for i in range(rounds):
            order: tuple[Callable[[], None], ...] = (
                (run_ours, run_base) if i % 2 else (run_base, run_ours)
            )
            for step in order:
                step()
        return statistics.median(ours), statistics.median(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    configure_logging(json=True, stream=open(os.devnull, "w"))  # noqa: SIM115, PTH123 - process lifetime
    ok = True
    print("1. Azure calls per rotation (steady state, 2 services, 5 bound backends)")
    for strategy in ("pin", "blue-green", "follow"):
        for canary in ("off", "warn"):
            calls, (budget, etag_reads, baselines), breakdown = count_calls(strategy, canary)
            bound = budget + etag_reads + baselines
            verdict = "EQUAL" if calls == bound else f"NOT EQUAL ({calls - bound:+d})"
            ok &= calls == bound
            print(
                f"   {strategy:<10} canary {canary:<4} calls {calls} / lower bound {bound} "
                f"(budget {budget} + {etag_reads} If-Match reads + {baselines} canary baseline "
                f"reads)  {verdict}"
            )
            print(f"              {breakdown}")
    ours, base = wall_time(args.rounds)
    ratio = ours / base
    verdict = "PASS" if ratio <= BUDGET else "FAIL"
    ok &= ratio <= BUDGET
    print(f"2. Wall time per rotation (pin), medians over {args.rounds} interleaved rounds each")
    print(f"   hand-written SDK script : {base * 1000:.1f} ms")
    print(f"   RotationService.handle  : {ours * 1000:.1f} ms")
    print(f"   ratio {ratio:.2f}x (budget <= {BUDGET}x) {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
