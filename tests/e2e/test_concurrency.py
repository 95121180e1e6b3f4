"""End to end, two processes handling the same event at once against one devstack (issue 5).

Two ``multiprocessing`` spawn children (``tests.e2e.worker``) build the real service, warm their
clients, start together at a barrier and deliver the same event through the trigger. Their first
APIM write waits (bounded) for the other child's, so without a lock both have read APIM before
either writes: the worst case, every time, instead of hoping the scheduler overlaps them.

With ``ROTATION_LOCK=blob`` (a blob lease per certificate in Azurite) the second run waits for
the first and then finds everything current, so both strategies write each target once; ``pin``
is also run with the lock off, where ETags alone keep it correct.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.azurite import Azurite
from tests.e2e.worker import handle_in_child
from tests.e2e.world import CERT, NOW, World, event_data, topic

pytestmark = pytest.mark.azurite

BACKENDS = ((1, "api-a"), (1, "api-b"), (2, "api-c"))


def lock_settings(azurite: Azurite, lock: str) -> dict[str, str]:
    """``blob``: the lease lock in a fresh Azurite container; ``off``: ETags alone."""
    if lock == "off":
        return {"lock": "off"}
    return {
        "lock": "blob",
        "lock_connection": azurite.connection_string,
        "lock_container": f"locks-{uuid.uuid4().hex[:12]}",
    }


def run_two(world: World, version: str, **overrides: str) -> list[tuple[str | None, str | None]]:
    """Both children deliver the same event; return their (decision, error) pairs."""
    ctx = multiprocessing.get_context("spawn")
    sync = (ctx.Barrier(3), ctx.Barrier(3), (ctx.Event(), ctx.Event()))
    results = ctx.Queue()
    env = {**world.stack.env(), "ROTATION_TRUST_ANCHORS": str(world.anchors)}
    env |= {
        "ROTATION_HTTP_RETRIES": "1",
        **{f"ROTATION_{k.upper()}": v for k, v in overrides.items()},
    }
    event: dict[str, Any] = {
        "id": "eg-twice", "data": event_data(world.stack, CERT, version),
        "topic": topic(world.stack), "subject": CERT,
        "event_type": "Microsoft.KeyVault.CertificateNewVersionCreated",
    }  # fmt: skip
    children = [
        ctx.Process(
            target=handle_in_child,
            args=(env, event, NOW.isoformat(), sync, results),
            kwargs={"me": me},
        )
        for me in range(2)
    ]
    for child in children:
        child.start()
    sync[0].wait(timeout=120)
    world.stack.request_log.clear()
    sync[1].wait(timeout=60)
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    return outcomes


def successful_writes(world: World) -> Counter[tuple[str, str]]:
    """(method, path) of every 2xx ARM write in the request log."""
    return Counter((w.method, w.path.lower()) for w in world.writes())


def rejected_writes(world: World) -> int:
    """ARM writes answered 412 (a run that lost an ETag race)."""
    return sum(1 for e in world.stack.request_log.arm.entries() if e.status == 412)


# blue-green needs the lock: its new entity is created by an unconditional PUT (ARM has no
# If-None-Match for APIM certificates), so two unlocked runs would both write it.
CASES = [("pin", "blob"), ("blue-green", "blob"), ("pin", "off")]


class TestTwoProcesses:
    @pytest.mark.parametrize(("strategy", "lock"), CASES)
    def test_same_event_twice_at_once_ends_correct(self, bound, azurite, strategy, lock):
        """Both runs finish applied/already_current (or a retryable 412), every backend presents
        v2, the original entity is untouched in blue-green, and no backend is written twice."""
        world, _, v2 = bound

        outcomes = run_two(world, v2, strategy=strategy, **lock_settings(azurite, lock))

        for decision, error in outcomes:
            assert decision in {"applied", "already_current"} or (
                error is not None and "retryable=True" in error
            ), (decision, error)
        assert "applied" in [d for d, _ in outcomes]
        for svc_no, backend in BACKENDS:
            svc = world.svc1 if svc_no == 1 else world.svc2
            assert world.presented(svc, backend) == [world.thumbprints[v2]]
        patches = [n for (m, _), n in successful_writes(world).items() if m == "PATCH"]
        assert all(n == 1 for n in patches)

    @pytest.mark.parametrize(("strategy", "lock"), CASES)
    def test_apim_is_written_at_most_once_per_target(self, bound, azurite, strategy, lock):
        """Two concurrent runs of one event write each APIM target at most once in total."""
        world, _, v2 = bound

        run_two(world, v2, strategy=strategy, **lock_settings(azurite, lock))

        writes = successful_writes(world)
        assert writes
        assert max(writes.values()) == 1, writes

    @pytest.mark.parametrize("strategy", ["pin", "blue-green"])
    def test_the_lease_serialises_the_runs(self, bound, azurite, strategy):
        """With the lock the second run waits, then finds everything current: one applied, one
        already_current, no error and no ETag race lost."""
        world, _, v2 = bound

        outcomes = run_two(world, v2, strategy=strategy, **lock_settings(azurite, "blob"))

        assert sorted(outcomes) == [("already_current", None), ("applied", None)]
        assert rejected_writes(world) == 0
