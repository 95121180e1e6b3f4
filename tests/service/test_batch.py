"""RotationService.batch: a replay shares a certificate's APIM listing between its events.

Every rule of ``ListingCache`` over the fakes: duplicates list APIM once, a run that wrote (or
failed, or re-planned after a 412) makes the next event list again, a listing expires after
``max_age_seconds`` by the service's clock, the cache is bounded, two certificates never share
a listing, dry runs share too, a stale listing whose target moved converges through the
compare-and-swap, and a mixed sequence decides and records exactly what ``handle`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from rotation.domain.errors import RotationError, TransientDependencyError
from rotation.domain.model import (
    AuditRecord,
    Decision,
    Finding,
    FindingCode,
    KeyVaultEvent,
    Severity,
    Strategy,
    Trigger,
)
from rotation.ports import EventHandler
from rotation.rollout.listings import ListingCache
from rotation.service import BatchHandler
from rotation.testing import MemoryLock
from tests.service.conftest import (
    CERT,
    NEAR_EXPIRY,
    SVC_A,
    SVC_B,
    V1,
    V2,
    V3,
    V4,
    VAULT,
    Pki,
    World,
    make_event,
)

EG = Trigger.EVENTGRID
OTHER = "billing-mtls"
B1 = "b1b1b1b1aaaaaaaaaaaaaaaaaaaaaaaa"
B2 = "b2b2b2b2bbbbbbbbbbbbbbbbbbbbbbbb"
B3 = "b3b3b3b3cccccccccccccccccccccccc"
LISTS = ("list_certificates", "list_backends")


def _secret(version: str, name: str = CERT) -> str:
    return f"{VAULT}/secrets/{name}/{version}"


def _lists(world: World) -> int:
    """APIM list calls made so far (entity lists per service + backend lists, blue-green only)."""
    return sum(world.gateway.calls[m] for m in LISTS)


def _current(world: World) -> World:
    """v1 and v2 in the vault, the entity in service A (with a backend) already on v2."""
    world.add_version("v1", V1)
    world.add_version("v2", V2)
    world.bind(SVC_A, CERT, V2, backend="partner-api")
    return world


def _reject(world: World, version: str, name: str = CERT) -> None:
    """Make the validator reject ``version`` (chain.untrusted)."""
    found = world.source.lookup(VAULT, name, version)
    assert found is not None
    assert found.thumbprint_sha1 is not None
    bad = Finding(code=FindingCode.CHAIN_UNTRUSTED, severity=Severity.ERROR, message="no path")
    world.validator.findings[found.thumbprint_sha1] = (bad,)


class TestSharing:
    def test_duplicates_list_apim_once(self, world: World) -> None:
        """N duplicate events of one certificate list APIM once; handle lists N times."""
        _current(world)
        batch = world.service().batch()

        decisions = [batch.handle(make_event(V2), trigger=EG).decision for _ in range(10)]

        assert decisions == [Decision.ALREADY_CURRENT] * 10
        # one listing: the entities of both services (pin lists no backends)
        assert dict(world.gateway.calls) == {"list_certificates": 2}
        assert world.source.calls["list_certificate_versions"] == 10  # versions: always fresh

        world.reset_counts()
        service = world.service()
        for _ in range(10):
            service.handle(make_event(V2), trigger=EG)
        assert dict(world.gateway.calls) == {"list_certificates": 20}

    def test_applied_event_makes_the_next_event_list_again(self, rotated: World) -> None:
        """The listing of a run that wrote is dropped: the next event lists afresh, then the one
        after it reuses that listing."""
        batch = rotated.service().batch()

        first = batch.handle(make_event(V2), trigger=EG)
        after_write = _lists(rotated)
        reads = dict(rotated.gateway.calls) | dict(rotated.source.calls)
        second = batch.handle(make_event(V2), trigger=EG)
        after_second = _lists(rotated)
        third = batch.handle(make_event(V2), trigger=EG)

        assert [r.decision for r in (first, second, third)] == [
            Decision.APPLIED,
            Decision.ALREADY_CURRENT,
            Decision.ALREADY_CURRENT,
        ]
        assert after_write == 2
        assert after_second == 4  # listed again after the write
        # ... and planned from that fresh listing: no plan from the pre-write listing, so no
        # secret read and no compare-and-swap read that a stale v1 -> v2 plan would have cost
        assert rotated.source.calls["get_secret"] == reads["get_secret"] == 1
        assert rotated.gateway.calls["get_certificate"] == reads["get_certificate"]
        assert _lists(rotated) == 4  # and reused
        assert [t.result for t in second.targets] == ["already_current"]

    def test_blue_green_retirement_counts_as_a_write(self, rotated: World) -> None:
        """A run whose only writes are pending retirements still drops its listing."""
        service = rotated.service(strategy=Strategy.BLUE_GREEN, retain_previous=1)
        service.handle(make_event(V2), trigger=EG)
        rotated.add_version("v3", V3)
        service.handle(make_event(V3), trigger=EG)
        rotated.add_version("v4", V4)
        rotated.gateway.fail_on_write(
            3, TransientDependencyError("503", service="apim", operation="delete")
        )
        with pytest.raises(TransientDependencyError):
            service.handle(make_event(V4), trigger=EG)  # create, move, then the retirement fails
        batch = service.batch()
        rotated.reset_counts()

        record = batch.handle(make_event(V4), trigger=EG)  # only the retirement is left
        lists_after_retire = _lists(rotated)
        batch.handle(make_event(V4), trigger=EG)

        assert record.decision is Decision.ALREADY_CURRENT
        assert [t.result for t in record.targets if t.name == f"{CERT}--{V2[:8]}"] == ["retired"]
        assert lists_after_retire == 3  # entities of both services + backends of A
        assert _lists(rotated) == 6  # the retirement wrote: the next event listed again

    def test_dry_runs_share_listings(self, rotated: World) -> None:
        """Dry runs never write, so every event of the batch plans from one listing."""
        batch = rotated.service(dry_run=True).batch()

        records = [batch.handle(make_event(V2), trigger=EG) for _ in range(5)]

        assert {(r.event, r.decision) for r in records} == {("rotation.planned", Decision.APPLIED)}
        assert [t.result for t in records[-1].targets] == ["skipped_dry_run"]
        assert dict(rotated.gateway.calls) == {"list_certificates": 2}
        assert rotated.gateway.updates == []

    def test_two_certificates_never_share_a_listing(self, world: World) -> None:
        """Each certificate plans from its own listing (an event's listing holds backends only
        where that certificate is bound); interleaved events reuse each one's own."""
        _current(world)
        world.add_version("v1", B1, name=OTHER)
        world.bind(SVC_B, OTHER, B1, backend="billing-api", name=OTHER)
        batch = world.service().batch()

        batch.handle(make_event(V2), trigger=EG)
        assert dict(world.gateway.calls) == {"list_certificates": 2}
        batch.handle(make_event(B1, name=OTHER), trigger=EG)
        assert dict(world.gateway.calls) == {"list_certificates": 4}
        for _ in range(3):
            assert batch.handle(make_event(V2), trigger=EG).targets[0].name == CERT
            assert batch.handle(make_event(B1, name=OTHER), trigger=EG).targets[0].name == OTHER

        assert dict(world.gateway.calls) == {"list_certificates": 4}
        assert len(batch.listings) == 2

    def test_certificate_names_are_compared_case_insensitively(self, world: World) -> None:
        """Key Vault names are case-insensitive: PARTNER-MTLS is the same certificate."""
        _current(world)
        batch = world.service().batch()

        batch.handle(make_event(V2), trigger=EG)
        batch.handle(make_event(V2, name=CERT.upper()), trigger=EG)

        assert _lists(world) == 2
        assert len(batch.listings) == 1

    def test_ignored_events_touch_no_listing(self, world: World) -> None:
        """An event the intake filter ignores (other vault) makes no call and keeps nothing."""
        _current(world)
        batch = world.service().batch()

        record = batch.handle(make_event(V2, vault="https://kv-other.vault.azure.net"), trigger=EG)

        assert record.decision is Decision.IGNORED
        assert _lists(world) == 0
        assert len(batch.listings) == 0

    def test_writing_runs_still_hold_the_lock(self, rotated: World) -> None:
        """The batch converges through the same locked path as handle."""
        lock = MemoryLock()
        batch = rotated.service(lock=lock).batch()

        batch.handle(make_event(V2), trigger=EG)
        batch.handle(make_event(V2), trigger=EG)

        assert lock.acquisitions == [("kv-demo.vault.azure.net", CERT)] * 2
        assert lock.held == set()

    def test_satisfies_the_event_handler_protocol(self, world: World) -> None:
        """run_replay takes an EventHandler; the batch is one."""
        batch = world.service().batch()

        assert isinstance(batch, EventHandler)
        assert isinstance(batch, BatchHandler)


class TestDropped:
    def test_failed_run_makes_the_next_event_list_again(self, rotated: World) -> None:
        """A run that failed (here a write) drops the listing; the next event lists afresh."""
        rotated.gateway.fail_on_write(
            1, TransientDependencyError("503", service="apim", operation="put", status_code=503)
        )
        batch = rotated.service().batch()

        with pytest.raises(TransientDependencyError):
            batch.handle(make_event(V2), trigger=EG)
        assert len(batch.listings) == 0
        record = batch.handle(make_event(V2), trigger=EG)

        assert record.decision is Decision.APPLIED
        assert _lists(rotated) == 4
        assert rotated.secret_of(SVC_A, CERT) == _secret(V2)

    def test_failed_listing_keeps_nothing(self, world: World) -> None:
        """A listing that could not be made is not kept (and the event fails as with handle)."""
        _current(world)
        world.gateway.fail["list_certificates"] = TransientDependencyError(
            "503", service="apim", operation="list"
        )
        batch = world.service().batch()

        with pytest.raises(TransientDependencyError):
            batch.handle(make_event(V2), trigger=EG)
        del world.gateway.fail["list_certificates"]
        batch.handle(make_event(V2), trigger=EG)

        assert world.gateway.calls["list_certificates"] == 3  # failed 1 + a fresh listing of 2

    def test_replan_after_412_drops_the_listing(self, world: World) -> None:
        """Someone else applied v3 since the kept listing (which says v2): the plan's
        compare-and-swap is refused, the rollout re-lists and finds v3 current, and that run's
        listing is not kept (it re-planned)."""
        _current(world)
        batch = world.service().batch()
        batch.handle(make_event(V2), trigger=EG)
        world.add_version("v3", V3)
        world.bind(SVC_A, CERT, V3)  # another writer (same backend stays on the entity id)
        world.reset_counts()

        record = batch.handle(make_event(V3), trigger=EG)
        relisted = _lists(world)
        batch.handle(make_event(V3), trigger=EG)

        assert record.decision is Decision.ALREADY_CURRENT
        assert [t.result for t in record.targets] == ["already_current"]
        assert world.gateway.updates == []
        assert relisted == 2  # the kept listing, refused, then one fresh listing
        assert _lists(world) == 4  # not kept: the next event listed again

    def test_reconcile_through_the_batch_drops_every_listing(self, world: World) -> None:
        """The batch's reconcile is the service's; it may write, so listings are dropped."""
        _current(world)
        batch = world.service().batch()
        batch.handle(make_event(V2), trigger=EG)

        (record,) = batch.reconcile(trigger=Trigger.CLI)

        assert record.decision is Decision.ALREADY_CURRENT
        assert len(batch.listings) == 0


class TestExpiry:
    def test_change_by_someone_else_is_seen_after_max_age(self, world: World) -> None:
        """A binding added by someone else is not seen while the kept listing is young; once it
        is max_age old (by the service's clock), the next event lists again and converges it."""
        _current(world)
        batch = world.service().batch(max_age_seconds=30)
        batch.handle(make_event(V2), trigger=EG)
        world.bind(SVC_B, "mtls-b", V1)  # someone else binds the certificate in service B

        world.clock.advance(seconds=29)
        young = batch.handle(make_event(V2), trigger=EG)
        world.clock.advance(seconds=1)
        aged = batch.handle(make_event(V2), trigger=EG)

        assert young.decision is Decision.ALREADY_CURRENT
        assert [t.name for t in young.targets] == [CERT]
        assert aged.decision is Decision.APPLIED
        assert {(t.name, t.result) for t in aged.targets} == {
            (CERT, "already_current"),
            ("mtls-b", "updated"),
        }
        assert world.secret_of(SVC_B, "mtls-b") == _secret(V2)
        assert _lists(world) == 4  # 2 + the relisting after max age (2 services)

    def test_age_counts_from_the_listing_not_from_its_last_use(self, world: World) -> None:
        """Reusing a listing does not make it younger."""
        _current(world)
        batch = world.service().batch(max_age_seconds=30)

        for _ in range(4):
            batch.handle(make_event(V2), trigger=EG)
            world.clock.advance(seconds=10)

        assert _lists(world) == 4  # listed at t=0 and again at t=30

    def test_a_clock_that_went_back_expires_the_listing(self, world: World) -> None:
        _current(world)
        batch = world.service().batch()
        batch.handle(make_event(V2), trigger=EG)

        world.clock.advance(seconds=-1)
        batch.handle(make_event(V2), trigger=EG)

        assert _lists(world) == 4

    def test_max_age_zero_lists_for_every_event(self, world: World) -> None:
        _current(world)
        batch = world.service().batch(max_age_seconds=0)

        for _ in range(3):
            batch.handle(make_event(V2), trigger=EG)

        assert _lists(world) == 6


class TestBounded:
    def test_only_the_most_recent_certificates_are_kept(self, world: World) -> None:
        """With room for two, a third certificate evicts the least recently used one."""
        names = ("cert-a", "cert-b", "cert-c")
        for name in names:
            world.add_version("v1", V1, name=name)
            world.bind(SVC_A, name, V1, name=name)
        batch = world.service().batch(max_certificates=2)

        for name in ("cert-a", "cert-b", "cert-a", "cert-c"):  # a is used again: b is evicted
            batch.handle(make_event(V1, name=name), trigger=EG)
            assert len(batch.listings) <= 2
        before = _lists(world)
        batch.handle(make_event(V1, name="cert-a"), trigger=EG)
        kept_a = _lists(world) == before
        batch.handle(make_event(V1, name="cert-b"), trigger=EG)

        assert kept_a
        assert _lists(world) == before + 2  # cert-b was evicted: listed again
        assert len(batch.listings) == 2

    @pytest.mark.parametrize(
        ("max_age_seconds", "max_certificates"), [(-1, 64), (30, 0)], ids=["age", "size"]
    )
    def test_rejects_out_of_range_knobs(
        self, world: World, max_age_seconds: float, max_certificates: int
    ) -> None:
        with pytest.raises(ValueError, match="max_age"):
            world.service().batch(
                max_age_seconds=max_age_seconds, max_certificates=max_certificates
            )

    def test_cache_alone(self, world: World) -> None:
        cache = ListingCache(world.clock, max_age=timedelta(seconds=5), max_certificates=1)

        assert cache.take(VAULT, CERT) is None
        assert len(cache) == 0


class TestStaleListingConverges:
    @pytest.mark.parametrize("max_attempts", [1, 3])
    def test_pin_target_moved_since_the_kept_listing(self, pki: Pki, max_attempts: int) -> None:
        """The kept listing says v2; someone else rolled the entity back to v1 and v3 arrived.
        The plan (v2 -> v3) is refused by the compare-and-swap; the rollout re-lists and
        re-plans (v1 -> v3), even with max_attempts 1 (a refused kept listing is an extra
        attempt). Decision, targets and APIM end state equal handle's on an identical world."""
        results = []
        for batched in (False, True):
            world = _current(World(pki))
            service = world.service(max_attempts=max_attempts)
            handler: EventHandler = service.batch() if batched else service
            handler.handle(make_event(V2), trigger=EG)
            world.bind(SVC_A, CERT, V1)  # another writer rolled back (backend unchanged)
            world.add_version("v3", V3)
            world.reset_counts()

            record = handler.handle(make_event(V3), trigger=EG)

            assert record.decision is Decision.APPLIED
            assert world.secret_of(SVC_A, CERT) == _secret(V3)
            assert [(u.op, u.value) for u in world.gateway.updates] == [
                ("put_certificate", _secret(V3))
            ]
            results.append((record.decision, record.targets, record.previous_version))
            if batched:
                assert world.gateway.calls["list_certificates"] == 2  # the fresh re-listing
                assert world.gateway.calls["put_certificate"] == 1  # refused before the PUT
        assert results[0] == results[1]
        assert results[1][1][0].from_ == _secret(V1)

    def test_blue_green_backend_moved_since_the_kept_listing(self, pki: Pki) -> None:
        """blue-green: someone else moved the backend to a v2 entity after the batch kept its
        listing; v3's backend move is refused and re-planned, and the end state and record
        equal handle's."""
        outcomes = []
        for batched in (False, True):
            world = World(pki)
            world.add_version("v1", V1)
            world.bind(SVC_A, CERT, V1, backend="partner-api")
            service = world.service(strategy=Strategy.BLUE_GREEN)
            handler: EventHandler = service.batch() if batched else service
            handler.handle(make_event(V1), trigger=EG)  # already current: listing kept
            world.add_version("v2", V2)
            world.service(strategy=Strategy.BLUE_GREEN).handle(make_event(V2), trigger=EG)
            world.add_version("v3", V3)

            record = handler.handle(make_event(V3), trigger=EG)

            new_id = world.gateway.entity(SVC_A, f"{CERT}--{V3[:8]}").resource_id
            assert record.decision is Decision.APPLIED
            assert world.gateway.backend(SVC_A, "partner-api").certificate_ids == (new_id,)
            outcomes.append(
                (
                    {(t.name, t.from_, t.to, t.result) for t in record.targets},
                    sorted(k[1] for k in world.gateway.certificates),
                )
            )
        assert outcomes[0] == outcomes[1]


# --- the same mixed sequence both ways ----------------------------------------------------------

Step = KeyVaultEvent | Callable[[World], None]


def _mixed_scene(world: World) -> None:
    """partner-mtls: v1 bound in A (with a backend) and B, v2 in the vault;
    billing-mtls: b1 in B (with a backend)."""
    world.add_version("v1", V1)
    world.add_version("v2", V2)
    world.bind(SVC_A, CERT, V1, backend="partner-api")
    world.bind(SVC_B, "mtls-b", V1)
    world.add_version("v1", B1, name=OTHER)
    world.bind(SVC_B, OTHER, B1, backend="billing-api", name=OTHER)


def _add_rejected_v3(world: World) -> None:
    world.add_version("v3", V3)
    _reject(world, V3)


def _add_v4_and_fail_its_first_write(world: World) -> None:
    world.add_version("v4", V4)
    world.gateway.fail_on_write(
        1, TransientDependencyError("503", service="apim", operation="put", status_code=503)
    )


def _add_future_b3(world: World) -> None:
    world.add_version("future", B3, name=OTHER)


def _tick(world: World) -> None:
    world.clock.advance(seconds=7)


MIXED: list[Step] = [
    make_event(V2, event_id="e1"),  # applied
    make_event(V2, event_id="e1"),  # already_current (a redelivery)
    make_event(V1, event_id="e0"),  # superseded (late)
    make_event(B1, name=OTHER, event_id="b1"),  # already_current
    make_event(V2, event_id="e1"),  # already_current
    _tick,
    make_event(V2, event_type=NEAR_EXPIRY, event_id="alert"),  # certificate.near_expiry
    make_event(V2, vault="https://kv-other.vault.azure.net", event_id="other"),  # ignored
    _add_rejected_v3,
    make_event(V3, event_id="e3"),  # rejected
    make_event(V3, event_id="e3"),  # rejected
    make_event(B2, name=OTHER, event_id="b2"),  # already_current (b2 not in the vault: b1 newest)
    _add_future_b3,
    make_event(B3, name=OTHER, event_id="b3"),  # deferred
    _tick,
    make_event(B3, name=OTHER, event_id="b3"),  # deferred
    _add_v4_and_fail_its_first_write,
    make_event(V4, event_id="e4"),  # failed (raises)
    make_event(V4, event_id="e4"),  # applied (the redelivery converges)
    make_event(V2, event_id="e1"),  # superseded
    _tick,
    make_event(V4, event_id="e4"),  # already_current
]


def _run(world: World, handler: EventHandler) -> list[str]:
    """Run MIXED; return each event's outcome (decision, or the error type it raised)."""
    outcomes = []
    for step in MIXED:
        if isinstance(step, KeyVaultEvent):
            try:
                outcomes.append(str(handler.handle(step, trigger=Trigger.CLI).decision))
            except RotationError as exc:
                outcomes.append(type(exc).__name__)
        else:
            step(world)
    return outcomes


def _comparable(record: AuditRecord) -> AuditRecord:
    return replace(record, duration_ms=0.0, correlation_id="")


def _apim_state(world: World) -> dict[str, object]:
    return {
        "certificates": {k: c.secret_identifier for k, c in world.gateway.certificates.items()},
        "backends": {k: b.certificate_ids for k, b in world.gateway.backends.items()},
    }


@pytest.mark.parametrize("dry_run", [False, True], ids=["write", "dry-run"])
@pytest.mark.parametrize("strategy", [Strategy.PIN, Strategy.BLUE_GREEN])
def test_mixed_sequence_decides_and_records_exactly_as_handle(
    pki: Pki, strategy: Strategy, dry_run: bool
) -> None:
    """The same mixed sequence (duplicates, late, alert, ignored, rejected, deferred, a failed
    write and its redelivery, two certificates, time passing) through ``handle`` on one world
    and through ``batch`` on an identical one: the same outcomes, the same audit records (but
    for duration and correlation id), the same APIM writes and end state; fewer lists."""
    fresh, shared = World(pki), World(pki)
    for world in (fresh, shared):
        _mixed_scene(world)
    options = {"strategy": strategy, "dry_run": dry_run}

    by_handle = _run(fresh, fresh.service(**options))
    by_batch = _run(shared, shared.service(**options).batch())

    assert by_batch == by_handle
    if not dry_run:
        billing = "applied" if strategy is Strategy.BLUE_GREEN else "already_current"
        assert by_handle == [
            "applied", "already_current", "superseded", billing, "already_current",
            "already_current", "ignored", "rejected", "rejected", "already_current", "deferred",
            "deferred", "TransientDependencyError", "applied", "superseded", "already_current",
        ]  # fmt: skip
    assert [_comparable(r) for r in shared.audit.records] == [
        _comparable(r) for r in fresh.audit.records
    ]
    assert shared.gateway.updates == fresh.gateway.updates
    assert _apim_state(shared) == _apim_state(fresh)
    assert _lists(shared) < _lists(fresh) / 2
