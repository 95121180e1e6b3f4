"""End to end: the Functions worker keeps a certificate's APIM listing between invocations.

Events go through the real trigger (``on_key_vault_event``) to the handler ``bootstrap`` builds
for a worker (``build_handler``: the service behind ``RotationService.batch`` with
``ROTATION_LISTING_CACHE_SECONDS``), over the real adapters and the devstack. The ARM list
requests are counted from the stand-in's request log: a delivery within the age after a run
that wrote nothing lists nothing, a run that wrote makes the next one list, the age is counted
by the service's clock, a plan from a listing someone else made stale is refused by the
compare-and-swap and re-planned, and ``0`` lists for every delivery. An inbound certificate's
deliveries share its policy listing the same way (the ``rawxml`` reads of every scope).
"""

from __future__ import annotations

from rotation import bootstrap
from rotation.adapters.audit import CompositeAuditSink, StructlogAuditSink
from rotation.domain.model import Decision
from rotation.ports import EventHandler
from rotation.service import RotationService
from tests.e2e.test_inbound_wire import CALLER, Inbound
from tests.e2e.test_replay_listings import list_requests
from tests.e2e.world import CERT, World, secret_url


def worker_handler(world: World, seconds: str, **overrides: str) -> EventHandler:
    """What ``get_handler`` builds for a worker, on the world's clock, installed as it."""
    sink = CompositeAuditSink(StructlogAuditSink(), world.audit)
    settings = world.settings(listing_cache_seconds=seconds, **overrides)
    handler = bootstrap.build_handler(settings, clock=world.clock, audit=sink)
    world.monkeypatch.setattr(bootstrap, "get_handler", lambda: handler)
    return handler


def deliver(world: World, version: str) -> tuple[Decision, int]:
    """Deliver one event for ``version``: its decision and the ARM list requests it made."""
    world.stack.request_log.arm.clear()
    world.deliver(version)
    return world.audit.records[-1].decision, list_requests(world)


def test_invocations_share_the_listing_within_the_age(bound: tuple[World, str, str]) -> None:
    """Each listing of the certificate = the entity pages of the 2 services (pin lists no
    backends)."""
    world, _, v2 = bound
    worker_handler(world, "30")

    assert deliver(world, v2) == (Decision.APPLIED, 2)
    assert deliver(world, v2) == (Decision.ALREADY_CURRENT, 2)  # the run before wrote
    assert deliver(world, v2) == (Decision.ALREADY_CURRENT, 0)
    world.clock.advance(seconds=29)
    assert deliver(world, v2) == (Decision.ALREADY_CURRENT, 0)
    world.clock.advance(seconds=1)
    assert deliver(world, v2) == (Decision.ALREADY_CURRENT, 2)  # 30 s old: listed again


def test_a_stale_kept_listing_is_refused_and_re_planned(bound: tuple[World, str, str]) -> None:
    """Someone else re-pins svc1's entity after the listing was kept: the next rotation plans
    from the kept listing, the gateway's compare-and-swap refuses it, and the rollout re-lists
    and converges both services."""
    world, v1, v2 = bound
    worker_handler(world, "30")
    deliver(world, v2)
    assert deliver(world, v2) == (Decision.ALREADY_CURRENT, 2)  # kept from here
    world.bind(world.svc1, CERT, v1)  # someone else rolls svc1 back
    v3 = world.add_version()
    world.stack.request_log.arm.clear()

    assert deliver(world, v3) == (Decision.APPLIED, 2)  # only the re-plan listed
    for svc in (world.svc1, world.svc2):
        assert world.pinned(svc, CERT) == secret_url(world.stack, CERT, v3)


def test_zero_lists_for_every_invocation(bound: tuple[World, str, str]) -> None:
    """``ROTATION_LISTING_CACHE_SECONDS=0``: the worker's handler is the service itself."""
    world, _, v2 = bound
    handler = worker_handler(world, "0")

    assert isinstance(handler, RotationService)
    assert deliver(world, v2) == (Decision.APPLIED, 2)
    assert deliver(world, v2) == (Decision.ALREADY_CURRENT, 2)
    assert deliver(world, v2) == (Decision.ALREADY_CURRENT, 2)


def policy_reads(world: World) -> int:
    """ARM reads of policy documents (``GET …/policies/policy``, any scope)."""
    return sum(
        1
        for e in world.stack.request_log.arm.entries()
        if e.method == "GET" and e.path.rstrip("/").lower().endswith("/policies/policy")
    )


def test_a_redelivered_inbound_event_reads_no_policy_document(world: World) -> None:
    """partner-caller v1 pinned at 4 scopes of svc1 and globally in svc2 (5 documents). The
    first delivery of v1 lists them (already current: nothing written, the listing is kept); its
    redelivery makes no ARM request at all. v2 plans from the kept listing: only the 5
    compare-and-swap reads; the delivery after that write lists again, the next lists nothing."""
    inbound = Inbound(world)
    worker_handler(
        world, "30", inbound_overlap_days="7",
        inbound_certificates=f"{world.stack.vault_url}/certificates/{CALLER}",
    )  # fmt: skip
    documents = len(inbound.scopes)

    def deliver_inbound(version: str) -> tuple[Decision, int, int]:
        world.stack.request_log.arm.clear()
        decision = inbound.deliver(version).decision
        return decision, policy_reads(world), len(world.stack.request_log.arm.entries())

    first = deliver_inbound(inbound.v1)
    assert first[:2] == (Decision.ALREADY_CURRENT, documents)
    assert deliver_inbound(inbound.v1) == (Decision.ALREADY_CURRENT, 0, 0)  # the redelivery

    v2 = inbound.import_leaf(world.pki.leaf(), [world.pki.intermediate])
    applied = deliver_inbound(v2)
    assert applied[:2] == (Decision.APPLIED, documents)  # the If-Match reads, no listing
    assert world.writes() != []
    assert deliver_inbound(v2)[:2] == (Decision.ALREADY_CURRENT, documents)  # the run wrote
    assert deliver_inbound(v2) == (Decision.ALREADY_CURRENT, 0, 0)
