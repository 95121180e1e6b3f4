"""Replay benchmark: 10,000 events streamed from a file in constant memory; duplicates are free,
and consecutive events of one certificate share its APIM listing.

Run: ``.venv/bin/python bench/bench_replay.py [--events N] [--devstack-events M]``.

A JSON Lines file holds N Event Grid events for one certificate, mostly duplicates: each names
one of three versions (v3 the newest), in a seeded random order, with a Secret event (ignored)
every 50th. Each event is read with ``rotation.intake.events.iter_file_events`` (the intake the
``replay`` command uses) and handled by ``RotationService.batch()`` (what ``replay`` hands its
events to) of a service built by ``bootstrap.build_service`` with the real ``PolicyValidator``;
audit records go to a sink that only counts decisions.

1. Memory (fakes). The Key Vault and APIM adapters are the in-memory fakes of
   ``rotation.testing``: the devstack answers a duplicate in milliseconds, too slow for 10,000
   events under ``tracemalloc``. The tracemalloc peak of a 1,000-event and an N-event replay
   (fresh world each, after a warm-up replay) are compared: the ratio should be ~1.
2. Writes and listings (devstack, real adapters). M events from the same kind of file, replayed
   twice on fresh stacks: through ``RotationService.handle`` per event (the baseline: APIM is
   listed afresh for every event, as the Functions trigger does) and through
   ``RotationService.batch()``. APIM writes are counted from the request log and must equal the
   number of bound targets (the first event rotates; every duplicate after it writes nothing)
   both ways; the decisions must be the same both ways; the batch must list APIM exactly twice
   (the first event, and the first event after its write), where the baseline lists it for
   every event that reaches APIM. Wall times of both are printed.

Exit status is non-zero when the peak ratio exceeds 1.5, a duplicate wrote to APIM, the two
ways decided differently, or the batch listed APIM more than twice.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devstack.pki import Issued, make_key, mint_certificate, mint_chain, to_pkcs12
from devstack.stack import Devstack
from rotation.bootstrap import build_service
from rotation.config import Settings
from rotation.domain.errors import InvalidEventError
from rotation.domain.model import AuditRecord, Trigger
from rotation.intake.events import iter_file_events
from rotation.ports import EventHandler
from rotation.service import RotationService
from rotation.testing import FakeApimGateway, FakeCertificateSource, FrozenClock

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CERT = "partner-mtls"
VAULT = "https://kv-replay.vault.azure.net"
SERVICES = tuple(
    f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-{n}"
    for n in (1, 2)
)
MAX_PEAK_RATIO = 1.5


class CountingSink:
    """An ``AuditSink`` that keeps only a count per decision (a list would grow with N)."""

    def __init__(self) -> None:
        self.decisions: Counter[str] = Counter()

    def write(self, record: AuditRecord) -> None:
        if record.event != "rotation.target":
            self.decisions[str(record.decision)] += 1


def write_events(path: Path, n: int, vault_url: str, vault_name: str, versions: list[str]) -> None:
    """N events, one JSON object per line, mostly duplicates of ``versions``."""
    rng = random.Random(5)
    with path.open("w") as out:
        for i in range(n):
            version = versions[-1] if i == 0 else rng.choice(versions)
            secret = i % 50 == 49
            event = {
                "id": f"replay-{i}", "subject": CERT, "dataVersion": "1",
                "eventType": "Microsoft.KeyVault."
                + ("SecretNewVersionCreated" if secret else "CertificateNewVersionCreated"),
                "eventTime": "2026-03-01T12:00:00.1234567Z",
                "data": {"Id": f"{vault_url}/{'secrets' if secret else 'certificates'}/{CERT}/{version}",
                         "VaultName": vault_name, "ObjectType": "Secret" if secret else "Certificate",
                         "ObjectName": CERT, "Version": version},
            }  # fmt: skip
            out.write(json.dumps(event) + "\n")


def replay(handler: EventHandler, path: Path, vaults: tuple[str, ...]) -> int:
    """Stream the file through intake and the handler; returns the number of events handled."""
    handled = 0
    for _, item in iter_file_events(path, allowed_vault_urls=vaults):
        if isinstance(item, InvalidEventError):
            raise item
        handler.handle(item, trigger=Trigger.CLI)
        handled += 1
    return handled


class Pki:
    def __init__(self, tmp: Path) -> None:
        chain = mint_chain(depth=3, kind="ec", size=256)
        self.intermediate, key = chain[1], make_key("ec", 256)
        self.anchors = tmp / "anchors.pem"
        self.anchors.write_bytes(chain[2].pem)
        self.leaves: list[Issued] = [
            mint_certificate(
                "partner.replay.test",
                issuer=self.intermediate,
                key=key,
                not_before=NOW - timedelta(days=30 - i),
                not_after=NOW + timedelta(days=300),
            )
            for i in range(3)
        ]

    def pfx(self, i: int) -> bytes:
        return to_pkcs12(self.leaves[i], [self.intermediate])


def fake_world(pki: Pki) -> tuple[RotationService, FakeApimGateway, CountingSink, Settings]:
    """Fakes with three versions; v1 bound in two services (one entity + one backend each)."""
    source = FakeCertificateSource()
    versions = [f"{i + 1}" * 32 for i in range(3)]
    for i, version in enumerate(versions):
        source.add_version(
            VAULT, CERT, version, created=NOW - timedelta(days=30 - i), secret=pki.pfx(i),
            leaf=pki.leaves[i].cert,
        )  # fmt: skip
    gateway = FakeApimGateway(source)
    for svc in SERVICES:
        gateway.add_certificate(
            svc, CERT, secret_identifier=f"{VAULT}/secrets/{CERT}/{versions[0]}"
        )
        gateway.add_backend(svc, "partner-api", [f"{svc}/certificates/{CERT}"])
    settings = Settings.from_env(
        {"ROTATION_VAULTS": VAULT, "ROTATION_APIM_SERVICES": ",".join(SERVICES),
         "ROTATION_TRUST_ANCHORS": str(pki.anchors)}
    )  # fmt: skip
    sink = CountingSink()
    service = build_service(
        settings, clock=FrozenClock(NOW), source=source, gateway=gateway, audit=sink
    )
    return service, gateway, sink, settings


def measure_fakes(pki: Pki, path: Path) -> tuple[int, float, Counter[str], int, int]:
    """(tracemalloc peak bytes, seconds, decisions, APIM writes, APIM list calls) of one
    replay through ``RotationService.batch()`` on a fresh world."""
    service, gateway, sink, settings = fake_world(pki)
    tracemalloc.start()
    start = time.perf_counter()
    replay(service.batch(), path, settings.vaults)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lists = gateway.calls["list_certificates"] + gateway.calls["list_backends"]
    return peak, elapsed, sink.decisions, len(gateway.updates), lists


class DevstackRun:
    """What one N-event replay against a fresh devstack did."""

    def __init__(self, pki: Pki, tmp: Path, n: int, *, batched: bool) -> None:
        with Devstack.start() as stack:
            versions = [stack.import_certificate(CERT, pki.pfx(i)) for i in range(3)]
            self.targets = 0
            for svc in stack.apim_services:
                stack.put_apim_certificate(
                    svc, CERT, f"{stack.vault_url}/secrets/{CERT}/{versions[0]}"
                )
                self.targets += 1
            env = {**stack.env(), "ROTATION_TRUST_ANCHORS": str(pki.anchors)}
            settings = Settings.from_env(env)
            sink = CountingSink()
            service = build_service(settings, clock=FrozenClock(NOW), audit=sink)
            path = tmp / f"devstack-events-{'batch' if batched else 'handle'}.jsonl"
            write_events(path, n, stack.vault_url, stack.vault_name, versions)
            log = stack.request_log
            log.arm.clear()
            log.kv.clear()
            start = time.perf_counter()
            replay(service.batch() if batched else service, path, settings.vaults)
            self.seconds = time.perf_counter() - start
            self.writes = sum(log.arm.count(m, "*") for m in ("PUT", "PATCH", "DELETE"))
            self.lists = sum(
                1
                for e in log.arm.entries()
                if e.method == "GET"
                and e.path.rstrip("/").endswith(("/certificates", "/backends"))
            )
            self.arm = len(log.arm.entries())
            self.secrets = sum(
                1 for e in log.kv.entries() if e.path.startswith("/secrets/") and e.status == 200
            )
            self.decisions = sink.decisions

    def describe(self) -> str:
        return (
            f"{self.seconds:5.2f} s, APIM list calls {self.lists:>5}, ARM requests {self.arm:>5}, "
            f"APIM writes {self.writes}, secret reads {self.secrets}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--devstack-events", type=int, default=1_000)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pki = Pki(tmp)
        files = {}
        for n in (1_000, args.events):
            files[n] = tmp / f"events-{n}.jsonl"
            write_events(files[n], n, VAULT, "kv-replay", [f"{i + 1}" * 32 for i in range(3)])
        measure_fakes(pki, files[1_000])  # warm-up: imports and caches stay out of the peaks
        print(
            "1. Memory: intake + RotationService.batch(), fake Key Vault/APIM, real PolicyValidator"
        )
        peaks = {}
        for n, path in files.items():
            peak, elapsed, decisions, writes, lists = measure_fakes(pki, path)
            peaks[n] = peak
            ok &= writes == len(SERVICES)
            print(f"   {n:>6,} events: peak {peak / 1024:7.1f} KiB, {elapsed:5.2f} s "
                  f"({elapsed / n * 1e6:.0f} us/event), APIM writes {writes}, APIM list calls {lists}, "
                  f"{dict(decisions)}")  # fmt: skip
        ratio = peaks[args.events] / peaks[1_000]
        ok &= ratio <= MAX_PEAK_RATIO
        print(f"   peak ratio {args.events:,}/1,000 events: {ratio:.2f} (<= {MAX_PEAK_RATIO}: "
              f"{'PASS' if ratio <= MAX_PEAK_RATIO else 'FAIL'})")  # fmt: skip
        n = args.devstack_events
        fresh = DevstackRun(pki, tmp, n, batched=False)
        shared = DevstackRun(pki, tmp, n, batched=True)
        reaching = sum(c for d, c in fresh.decisions.items() if d != "ignored")
        per_listing = fresh.lists // reaching if reaching else 0
        writes_ok = fresh.writes == fresh.targets and shared.writes == shared.targets
        same = shared.decisions == fresh.decisions and shared.secrets == fresh.secrets
        shared_ok = shared.lists == 2 * per_listing
        ok &= writes_ok and same and shared_ok
        print(f"2. Devstack, real adapters, {n} events ({reaching} reach APIM), "
              f"{dict(shared.decisions)}")  # fmt: skip
        print(f"   handle per event (baseline): {fresh.describe()}")
        print(f"   batch (replay)             : {shared.describe()}")
        print(f"   writes = bound targets ({fresh.targets}) both ways: "
              f"{'PASS' if writes_ok else 'FAIL'} (duplicates write nothing); same decisions and "
              f"secret reads: {'PASS' if same else 'FAIL'}")  # fmt: skip
        print(f"   batch listings: {shared.lists} list calls = 2 listings of {per_listing} "
              f"(the first event, and the first after its write): "
              f"{'PASS' if shared_ok else 'FAIL'}; baseline {fresh.lists} "
              f"({fresh.lists / max(shared.lists, 1):.0f}x), wall time "
              f"{fresh.seconds / shared.seconds:.2f}x")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
