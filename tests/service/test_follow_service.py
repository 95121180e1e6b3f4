"""``follow`` over the fakes: the calls it makes, APIM's own poll, dry runs, and the trail."""

from __future__ import annotations

from rotation.domain.model import Decision, Finding, FindingCode, Severity, Strategy, Trigger
from tests.service.conftest import CERT, SVC_A, V1, V2, V3, VAULT, World, make_event

EG = Trigger.EVENTGRID
VERSIONLESS = f"{VAULT}/secrets/{CERT}"


def reject(world: World, version: str) -> None:
    found = world.source.lookup(VAULT, CERT, version)
    assert found is not None
    assert found.thumbprint_sha1 is not None
    bad = Finding(code=FindingCode.CHAIN_UNTRUSTED, severity=Severity.ERROR, message="no path")
    world.validator.findings[found.thumbprint_sha1] = (bad,)


def scene(world: World) -> None:
    """v1 presented by a versionless entity with a backend; v2 just created."""
    world.add_version("v1", V1)
    world.bind(SVC_A, CERT, None, backend="partner-api")
    world.add_version("v2", V2)


def test_a_valid_version_costs_one_refresh_and_one_verify_read(world: World):
    scene(world)
    service = world.service(strategy=Strategy.FOLLOW, history=world.audit)
    world.reset_counts()

    record = service.handle(make_event(V2), trigger=EG)

    assert record.decision is Decision.APPLIED
    assert world.secret_of(SVC_A, CERT) == VERSIONLESS
    assert world.gateway.calls["refresh_certificate"] == 1
    assert world.gateway.calls["get_certificate"] == 1  # the verify read; no compare-and-swap
    assert world.gateway.calls["put_certificate"] == 0
    assert world.source.calls["get_secret"] == 1


def test_a_duplicate_reads_no_secret_once_the_trail_names_the_version(world: World):
    scene(world)
    service = world.service(strategy=Strategy.FOLLOW, history=world.audit)
    service.handle(make_event(V2), trigger=EG)
    world.reset_counts()

    record = service.handle(make_event(V2, event_id="evt-2"), trigger=EG)

    assert record.decision is Decision.ALREADY_CURRENT
    assert world.source.calls["get_secret"] == 0
    assert world.gateway.updates == []


def test_dry_run_says_what_it_would_pin_and_writes_nothing(world: World):
    scene(world)
    service = world.service(strategy=Strategy.FOLLOW, history=world.audit)
    service.handle(make_event(V2), trigger=EG)
    world.add_version("v3", V3)
    reject(world, V3)
    dry = world.service(strategy=Strategy.FOLLOW, history=world.audit, dry_run=True)
    world.reset_counts()

    record = dry.handle(make_event(V3, event_id="evt-3"), trigger=EG)

    assert record.decision is Decision.REJECTED
    assert "dry run, would have pinned 1 versionless entity to the last validated version" in (
        record.message or ""
    )
    assert [t.result for t in record.targets] == ["skipped_dry_run"]
    assert world.gateway.updates == []
    assert world.secret_of(SVC_A, CERT) == VERSIONLESS


def test_apim_polled_a_bad_version_first_the_event_pins_it_back(world: World):
    """APIM's poll ran before the event: the entity presents v3 already; the event's rollout
    validates it, and pins the entity back to v2 (``binding.unvalidated``)."""
    scene(world)
    service = world.service(strategy=Strategy.FOLLOW, history=world.audit)
    service.handle(make_event(V2), trigger=EG)
    world.add_version("v3", V3)
    reject(world, V3)
    world.gateway.poll(SVC_A, CERT)

    record = service.handle(make_event(V3, event_id="evt-3"), trigger=EG)

    assert record.decision is Decision.REJECTED
    assert {"binding.unvalidated", "binding.pinned"} <= set(record.findings)
    assert world.secret_of(SVC_A, CERT) == f"{VAULT}/secrets/{CERT}/{V2}"
    assert [t.result for t in record.targets] == ["pinned"]
