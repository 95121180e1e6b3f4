"""RotationService and the RotationLock: writing runs hold the certificate's lock, nothing else does."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rotation import bootstrap
from rotation.adapters.locks import BlobLeaseLock
from rotation.config import Settings
from rotation.domain.errors import BackendUpdateError, TransientDependencyError
from rotation.domain.model import AuditRecord, Decision, Disposition, Strategy, Trigger
from rotation.ports import NullLock, RotationLock
from rotation.testing import MemoryLock
from tests.service.conftest import CERT, SVC_A, SVC_B, V1, V2, VAULT, World, make_event

EG = Trigger.EVENTGRID
KEY = ("kv-demo.vault.azure.net", CERT)
TIMEOUT = 15.0


class Observed:
    """Wraps a fake port; records, for every call, whether ``lock`` held the certificate."""

    def __init__(self, port: Any, lock: MemoryLock, seen: list[tuple[str, bool]]) -> None:
        self._port, self._lock, self._seen = port, lock, seen

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._seen.append((name, KEY in self._lock.held))
            return attribute(*args, **kwargs)

        return call


def observe(world: World, lock: MemoryLock) -> list[tuple[str, bool]]:
    """Route the world's source and gateway through ``Observed``; return the call log."""
    seen: list[tuple[str, bool]] = []
    world.source = Observed(world.source, lock, seen)  # type: ignore[assignment]
    world.gateway = Observed(world.gateway, lock, seen)  # type: ignore[assignment]
    return seen


def canonical(world: World) -> list[AuditRecord]:
    return [r for r in world.audit.records if r.event != "rotation.target"]


class TestHandle:
    @pytest.mark.parametrize("strategy", [Strategy.PIN, Strategy.BLUE_GREEN])
    def test_every_key_vault_and_apim_call_runs_inside_the_lock(
        self, rotated: World, strategy: Strategy
    ) -> None:
        """The whole rollout (lists, secret read, writes, verify) runs while the lock is held."""
        lock = MemoryLock()
        seen = observe(rotated, lock)

        record = rotated.service(lock=lock, strategy=strategy).handle(make_event(V2), trigger=EG)

        assert record.decision is Decision.APPLIED
        assert lock.acquisitions == [KEY]
        assert lock.held == set()
        assert seen
        assert [name for name, held in seen if not held] == []

    def test_lock_is_per_certificate_case_insensitively(self, rotated: World) -> None:
        """The key is the lower-cased vault host and certificate name."""
        lock = MemoryLock()
        event = make_event(V2, vault="https://KV-Demo.vault.azure.net", name="Partner-MTLS")

        rotated.service(lock=lock).handle(event, trigger=EG)

        assert lock.acquisitions == [KEY]

    def test_an_uncontended_lock_changes_no_call_count(self, rotated: World, pki: Any) -> None:
        """The call budgets hold with the lock: the same calls as a run without one."""
        plain = World(pki)
        plain.add_version("v1", V1)
        plain.add_version("v2", V2)
        plain.bind(SVC_A, CERT, V1, backend="partner-api")

        rotated.service(lock=MemoryLock()).handle(make_event(V2), trigger=EG)
        plain.service().handle(make_event(V2), trigger=EG)

        assert rotated.source.calls == plain.source.calls
        assert rotated.gateway.calls == plain.gateway.calls

    @pytest.mark.parametrize(
        "event",
        [
            make_event(V2, vault="https://kv-other.vault.azure.net"),
            make_event(V2, object_type="Secret", disposition=Disposition.IGNORE),
        ],
        ids=["vault-not-allow-listed", "not-a-certificate"],
    )
    def test_ignored_events_take_no_lock(self, rotated: World, event: Any) -> None:
        """An event that converges nothing does not touch the lock store."""
        lock = MemoryLock()
        lock.fail = TransientDependencyError("lock store down", service="x", operation="y")

        record = rotated.service(lock=lock).handle(event, trigger=EG)

        assert record.decision is Decision.IGNORED
        assert lock.acquisitions == []

    def test_dry_runs_and_plans_take_no_lock(self, rotated: World) -> None:
        """Runs that write nothing (dry run, plan) never wait for the lock."""
        lock = MemoryLock()
        lock.fail = TransientDependencyError("lock store down", service="x", operation="y")
        service = rotated.service(lock=lock, dry_run=True)

        record = service.handle(make_event(V2), trigger=EG)
        plan = service.plan(VAULT, CERT)

        assert (record.decision, plan.decision) == (Decision.APPLIED, Decision.APPLIED)
        assert record.event == "rotation.planned"
        assert lock.acquisitions == []
        assert rotated.gateway.updates == []


class TestLockFailures:
    def test_a_lock_failure_is_audited_as_failed_and_raised_retryable(
        self, rotated: World
    ) -> None:
        """A lock that cannot be taken: one failed record with the error, no Azure call, re-raised."""
        lock = MemoryLock()
        lock.fail = TransientDependencyError(
            "lock busy", service="blob-lease", operation="acquire_lease"
        )

        with pytest.raises(TransientDependencyError) as caught:
            rotated.service(lock=lock).handle(make_event(V2), trigger=EG)

        (record,) = canonical(rotated)
        assert caught.value.retryable
        assert record.event == "rotation.failed"
        assert record.decision is Decision.FAILED
        assert record.error == "TransientDependencyError: lock busy"
        assert record.message == f"could not take the rotation lock of {CERT}"
        assert (record.certificate, record.version, record.targets) == (CERT, V2, ())
        assert rotated.source.calls == {}
        assert rotated.gateway.calls == {}

    def test_a_lock_held_elsewhere_times_out_retryably(self, rotated: World) -> None:
        """Another run holding the lock past the wait makes this run fail retryably, unwritten."""
        lock = MemoryLock(wait_seconds=0.05)
        service = rotated.service(lock=lock)

        with lock.hold(VAULT, CERT), pytest.raises(TransientDependencyError, match="not acquired"):
            service.handle(make_event(V2), trigger=EG)

        assert canonical(rotated)[-1].decision is Decision.FAILED
        assert rotated.gateway.updates == []

    def test_reconcile_records_each_lock_failure_and_raises_after_the_sweep(
        self, rotated: World
    ) -> None:
        """Reconcile tries every certificate; lock failures are failed records, then retryable."""
        rotated.add_version("v1", V1, name="alpha")
        rotated.add_version("v2", V2, name="alpha")
        rotated.bind(SVC_B, "alpha", V1, name="alpha")
        lock = MemoryLock()
        lock.fail = TransientDependencyError("busy", service="blob-lease", operation="acquire")

        with pytest.raises(BackendUpdateError) as caught:
            rotated.service(lock=lock).reconcile(trigger=Trigger.TIMER)

        assert caught.value.retryable
        assert sorted((r.certificate, r.decision) for r in canonical(rotated)) == [
            ("alpha", Decision.FAILED),
            (CERT, Decision.FAILED),
        ]
        assert rotated.gateway.updates == []


class TestReconcile:
    def test_each_certificate_converges_inside_its_own_lock(self, rotated: World) -> None:
        """The sweep lists once, then holds each certificate's lock while converging it."""
        rotated.add_version("v1", V1, name="alpha")
        rotated.add_version("v2", V2, name="alpha")
        rotated.bind(SVC_B, "alpha", V1, name="alpha")
        lock = MemoryLock()

        records = rotated.service(lock=lock).reconcile(trigger=Trigger.TIMER)

        assert sorted(lock.acquisitions) == [("kv-demo.vault.azure.net", "alpha"), KEY]
        assert {r.decision for r in records} == {Decision.APPLIED}
        assert lock.held == set()


class TestConcurrentRuns:
    def test_two_threads_rotating_one_certificate_write_each_target_once(
        self, rotated: World
    ) -> None:
        """blue-green: the second run waits for the first, then finds everything current."""
        lock = MemoryLock(wait_seconds=TIMEOUT)
        first_inside = threading.Event()
        real_list = rotated.gateway.list_certificates

        def list_certificates(service_id: str) -> Any:
            if not first_inside.is_set():
                first_inside.set()
                assert lock.contended.wait(TIMEOUT)  # the other run is now waiting on the lock
            return real_list(service_id)

        rotated.gateway.list_certificates = list_certificates  # type: ignore[method-assign]
        service = rotated.service(lock=lock, strategy=Strategy.BLUE_GREEN)
        decisions: list[Decision] = []

        def run() -> None:
            decisions.append(service.handle(make_event(V2), trigger=EG).decision)

        threads = [threading.Thread(target=run) for _ in range(2)]
        threads[0].start()
        assert first_inside.wait(TIMEOUT)
        threads[1].start()
        for thread in threads:
            thread.join(TIMEOUT)

        writes = [(u.op, u.name) for u in rotated.gateway.updates]
        assert sorted(decisions) == sorted([Decision.APPLIED, Decision.ALREADY_CURRENT])
        assert writes == [
            ("put_certificate", f"{CERT}--{V2[:8]}"),
            ("update_backend_certificates", "partner-api"),
        ]
        assert len(lock.acquisitions) == 2


class TestBootstrap:
    def _settings(self, env: dict[str, str], **extra: str) -> Settings:
        return Settings.from_env({**env, **extra})

    @pytest.fixture(name="env")
    def _env(self, tmp_path: Any, pki: Any) -> dict[str, str]:
        anchors = tmp_path / "anchors.pem"
        anchors.write_bytes(pki.intermediate.pem)
        return {
            "ROTATION_VAULTS": VAULT,
            "ROTATION_APIM_SERVICES": f"{SVC_A},{SVC_B}",
            "ROTATION_TRUST_ANCHORS": str(anchors),
            "ROTATION_DEVSTACK_TOKEN": "not-a-real-token",
        }

    def test_blob_lock_is_built_from_the_settings_without_a_call(
        self, env: dict[str, str], world: World
    ) -> None:
        """ROTATION_LOCK=blob wires a BlobLeaseLock on the configured container and wait."""
        settings = self._settings(
            env,
            AzureWebJobsStorage="UseDevelopmentStorage=true",
            ROTATION_LOCK_CONTAINER="rotation-locks",
            ROTATION_LOCK_WAIT_SECONDS="7",
        )

        service = bootstrap.build_service(
            settings, source=world.source, gateway=world.gateway, audit=world.audit
        )

        lock = service._lock
        assert isinstance(lock, BlobLeaseLock)
        assert (lock.container_name, lock.wait_seconds) == ("rotation-locks", 7.0)

    def test_lock_off_builds_no_lock(self, env: dict[str, str], world: World) -> None:
        """Without storage (or with ROTATION_LOCK=off) the service runs without a lock."""
        service = bootstrap.build_service(
            self._settings(env), source=world.source, gateway=world.gateway, audit=world.audit
        )

        assert isinstance(service._lock, NullLock)
        assert bootstrap.build_lock(self._settings(env, ROTATION_LOCK="off")) is None

    def test_a_given_lock_overrides_the_settings(self, env: dict[str, str], world: World) -> None:
        """lock= is used as is, like the other ports."""
        given: RotationLock = MemoryLock()
        settings = self._settings(env, AzureWebJobsStorage="UseDevelopmentStorage=true")

        service = bootstrap.build_service(
            settings, source=world.source, gateway=world.gateway, audit=world.audit, lock=given
        )

        assert service._lock is given


class TestFakes:
    def test_memory_and_null_locks_conform_to_the_port(self) -> None:
        """MemoryLock and NullLock are RotationLocks (checked by mypy and at run time)."""
        locks: list[RotationLock] = [MemoryLock(), NullLock()]

        assert all(isinstance(lock, RotationLock) for lock in locks)

    def test_memory_lock_releases_when_the_block_raises(self) -> None:
        """The fake frees its key on an exception, so the next hold does not wait."""
        lock = MemoryLock(wait_seconds=0.01)

        with pytest.raises(RuntimeError), lock.hold(VAULT, CERT):
            raise RuntimeError
        with lock.hold(VAULT, CERT):
            held = set(lock.held)

        assert held == {KEY}
        assert lock.acquisitions == [KEY, KEY]
        assert not lock.contended.is_set()
