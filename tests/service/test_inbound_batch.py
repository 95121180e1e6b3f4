"""RotationService.batch for inbound certificates: events of one inbound certificate share its
policy listing (every service's policy documents) under ``ListingCache``'s rules.

A duplicate lists no policy document; a run that wrote, failed or had a compare-and-swap refused
makes the next event list again; a listing expires ``max_age_seconds`` after it was listed, by
the service's clock; a plan from a listing someone else made stale is refused (412), re-listed
and converged, even with ``max_attempts`` 1 (a borrowed listing's refusal is an extra attempt);
and ``max_age_seconds`` 0 lists for every event.
"""

from __future__ import annotations

import pytest

from rotation.domain.errors import TransientDependencyError
from rotation.domain.model import Decision, Trigger
from rotation.service import BatchHandler
from tests.service.conftest import V2, V3, VAULT, Pki, World, make_event
from tests.service.test_inbound_service import CALLER, Inbound, pinned_docs

EG = Trigger.EVENTGRID
SERVICES = 2  # one list_policies per configured service per listing


@pytest.fixture(name="inb")
def _inbound(world: World) -> Inbound:
    return Inbound(world)


def _kept(inb: Inbound) -> BatchHandler:
    """A batch whose first event added v2 everywhere (a write: not kept) and whose second
    listed afresh and found it current (kept); the policy counts start from zero."""
    batch = inb.service().batch()
    assert batch.handle(make_event(V2, name=CALLER), trigger=EG).decision is Decision.APPLIED
    assert inb.policies.calls["list_policies"] == SERVICES
    again = batch.handle(make_event(V2, name=CALLER, event_id="evt-2"), trigger=EG)
    assert again.decision is Decision.ALREADY_CURRENT
    assert inb.policies.calls["list_policies"] == 2 * SERVICES  # the run before wrote
    assert len(batch.listings) == 1
    inb.policies.calls.clear()
    return batch


def _lists(inb: Inbound) -> int:
    return inb.policies.calls["list_policies"]


def test_a_duplicate_lists_no_policy_document(inb: Inbound) -> None:
    """Once a run that wrote nothing kept the listing, duplicates plan from it: no
    ``list_policies`` call; ``handle`` (no batch) lists for every event."""
    batch = _kept(inb)

    records = [
        batch.handle(make_event(V2, name=CALLER, event_id=f"dup-{i}"), trigger=EG)
        for i in range(5)
    ]

    assert {r.decision for r in records} == {Decision.ALREADY_CURRENT}
    assert {str(t.result) for t in records[-1].targets} == {"already_current"}
    assert len(records[-1].targets) == len(pinned_docs(inb))
    assert _lists(inb) == 0
    assert inb.world.source.calls["list_certificate_versions"] >= 5  # versions: always fresh
    assert inb.policies.calls["put_policy"] == 0

    service = inb.service()
    for i in range(3):
        service.handle(make_event(V2, name=CALLER, event_id=f"plain-{i}"), trigger=EG)
    assert _lists(inb) == 3 * SERVICES


def test_a_run_that_wrote_makes_the_next_event_list_again(inb: Inbound, world: World) -> None:
    """v3 arrives: its run plans from the kept listing and writes, so the event after it lists
    afresh (and sees v3 pinned), and the one after that lists nothing."""
    batch = _kept(inb)
    world.add_version("v3", V3, name=CALLER)

    applied = batch.handle(make_event(V3, name=CALLER), trigger=EG)
    after_write = _lists(inb)
    again = batch.handle(make_event(V3, name=CALLER, event_id="evt-3b"), trigger=EG)
    relisted = _lists(inb)
    batch.handle(make_event(V3, name=CALLER, event_id="evt-3c"), trigger=EG)

    assert (applied.decision, again.decision) == (Decision.APPLIED, Decision.ALREADY_CURRENT)
    assert after_write == 0  # planned from the kept listing
    assert relisted == SERVICES  # the run before wrote: listed again
    assert _lists(inb) == SERVICES  # and kept from there
    assert {str(t.result) for t in again.targets} == {"already_current"}


def test_a_failed_run_makes_the_next_event_list_again(inb: Inbound, world: World) -> None:
    batch = _kept(inb)
    world.add_version("v3", V3, name=CALLER)
    inb.policies.fail["put_policy"] = TransientDependencyError(
        "503", service="apim", operation="put_policy", status_code=503
    )

    with pytest.raises(TransientDependencyError):
        batch.handle(make_event(V3, name=CALLER), trigger=EG)
    assert len(batch.listings) == 0
    del inb.policies.fail["put_policy"]
    record = batch.handle(make_event(V3, name=CALLER), trigger=EG)

    assert record.decision is Decision.APPLIED
    assert _lists(inb) == SERVICES
    assert all(inb.t2 in inb.policies.value(rid) for rid in pinned_docs(inb))


def test_the_listing_expires_by_the_service_clock(inb: Inbound, world: World) -> None:
    """Kept for max_age_seconds from when it was listed (reuse does not make it younger); a
    clock that went back expires it too."""
    batch = _kept(inb)  # kept at t0
    for _ in range(2):
        world.clock.advance(seconds=14)
        batch.handle(make_event(V2, name=CALLER), trigger=EG)
    young = _lists(inb)
    world.clock.advance(seconds=2)  # 30 s after the listing
    batch.handle(make_event(V2, name=CALLER), trigger=EG)
    aged = _lists(inb)
    world.clock.advance(seconds=-1)
    batch.handle(make_event(V2, name=CALLER), trigger=EG)

    assert (young, aged) == (0, SERVICES)
    assert _lists(inb) == 2 * SERVICES


def test_max_age_zero_lists_for_every_event(inb: Inbound) -> None:
    batch = inb.service().batch(max_age_seconds=0)

    for i in range(3):
        batch.handle(make_event(V2, name=CALLER, event_id=f"e{i}"), trigger=EG)

    assert _lists(inb) == 3 * SERVICES


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_a_stale_kept_listing_is_refused_re_listed_and_converged(
    pki: Pki, max_attempts: int
) -> None:
    """Another writer edits the global document after the listing was kept; v3's plan from
    the kept listing is refused by the compare-and-swap (412), the rollout re-lists and
    re-plans, even with max_attempts 1, and ends exactly where ``handle`` does on an
    identical world: v3 pinned everywhere, the other writer's edit kept."""
    comment = "<!-- edited meanwhile -->"
    ends = []
    for batched in (False, True):
        inb = Inbound(World(pki))
        service = inb.service(max_attempts=max_attempts)
        handler = service.batch() if batched else service
        handler.handle(make_event(V2, name=CALLER), trigger=EG)
        handler.handle(make_event(V2, name=CALLER, event_id="evt-2"), trigger=EG)  # kept
        (global_id, *_) = pinned_docs(inb)
        document = inb.policies.document(global_id)
        inb.policies.add_policy(  # another writer, between the events
            document.service_id, document.scope,
            document.value.replace("<inbound>", f"<inbound>{comment}", 1),
        )  # fmt: skip
        inb.world.add_version("v3", V3, name=CALLER)
        inb.policies.calls.clear()

        record = handler.handle(make_event(V3, name=CALLER), trigger=EG)

        assert record.decision is Decision.APPLIED
        assert comment in inb.policies.value(global_id)
        v3 = inb.world.source.lookup(VAULT, CALLER, V3)
        assert v3 is not None
        assert v3.thumbprint_sha1 is not None
        assert all(v3.thumbprint_sha1 in inb.policies.value(r) for r in pinned_docs(inb))
        if batched:
            assert _lists(inb) == SERVICES  # only the re-listing after the refusal
            assert inb.policies.calls["write_policy"] == len(pinned_docs(inb))  # none refused
        ends.append(
            (
                {rid: inb.policies.value(rid) for rid in inb.before},
                {(t.resource_id, str(t.result)) for t in record.targets},
            )
        )
    assert ends[0] == ends[1]


def test_a_refused_plan_that_needs_no_write_after_all_is_not_kept(
    inb: Inbound, world: World
) -> None:
    """Someone else (another instance) added v3 between the events: the kept listing's plan
    is refused, the re-listing finds v3 current (nothing written), and that run's listing is
    not kept, as it re-planned: the next event lists again."""
    batch = _kept(inb)
    world.add_version("v3", V3, name=CALLER)
    inb.service().handle(make_event(V3, name=CALLER), trigger=EG)  # another writer
    inb.policies.calls.clear()
    writes = len(inb.policies.writes)

    record = batch.handle(make_event(V3, name=CALLER), trigger=EG)
    relisted = _lists(inb)
    batch.handle(make_event(V3, name=CALLER, event_id="evt-3b"), trigger=EG)

    assert record.decision is Decision.ALREADY_CURRENT
    assert len(inb.policies.writes) == writes
    assert inb.policies.calls["get_policy"] == 1  # the one refused compare-and-swap read
    assert relisted == SERVICES
    assert _lists(inb) == 2 * SERVICES  # not kept: listed again
