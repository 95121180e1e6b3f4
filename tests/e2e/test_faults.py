"""End to end under injected faults: 429 / 503 / 412 / connection reset at every step (issue 5).

Each case injects one fault at one step of a blue-green rotation over two services (the
strategy that exercises every step: version list, secret read, entity list, backend list, entity
PUT, backend PATCH, verify GET), ``count`` times, with ``ROTATION_HTTP_RETRIES=1``: once is
absorbed by the SDK retry (or the 412 re-plan), twice exhausts it. Either way the run converges
or raises a retryable error, every target presents its old or its new certificate, and a
redelivery converges.
"""

from __future__ import annotations

import pytest

from devstack.faults import FaultRule
from rotation.domain.errors import RotationError
from tests.e2e.world import CERT, World

STEPS = {
    "version list": ("kv", "GET", "/certificates/*/versions"),
    "secret read": ("kv", "GET", "/secrets/*"),
    "entity list": ("arm", "GET", "*/certificates"),
    "backend list": ("arm", "GET", "*/backends"),
    "entity PUT": ("arm", "PUT", "*/certificates/*"),
    "backend PATCH": ("arm", "PATCH", "*/backends/*"),
    "verify GET": ("arm", "GET", "*/certificates/*"),
}
FAULTS = ("429", "503", "412", "reset")
BACKENDS = (("svc1", "api-a"), ("svc1", "api-b"), ("svc2", "api-c"))


def inject(world: World, step: str, fault: str, count: int) -> FaultRule:
    """Add the fault rule for ``step`` on the right stand-in."""
    server, method, path = STEPS[step]
    faults = world.stack.faults_kv if server == "kv" else world.stack.faults_arm
    if fault == "reset":
        return faults.reset(path, method=method, count=count)
    if fault == "429":
        return faults.fail(path, method=method, status=429, retry_after=0, count=count)
    return faults.fail(path, method=method, status=int(fault), count=count)


def first_delivery(world: World, version: str) -> RotationError | None:
    """Deliver once; the RotationError the trigger raised (Event Grid would redeliver), if any."""
    try:
        world.deliver(version)
    except RotationError as exc:
        return exc
    return None


def presented(world: World) -> list[str]:
    """What each bound backend presents: its thumbprints, checked to be fetched successfully."""
    out = []
    for svc_attr, backend in BACKENDS:
        svc = getattr(world, svc_attr)
        for ref in world.backend_ids(svc, backend):
            entity = world.entity(svc, ref.rsplit("/", 1)[-1])
            assert entity["keyVault"]["lastStatus"]["code"] == "Success"
            out.append(str(entity["thumbprint"]))
    return out


class TestFaultAtEachStep:
    @pytest.mark.parametrize("count", [1, 2])
    @pytest.mark.parametrize("fault", FAULTS)
    @pytest.mark.parametrize("step", list(STEPS))
    def test_converges_or_fails_retryably_then_redelivery_converges(
        self, bound, step, fault, count
    ):
        """A fault leaves every target on its old or new certificate; a redelivery converges."""
        world, v1, v2 = bound
        world.use(strategy="blue-green")
        rule = inject(world, step, fault, count)
        old, new = world.thumbprints[v1], world.thumbprints[v2]

        error = first_delivery(world, v2)

        if error is not None:
            assert error.retryable, error
            assert world.audit.records[-1].decision == "failed"
            assert set(presented(world)) <= {old, new}
        else:
            assert world.audit.records[-1].decision == "applied"
        assert rule.fired >= 1
        world.stack.faults_kv.clear()
        world.stack.faults_arm.clear()
        world.deliver(v2)

        assert presented(world) == [new] * len(BACKENDS)
        assert world.audit.records[-1].decision in {"applied", "already_current"}
        assert world.pinned(world.svc1, CERT).endswith(v1)

    @pytest.mark.parametrize("step", ["secret read", "entity PUT", "verify GET"])
    def test_a_single_transient_fault_is_absorbed_by_the_sdk_retry(self, bound, step):
        """One 503 at a step is retried by the SDK: the first delivery already applies."""
        world, _, v2 = bound
        world.use(strategy="blue-green")
        rule = inject(world, step, "503", 1)

        world.deliver(v2)

        assert rule.fired == 1
        assert world.audit.records[-1].decision == "applied"
        assert presented(world) == [world.thumbprints[v2]] * len(BACKENDS)


class TestGenuineConcurrentWrite:
    @pytest.mark.parametrize(
        ("strategy", "method", "path"),
        [("pin", "PUT", "*/certificates/*"), ("blue-green", "PATCH", "*/backends/*")],
    )
    def test_etag_moved_by_another_writer_gives_412_then_replan_converges(
        self, bound, strategy, method, path
    ):
        """Another writer bumps the ETag just before our conditional write: the genuine 412 is
        re-read and re-planned within the same delivery, which applies."""
        world, _, v2 = bound
        world.use(strategy=strategy)
        rule = world.stack.faults_arm.concurrent_write(path, method=method)

        world.deliver(v2)

        assert rule.fired == 1
        statuses = [e.status for e in world.stack.request_log.arm.entries() if e.method == method]
        assert 412 in statuses
        assert world.audit.records[-1].decision == "applied"
        assert presented(world) == [world.thumbprints[v2]] * len(BACKENDS)
