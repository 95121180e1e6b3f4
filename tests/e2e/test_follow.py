"""``ROTATION_STRATEGY=follow`` end to end: the real trigger and adapters over the devstack
(issue 11, "Done when"). Entities stay versionless while versions are valid, APIM's
``refreshSecret`` brings the new one in now; a failed version pins them to the last validated
one (from the audit trail), and the next valid version makes them versionless again.
"""

from __future__ import annotations

from typing import Any

from devstack.pki import to_pkcs12
from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.credentials import StaticTokenCredential
from rotation.domain.model import Trigger
from tests.e2e.world import CERT, World, secret_url


def versionless(world: World) -> str:
    return secret_url(world.stack, CERT, None)


def scene(world: World) -> str:
    """v1; ``partner-mtls`` versionless in both services (presenting v1), backends on both."""
    v1 = world.add_version()
    for svc in (world.svc1, world.svc2):
        world.bind(svc, CERT, None)
    world.add_backend(world.svc1, "api-a", CERT)
    world.add_backend(world.svc2, "api-c", CERT)
    return v1


def bad_version(world: World) -> str:
    leaf, root = world.pki.stranger
    return world.add_version(data=to_pkcs12(leaf, [root]))


def last(world: World) -> Any:
    return [r for r in world.audit.records if r.event != "rotation.target"][-1]


def apim_polls(world: World, service: str) -> None:
    """APIM's own Key Vault poll (or a refresh by hand) of the versionless entity."""
    stack = world.stack
    gateway = ArmApimGateway(
        StaticTokenCredential(stack.token), base_url=stack.arm_endpoint,
        connection_verify=str(stack.ca_bundle), retry_total=0,
    )  # fmt: skip
    gateway.refresh_certificate(stack.service_id(service), CERT)


def test_a_valid_version_is_refreshed_and_entities_stay_versionless(world):
    scene(world)
    v2 = world.add_version()
    world.use(strategy="follow")
    world.stack.request_log.clear()

    world.deliver(v2)

    record = last(world)
    assert (record.decision, record.version) == ("applied", v2)
    for svc in (world.svc1, world.svc2):
        assert world.pinned(svc, CERT) == versionless(world)
        assert world.entity(svc, CERT)["thumbprint"] == world.thumbprints[v2]
    assert world.writes() == []  # no PUT: refreshSecret only
    refreshes = world.stack.request_log.arm.count("POST", "*/certificates/*/refreshSecret")
    assert refreshes == 2
    assert {t.result for t in record.targets} == {"refreshed"}


def test_a_rejected_version_pins_to_the_last_good_one_and_the_next_returns_to_versionless(world):
    scene(world)
    v2 = world.add_version()
    world.use(strategy="follow")
    world.deliver(v2)  # validated and applied: the trail now names v2

    bad = bad_version(world)
    world.deliver(bad)

    record = last(world)
    assert (record.decision, record.version) == ("rejected", bad)
    assert {"chain.untrusted", "binding.pinned"} <= set(record.findings)
    for svc in (world.svc1, world.svc2):
        assert world.pinned(svc, CERT) == secret_url(world.stack, CERT, v2)
        assert world.entity(svc, CERT)["thumbprint"] == world.thumbprints[v2]
    assert {t.result for t in record.targets} == {"pinned"}

    v4 = world.add_version()
    world.deliver(v4)

    record = last(world)
    assert (record.decision, record.version) == ("applied", v4)
    for svc in (world.svc1, world.svc2):
        assert world.pinned(svc, CERT) == versionless(world)
        assert world.entity(svc, CERT)["thumbprint"] == world.thumbprints[v4]


def test_reconcile_pins_back_a_version_apim_polled_before_certrotate_validated_it(world):
    scene(world)
    v2 = world.add_version()
    service = world.use(strategy="follow")
    world.deliver(v2)
    bad = bad_version(world)
    apim_polls(world, world.svc1)  # APIM fetched the bad version before any event was handled
    assert world.entity(world.svc1, CERT)["thumbprint"] != world.thumbprints[v2]

    service.reconcile(trigger=Trigger.CLI)

    record = last(world)
    assert (record.decision, record.version) == ("rejected", bad)
    assert {"binding.unvalidated", "binding.pinned"} <= set(record.findings)
    for svc in (world.svc1, world.svc2):
        assert world.pinned(svc, CERT) == secret_url(world.stack, CERT, v2)
        assert world.entity(svc, CERT)["thumbprint"] == world.thumbprints[v2]


def test_reconcile_validates_a_good_version_apim_polled_first(world):
    """A valid version APIM fetched on its own is validated and put on record, not rewritten."""
    scene(world)
    v2 = world.add_version()
    service = world.use(strategy="follow")
    for svc in (world.svc1, world.svc2):
        apim_polls(world, svc)
    world.stack.request_log.clear()

    service.reconcile(trigger=Trigger.CLI)

    record = last(world)
    assert (record.decision, record.version) == ("already_current", v2)
    assert record.thumbprint_sha256 is not None  # validated: the trail now names v2
    assert world.audit.last_validated(world.stack.vault_url, CERT) == v2
    assert world.kv_calls(f"/secrets/{CERT}/{v2}") == 1
    assert world.writes() == []


def test_an_unknown_last_validated_version_pins_nothing_and_says_so(world):
    """No trail entry: a rejected version leaves the entities as they are, with a finding."""
    scene(world)
    bad = bad_version(world)
    world.use(strategy="follow")
    before = world.snapshot()

    world.deliver(bad)

    record = last(world)
    assert record.decision == "rejected"
    assert "binding.last_validated_unknown" in record.findings
    assert "pin them by hand" in (record.message or "")
    assert world.snapshot() == before
