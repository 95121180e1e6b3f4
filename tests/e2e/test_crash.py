"""End to end, a crash between writes followed by a replay that converges (issue 5).

Two ways to stop a run after its first write: the devstack answers the 2nd write with a
non-retryable 400 (the trigger records ``failed``, refuses the event, Event Grid stops), or the
process dies right after the first write (an exception from a gateway wrapper around the real
``ArmApimGateway``). Either way every target is on its old or new certificate, and replaying the
event through the same trigger converges.
"""

from __future__ import annotations

from typing import Any

import pytest

from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.credentials import StaticTokenCredential
from tests.e2e.world import CERT, World, audit_lines, secret_url

_WRITES = frozenset({"put_certificate", "update_backend_certificates", "delete_certificate"})


class ProcessCrashError(Exception):
    """Stands for the worker dying: nothing after the first write runs."""


class CrashAfterFirstWrite:
    """The real gateway; the first write goes through, then the 'process' dies."""

    def __init__(self, real: ArmApimGateway) -> None:
        self.real = real
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)
        if name not in _WRITES:
            return method

        def write(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            self.writes += 1
            raise ProcessCrashError(f"crashed after write {self.writes}")
            return result  # pragma: no cover - unreachable by design

        return write


def real_gateway(world: World) -> ArmApimGateway:
    """An ``ArmApimGateway`` configured as bootstrap configures it for the devstack."""
    return ArmApimGateway(
        StaticTokenCredential(world.stack.token),
        base_url=world.stack.arm_endpoint,
        connection_verify=str(world.stack.ca_bundle),
        retry_total=1,
    )


def on_old_or_new(world: World, old: str, new: str) -> list[str]:
    """Thumbprints every bound backend presents, each checked to be the old or the new one."""
    seen = []
    for svc, backend in ((world.svc1, "api-a"), (world.svc1, "api-b"), (world.svc2, "api-c")):
        prints = world.presented(svc, backend)
        assert set(prints) <= {old, new}, (svc, backend, prints)
        seen.extend(prints)
    return seen


class TestNonRetryableSecondWrite:
    def test_refused_run_leaves_old_or_new_and_a_replay_converges(self, bound, capsys):
        """blue-green: a 400 on the first backend PATCH (2nd write) is recorded as failed and not
        retried; api-a/api-b stay on v1, the new entity exists; replaying converges."""
        world, v1, v2 = bound
        world.use(strategy="blue-green")
        world.stack.faults_arm.fail(f"*/{world.svc1}/backends/api-a", method="PATCH", status=400)
        old, new = world.thumbprints[v1], world.thumbprints[v2]

        world.deliver(v2)  # returns normally: a non-retryable failure is not redelivered

        lines = audit_lines(capsys.readouterr().out)
        canonical = [r for r in lines if r["event"] != "rotation.target"]
        assert [(r["event"], r["decision"]) for r in canonical] == [("rotation.failed", "failed")]
        assert "DependencyError" in canonical[0]["error"]
        assert on_old_or_new(world, old, new)[:2] == [old, old]
        assert world.pinned(world.svc1, f"{CERT}--{v2[:8]}") == secret_url(world.stack, CERT, v2)

        world.deliver(v2)

        assert on_old_or_new(world, old, new) == [new, new, new]
        assert world.audit.records[-1].decision == "applied"


class TestProcessDiesAfterFirstWrite:
    @pytest.mark.parametrize("strategy", ["pin", "blue-green"])
    def test_replay_in_a_new_process_finishes_the_rotation(self, bound, strategy):
        """The run dies right after its first write; a replay (fresh service, as after a
        restart) converges, writing only what the first run did not."""
        world, v1, v2 = bound
        crashing = CrashAfterFirstWrite(real_gateway(world))
        world.use(gateway=crashing, strategy=strategy)
        old, new = world.thumbprints[v1], world.thumbprints[v2]

        with pytest.raises(ProcessCrashError):
            world.deliver(v2)
        partial = on_old_or_new(world, old, new)
        first_writes = len(world.writes())
        world.use(strategy=strategy)
        world.deliver(v2)

        assert crashing.writes == first_writes == 1
        assert world.audit.records[-1].decision == "applied"
        assert on_old_or_new(world, old, new) == [new, new, new]
        if strategy == "pin":
            assert partial == [new, new, old]  # svc1's entity was written, svc2's was not
            replayed = [w.path.rsplit("/", 3)[-3] for w in world.writes()[first_writes:]]
            assert replayed == [world.svc2]
        else:
            assert partial == [old, old, old]  # the new entity exists, nothing references it
