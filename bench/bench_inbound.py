"""Inbound benchmark: one inbound rotation on a large APIM service, reads in flight at once
(``ROTATION_ARM_CONCURRENCY``) vs one at a time, with a fixed ARM latency.

Run: ``.venv/bin/python bench/bench_inbound.py [--apis 100,500] [--products 10]
[--operations 4] [--latency 0.02] [--concurrency 8] [--rounds 1]``.

For each size, one devstack holds one APIM service: ``--products`` products, ``--apis`` APIs of
``--operations`` operations each (``Devstack.put_*``), every other API with a policy document
that pins nobody, and ``partner-mtls`` v1's thumbprint pinned in 4 documents, one per scope
(global, a product, an API and one operation of another API). The ARM stand-in then answers
every request after ``--latency`` seconds (the devstack's LATENCY fault, standing in for ARM's
50–100 ms). Each round imports a new version of ``partner-mtls`` (untimed) and handles its
event with the real service (``bootstrap.build_service``, ``ROTATION_INBOUND_CERTIFICATES``
naming the certificate; no lock, no audit table, the canary off), once with
``ROTATION_ARM_CONCURRENCY=1`` (the baseline: the reads one after another, as before) and once
with ``--concurrency``, in alternating order; each side keeps its service (and its SDK clients)
across rounds, as a Functions worker does, after one warm-up rotation without the latency.

Per rotation: the ARM requests the stand-in logged, against the bound

    ⌈P/100⌉ + ⌈A/100⌉ + A·⌈ops/100⌉ list pages + (1 + P + A + O) policy reads
    + 2 per changed document (the compare-and-swap read and the PUT)

(the rotation must make exactly these: the 4 pinned documents learn the new version), the most
requests the stand-in had in flight at once, and the wall time of ``RotationService.handle``.
The ratio is the concurrent side's median wall time over the baseline's. Memory: the peak RSS
of this process (the devstack's state included), and the tracemalloc peak of one rotation on
each side (untimed).

Exit status is non-zero when a rotation's ARM requests differ from the bound, a rotation does
not write the 4 documents, the concurrent side has more than ``--concurrency`` requests in
flight, or its ratio is above 0.5 at the largest size.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

from devstack.scene import CERTIFICATE, ScaleScene, build_scale_scene
from devstack.stack import Devstack
from rotation.bootstrap import build_service
from rotation.config import Settings
from rotation.domain.model import Trigger
from rotation.intake.events import parse_payload
from rotation.logconfig import configure_logging
from rotation.service import RotationService

SERVICE = "apim-inbound"
ARM_PAGE = 100
PINNED = 4  # documents pinning the certificate: one per scope
BUDGET = 0.5  # concurrent wall time / one at a time, at the largest size


def pinning(thumbprint: str, tag: str) -> str:
    return (
        f"<policies>\r\n  <inbound>\r\n    <base />\r\n    <!-- {tag} -->\r\n"
        '    <validate-client-certificate validate-trust="true">\r\n      <identities>\r\n'
        f'        <identity thumbprint="{thumbprint}" />\r\n      </identities>\r\n'
        "    </validate-client-certificate>\r\n  </inbound>\r\n</policies>"
    )


OTHER = (
    '<policies><inbound><base /><rate-limit calls="100" renewal-period="60" /></inbound>'
    "<backend><base /></backend></policies>"
)


@dataclass(frozen=True)
class Shape:
    products: int
    apis: int
    operations: int

    @property
    def scopes(self) -> int:
        return 1 + self.products + self.apis + self.apis * self.operations

    @property
    def list_pages(self) -> int:
        pages = math.ceil(self.products / ARM_PAGE) + max(1, math.ceil(self.apis / ARM_PAGE))
        return pages + self.apis * max(1, math.ceil(self.operations / ARM_PAGE))

    def bound(self, changed: int) -> int:
        return self.list_pages + self.scopes + 2 * changed


def build(stack: Devstack, shape: Shape) -> ScaleScene:
    """The scene: products, APIs, operations, and v1 pinned once per scope."""
    scene = build_scale_scene(stack, backends=1, bound=1, entities=2, workers=1, service=SERVICE)
    thumbprint = stack.state.kv.versions(CERTIFICATE)[-1].thumbprint
    stack.put_policy(SERVICE, pinning(thumbprint, "global"))
    for p in range(shape.products):
        stack.put_product(SERVICE, f"product-{p:03d}", display_name=f"product {p}")
    stack.put_policy(
        SERVICE, pinning(thumbprint, "product"), product=f"product-{shape.products // 2:03d}"
    )
    for a in range(shape.apis):
        api = f"api-{a:04d}"
        stack.put_api(SERVICE, api, display_name=api, path=api)
        if a % 2:
            stack.put_policy(SERVICE, OTHER, api=api)
        for o in range(shape.operations):
            stack.put_operation(SERVICE, api, f"op-{o}", method="GET", url_template=f"/op-{o}")
    stack.put_policy(SERVICE, pinning(thumbprint, "api"), api=f"api-{shape.apis - 2:04d}")
    stack.put_policy(
        SERVICE,
        pinning(thumbprint, "operation"),
        api=f"api-{shape.apis // 2:04d}",
        operation="op-1",
    )
    return scene


@dataclass
class Side:
    """One concurrency setting: its service and what each timed rotation cost."""

    concurrency: int
    service: RotationService
    wall: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    peak: list[int] = field(default_factory=list)
    traced_kib: float = 0.0


def make_side(scene: ScaleScene, concurrency: int) -> Side:
    env = scene.env(
        ROTATION_INBOUND_CERTIFICATES=f"{scene.stack.vault_url}/certificates/{CERTIFICATE}",
        ROTATION_ARM_CONCURRENCY=str(concurrency),
        ROTATION_LOCK="off",
        ROTATION_CANARY="off",
    )
    for name in ("AzureWebJobsStorage", "ROTATION_AUDIT_TABLE"):
        env.pop(name, None)
    return Side(concurrency, build_service(Settings.from_env(env)))


def rotate(scene: ScaleScene, side: Side, *, record: bool = True, trace: bool = False) -> None:
    """Import a new version (untimed) and handle its event; record its cost."""
    version = scene.new_version()
    (event,) = parse_payload(scene.event(version), allowed_vault_urls=[scene.stack.vault_url])
    log = scene.stack.request_log
    log.clear()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    outcome = side.service.handle(event, trigger=Trigger.EVENTGRID)
    wall = time.perf_counter() - start
    if trace:
        side.traced_kib = tracemalloc.get_traced_memory()[1] / 1024
        tracemalloc.stop()
    if str(outcome.decision) != "applied":
        raise RuntimeError(
            f"concurrency {side.concurrency}: {outcome.decision} (expected applied)"
        )
    if not record:
        return
    arm = log.arm.entries()
    side.wall.append(wall)
    side.requests.append(len(arm))
    side.writes.append(sum(1 for e in arm if e.method == "PUT"))
    side.peak.append(log.arm.peak_in_flight())


def measure(shape: Shape, latency: float, concurrency: int, rounds: int) -> tuple[Side, Side]:
    with Devstack.start(services=(SERVICE,)) as stack:
        started = time.perf_counter()
        scene = build(stack, shape)
        print(
            f"  scene: {shape.scopes:,} scopes in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        base, ours = make_side(scene, 1), make_side(scene, concurrency)
        for side in (base, ours):  # clients built, challenges answered; untimed
            rotate(scene, side, record=False)
        for side in (base, ours):  # memory of one rotation; untimed (tracemalloc is slow)
            rotate(scene, side, record=False, trace=True)
        stack.faults_arm.delay("*", seconds=latency, probability=1.0)
        for i in range(rounds):
            for side in (base, ours) if i % 2 == 0 else (ours, base):
                rotate(scene, side)
        return base, ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apis", default="100,500")
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--operations", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    configure_logging(json=True, stream=open(os.devnull, "w"))  # noqa: SIM115, PTH123 - process lifetime
    sizes = [int(s) for s in args.apis.split(",")]
    if min(sizes) < 2 or args.operations < 2 or args.products < 1:
        parser.error("need at least 2 APIs, 2 operations and 1 product")
    ok = True
    c = args.concurrency
    header = (
        f"| APIs | scopes (1+P+A+O) | ARM requests / bound | writes | peak in flight (1 / {c}) "
        f"| wall, 1 at a time (baseline) | wall, {c} at a time | ratio | traced peak (1 / {c}) |"
    )
    lines = [header, "|" + "---|" * 9]
    ratio = 0.0
    for apis in sizes:
        shape = Shape(args.products, apis, args.operations)
        print(f"{apis} APIs x {args.operations} operations, {args.products} products:", flush=True)
        base, ours = measure(shape, args.latency, c, args.rounds)
        bound = shape.bound(PINNED)
        requests = sorted(set(base.requests + ours.requests))
        writes = sorted(set(base.writes + ours.writes))
        ok &= requests == [bound] and writes == [PINNED] and max(ours.peak) <= c
        ratio = statistics.median(ours.wall) / statistics.median(base.wall)
        lines.append(
            f"| {apis:,} | {shape.scopes:,} | {'/'.join(map(str, requests))} / {bound}"
            f"{'' if requests == [bound] else ' DIFFERENT'} | {'/'.join(map(str, writes))} "
            f"| {max(base.peak)} / {max(ours.peak)} | {statistics.median(base.wall):.2f} s "
            f"| {statistics.median(ours.wall):.2f} s | {ratio:.2f}x "
            f"| {base.traced_kib:,.0f} / {ours.traced_kib:,.0f} KiB |"
        )
        print(lines[-1], flush=True)
    ok &= ratio <= BUDGET
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print("\n".join(lines))
    print(
        f"\n{args.latency * 1000:.0f} ms per ARM request (LATENCY fault); {args.rounds} round(s), "
        f"medians; bound: list pages + 1 read per scope + 2 per changed document; ratio budget "
        f"<= {BUDGET}x at {sizes[-1]:,} APIs. Peak RSS of this process (devstack included): "
        f"{rss_mib:.0f} MiB."
    )
    loadavg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end: {loadavg} ({os.cpu_count()} CPUs)")
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
