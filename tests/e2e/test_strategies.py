"""End to end, both strategies, two APIM services, and paging through 2,000 backends (issue 5)."""

from __future__ import annotations

import pytest

from tests.e2e.world import CERT, World, secret_url


def new_entity(version: str) -> str:
    """The blue-green entity id for ``version``."""
    return f"{CERT}--{version[:8]}"


def entities(world: World, service: str) -> set[str]:
    """The entity ids of a service (lower case)."""
    return set(world.snapshot()[service]["certificates"])


class TestBlueGreen:
    def test_creates_verified_entity_then_moves_every_backend_in_both_services(self, bound):
        """blue-green: a new pinned entity per service, backends moved to it, old one kept."""
        world, v1, v2 = bound
        world.use(strategy="blue-green")

        world.deliver(v2)

        for svc, backends in ((world.svc1, ("api-a", "api-b")), (world.svc2, ("api-c",))):
            created = new_entity(v2)
            assert world.pinned(svc, created) == secret_url(world.stack, CERT, v2)
            assert world.pinned(svc, CERT) == secret_url(world.stack, CERT, v1)
            for backend in backends:
                assert [i.lower() for i in world.backend_ids(svc, backend)] == [
                    world.entity_id(svc, created).lower()
                ]
                assert world.presented(svc, backend) == [world.thumbprints[v2]]
        assert world.backend_ids(world.svc1, "api-other") == [
            world.entity_id(world.svc1, "unrelated")
        ]
        methods = [w.method for w in world.writes()]
        assert sorted(methods) == ["PATCH"] * 3 + ["PUT"] * 2

    def test_retains_previous_and_retires_older_suffixed_entities(self, bound):
        """blue-green retention 1: after v2, v3, v4 only the original, v3's and v4's remain."""
        world, _, v2 = bound
        world.use(strategy="blue-green", retain_previous="1")
        world.deliver(v2)
        v3 = world.add_version()
        world.deliver(v3)
        v4 = world.add_version()

        world.deliver(v4)

        for svc in (world.svc1, world.svc2):
            expected = {CERT, new_entity(v3), new_entity(v4)}
            if svc == world.svc1:
                expected.add("unrelated")
            assert entities(world, svc) == {e.lower() for e in expected}
        deleted = [w.path.rsplit("/", 1)[-1] for w in world.writes() if w.method == "DELETE"]
        assert sorted(deleted) == [new_entity(v2)] * 2

    def test_redelivery_after_blue_green_is_already_current(self, bound):
        """blue-green: the same event twice changes APIM once."""
        world, _, v2 = bound
        world.use(strategy="blue-green")
        world.deliver(v2)
        world.stack.request_log.clear()

        world.deliver(v2)

        assert world.writes() == []
        assert world.audit.records[-1].decision == "already_current"


class TestTwoServices:
    def test_only_the_service_holding_a_binding_lists_backends(self, world):
        """Two services: the one without a binding is listed for entities only, never written."""
        v1 = world.add_version()
        world.bind(world.svc1, CERT, v1)
        world.add_backend(world.svc1, "api-a", CERT)
        world.add_backend(world.svc2, "lonely")
        v2 = world.add_version()
        world.use()
        before = world.snapshot()[world.svc2]

        world.deliver(v2)

        arm = world.stack.request_log.arm
        assert arm.count("GET", f"*/{world.svc2}/certificates") == 1
        assert arm.count("GET", f"*/{world.svc2}/backends") == 0
        assert world.snapshot()[world.svc2] == before
        assert world.pinned(world.svc1, CERT) == secret_url(world.stack, CERT, v2)


@pytest.fixture(name="crowded")
def _crowded(world: World) -> tuple[World, str, list[str]]:
    """svc1 with 150 entities and 2,000 backends; 20 backends use ``partner-mtls``."""
    v1 = world.add_version()
    world.bind(world.svc1, CERT, v1)
    other = world.add_version("other")
    for i in range(149):
        world.bind(world.svc1, f"other-{i:03d}", other, name="other")
    bound_backends = []
    for i in range(2000):
        if i % 100 == 7:
            bound_backends.append(f"backend-{i:04d}")
            world.add_backend(world.svc1, f"backend-{i:04d}", CERT)
        else:
            world.add_backend(world.svc1, f"backend-{i:04d}", f"other-{i % 149:03d}")
    return world, world.add_version(), bound_backends


class TestPaging:
    @pytest.mark.parametrize("strategy", ["pin", "blue-green"])
    def test_exactly_the_twenty_bound_backends_and_their_entity_move(self, crowded, strategy):
        """20 of 2,000 backends (20 pages) bind the certificate: only they and their entity
        change; every other entity and backend keeps its properties and ETag."""
        world, v2, bound_backends = crowded
        world.use(strategy=strategy)
        before = world.snapshot()

        world.deliver(v2)

        after = world.snapshot()
        changed = {
            (svc, kind, key)
            for svc in after
            for kind in after[svc]
            for key in after[svc][kind].keys() | before[svc][kind].keys()
            if after[svc][kind].get(key) != before[svc][kind].get(key)
        }
        if strategy == "pin":
            assert changed == {(world.svc1, "certificates", CERT)}
        else:
            moved = {(world.svc1, "backends", b) for b in bound_backends}
            assert changed == {(world.svc1, "certificates", new_entity(v2))} | moved
        for backend in bound_backends:
            assert world.presented(world.svc1, backend) == [world.thumbprints[v2]]
        arm = world.stack.request_log.arm
        # blue-green moves backends, so it lists them all (20 pages); pin lists none
        assert arm.count("GET", f"*/{world.svc1}/backends") == (20 if strategy != "pin" else 0)
        assert arm.count("GET", f"*/{world.svc1}/certificates") == 2
