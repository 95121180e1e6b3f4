"""BlobLeaseLock against Azurite: one lease per certificate, renewed while held, bounded waits,
clean errors."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from unittest import mock

import pytest
import structlog
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient, ContainerClient
from structlog.testing import capture_logs

from rotation.adapters.locks import RENEWER_THREAD_PREFIX, BlobLeaseLock, lock_blob_name
from rotation.domain.errors import (
    AuthorizationError,
    DependencyError,
    RotationError,
    TransientDependencyError,
)
from rotation.ports import RotationLock
from tests.azurite import ACCOUNT_KEY, Azurite

pytestmark = pytest.mark.azurite

VAULT = "https://kv-rotation-demo.vault.azure.net"
CERT = "partner-mtls"
TIMEOUT = 15.0  # bound on every Event wait: a hang fails the test instead of the suite
POLL = 0.01  # how often a parked RenewalStepper looks at the lock's stop event


@pytest.fixture(name="container")
def _container(azurite: Azurite) -> Iterator[str]:
    name = f"locks-{uuid.uuid4().hex[:12]}"
    yield name
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    if service.get_container_client(name).exists():
        service.delete_container(name)


def make_lock(azurite: Azurite, container: str, **options: object) -> BlobLeaseLock:
    """A lock with a short lease; no SDK retries so failures surface at once."""
    options = {"lease_seconds": 15, "wait_seconds": 10.0, "retries": 0, **options}
    return BlobLeaseLock.from_connection_string(
        azurite.connection_string,
        container,
        **options,  # type: ignore[arg-type]
    )


def lease_state(azurite: Azurite, container: str, vault: str = VAULT, cert: str = CERT) -> str:
    """The lock blob's lease state: ``leased`` or ``available``."""
    client = ContainerClient.from_connection_string(azurite.connection_string, container)
    props = client.get_blob_client(lock_blob_name(vault, cert)).get_blob_properties()
    return str(props.lease.state)


def signalling_sleep(event: threading.Event) -> Callable[[float], None]:
    """The lock's wait-loop sleep, which first reports that the lock was found taken."""

    def sleep(seconds: float) -> None:
        event.set()
        time.sleep(seconds)

    return sleep


def lock_blob(azurite: Azurite, container: str, cert: str = CERT) -> BlobClient:
    """Another client's handle on the lock blob (a competing run or an operator)."""
    client = ContainerClient.from_connection_string(azurite.connection_string, container)
    return client.get_blob_client(lock_blob_name(VAULT, cert))


def competing_acquire_error(azurite: Azurite, container: str) -> str | None:
    """The error code another run gets when it tries to take the lease now (None: it got it)."""
    try:
        lease = lock_blob(azurite, container).acquire_lease(lease_duration=15)
    except HttpResponseError as exc:
        return str(getattr(exc, "error_code", None))
    lease.release()
    return None


def renewer_threads() -> list[threading.Thread]:
    """The lock renewers alive now."""
    return [t for t in threading.enumerate() if t.name.startswith(RENEWER_THREAD_PREFIX)]


class Ticking:
    """A monotonic clock that advances ``step`` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self.step, self.now = step, 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class RenewalStepper:
    """The renewer's ``renew_wait``, driven by the test instead of the clock.

    The renewer parks here between renewals; ``step()`` lets exactly one renewal through and
    returns once the renewer has parked again (so that renewal is complete). A parked renewer
    also returns as soon as ``hold`` sets its stop event (polled every ``POLL`` s, since it
    cannot wait on the event and the test's condition at once; no outcome depends on that
    timing).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._grants = 0
        self.parks = 0  # times the renewer has waited: 1 + the renewals it completed
        self.intervals: list[float] = []
        self.stop_seen = False

    def __call__(self, stop: threading.Event, seconds: float) -> bool:
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            self.parks += 1
            self.intervals.append(seconds)
            self._cond.notify_all()
            while not stop.is_set():
                if time.monotonic() > deadline:
                    return True  # a forgotten renewer must not outlive the test
                if self._cond.wait_for(lambda: self._grants > 0, timeout=POLL):
                    self._grants -= 1
                    return False
            self.stop_seen = True
            return True

    def wait_parked(self, parks: int = 1) -> None:
        """Until the renewer has parked ``parks`` times in total."""
        with self._cond:
            assert self._cond.wait_for(lambda: self.parks >= parks, timeout=TIMEOUT)

    def grant(self) -> None:
        """Let one renewal through without waiting for it."""
        with self._cond:
            self._grants += 1
            self._cond.notify_all()

    def step(self) -> None:
        """Let one renewal through and wait until the renewer has parked again."""
        with self._cond:
            target = self.parks + 1
        self.grant()
        self.wait_parked(target)


@pytest.fixture(name="renew_spy")
def _renew_spy() -> Iterator[mock.MagicMock]:
    """Every ``BlobLeaseClient.renew`` call, passed through to Storage."""
    with mock.patch.object(
        BlobLeaseClient, "renew", autospec=True, side_effect=BlobLeaseClient.renew
    ) as spy:
        yield spy


class TestHold:
    def test_conforms_to_the_port(self, azurite, container):
        """BlobLeaseLock is a RotationLock."""
        lock: RotationLock = make_lock(azurite, container)

        assert isinstance(lock, RotationLock)

    def test_acquires_then_releases_creating_container_and_blob(self, azurite, container):
        """First use creates the container and the empty blob; the lease is held only inside."""
        lock = make_lock(azurite, container)

        with lock.hold(VAULT, CERT):
            inside = lease_state(azurite, container)
        after = lease_state(azurite, container)

        assert (inside, after) == ("leased", "available")

    def test_blob_name_is_a_hash_of_lower_cased_vault_host_and_certificate(
        self, azurite, container
    ):
        """Case and a trailing slash do not matter; the blob's metadata names the certificate."""
        lock = make_lock(azurite, container)
        expected = hashlib.sha256(b"kv-rotation-demo.vault.azure.net/partner-mtls").hexdigest()

        with lock.hold("https://KV-Rotation-Demo.vault.azure.net/", "Partner-MTLS"):
            pass

        client = ContainerClient.from_connection_string(azurite.connection_string, container)
        (blob,) = list(client.list_blobs(include=["metadata"]))
        assert blob.name == f"{expected}.lock" == lock_blob_name(VAULT, CERT)
        assert blob.size == 0
        assert blob.metadata == {"vault": "kv-rotation-demo.vault.azure.net", "certificate": CERT}

    def test_other_certificates_do_not_wait(self, azurite, container):
        """Locks are per certificate: holding one does not block another."""
        lock = make_lock(azurite, container, sleep=_no_sleep)

        with lock.hold(VAULT, CERT), lock.hold(VAULT, "other-cert"):
            states = (
                lease_state(azurite, container),
                lease_state(azurite, container, cert="other-cert"),
            )

        assert states == ("leased", "leased")

    def test_second_holder_waits_until_the_first_releases(self, azurite, container):
        """A run that finds the lease taken waits, and goes on as soon as the holder releases."""
        first = make_lock(azurite, container)
        blocked = threading.Event()
        second = make_lock(azurite, container, sleep=signalling_sleep(blocked))
        held, release, done = threading.Event(), threading.Event(), threading.Event()
        order: list[str] = []

        def run_first() -> None:
            with first.hold(VAULT, CERT):
                order.append("first acquired")
                held.set()
                release.wait(TIMEOUT)
                order.append("first releasing")

        def run_second() -> None:
            with second.hold(VAULT, CERT):
                order.append("second acquired")
            done.set()

        threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
        threads[0].start()
        assert held.wait(TIMEOUT)
        threads[1].start()
        assert blocked.wait(TIMEOUT)  # the second found the lease taken and is waiting
        waiting_before_release = not done.is_set()
        release.set()
        for thread in threads:
            thread.join(TIMEOUT)

        assert waiting_before_release
        assert done.is_set()
        assert order == ["first acquired", "first releasing", "second acquired"]

    def test_lease_is_released_when_the_body_raises(self, azurite, container):
        """An exception inside the block releases the lease and propagates unchanged."""
        lock = make_lock(azurite, container, sleep=_no_sleep)

        with pytest.raises(RuntimeError, match="boom"), lock.hold(VAULT, CERT):
            raise RuntimeError("boom")

        assert lease_state(azurite, container) == "available"
        with lock.hold(VAULT, CERT):  # immediately available: _no_sleep would fail a wait
            assert lease_state(azurite, container) == "leased"


class TestRenewal:
    def test_driven_renewals_keep_the_lease_for_more_than_one_lease_period(
        self, azurite, container, renew_spy
    ):
        """Four renewals 5 s apart (20 s of schedule, lease 15 s): held throughout, renewed 4x."""
        stepper = RenewalStepper()
        lock = make_lock(azurite, container, renew_every=5.0, renew_wait=stepper)
        competitor: list[str | None] = []

        with lock.hold(VAULT, CERT):
            stepper.wait_parked()
            for _ in range(4):
                stepper.step()
                competitor.append(competing_acquire_error(azurite, container))
            renewals = renew_spy.call_count

        assert renewals == 4
        assert competitor == ["LeaseAlreadyPresent"] * 4
        assert stepper.intervals == [5.0] * 5  # parked before each renewal and after the last
        assert lease_state(azurite, container) == "available"

    def test_default_schedule_is_a_third_of_the_lease(self, azurite, container):
        """Without renew_every the lease is renewed every lease_seconds / 3."""
        assert make_lock(azurite, container, lease_seconds=30).renew_every == 10.0
        assert make_lock(azurite, container, lease_seconds=15).renew_every == 5.0

    @pytest.mark.parametrize("every", [0.0, -1.0, 15.0, 20.0])
    def test_renew_every_must_be_within_the_lease(self, azurite, container, every):
        """A renewal interval of 0 or at least the lease would let the lease lapse."""
        with pytest.raises(ValueError, match="renew_every must be"):
            make_lock(azurite, container, lease_seconds=15, renew_every=every)

    def test_renewer_stops_and_the_lease_is_released_when_the_block_exits(
        self, azurite, container, renew_spy
    ):
        """Leaving the block stops the renewer (no renewal after it), joins it, releases."""
        stepper = RenewalStepper()
        lock = make_lock(azurite, container, renew_wait=stepper)

        with lock.hold(VAULT, CERT):
            stepper.wait_parked()
            stepper.step()
            inside = [t.name for t in renewer_threads()]

        assert len(inside) == 1
        assert renewer_threads() == []
        assert stepper.stop_seen
        assert renew_spy.call_count == 1
        assert lease_state(azurite, container) == "available"

    def test_renewer_stops_and_the_lease_is_released_when_the_block_raises(
        self, azurite, container, renew_spy
    ):
        """An exception in the block stops the renewer too, and propagates unchanged."""
        stepper = RenewalStepper()
        lock = make_lock(azurite, container, renew_wait=stepper)

        def run() -> None:
            with lock.hold(VAULT, CERT):
                stepper.wait_parked()
                stepper.step()
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            run()

        assert renewer_threads() == []
        assert stepper.stop_seen
        assert renew_spy.call_count == 1
        assert lease_state(azurite, container) == "available"
        assert competing_acquire_error(azurite, container) is None

    def test_no_renewer_is_left_running_with_the_default_schedule(self, azurite, container):
        """With the real Event.wait, hold starts one named daemon renewer and joins it on exit."""
        lock = make_lock(azurite, container)

        with lock.hold(VAULT, CERT):
            (renewer,) = renewer_threads()
            daemon = renewer.daemon

        assert daemon
        assert not renewer.is_alive()
        assert renewer_threads() == []

    @pytest.mark.parametrize(
        ("taken", "code"),
        [(False, "LeaseIsBrokenAndCannotBeRenewed"), (True, "LeaseIdMismatchWithLeaseOperation")],
    )
    def test_a_lost_lease_warns_once_and_stops_renewing_without_raising(
        self, azurite, container, renew_spy, taken, code
    ):
        """Broken (and maybe taken) by another client: one warning naming container and blob,
        no more renewals, the block runs to its end; the failed release on exit is ignored."""
        stepper = RenewalStepper()
        lock = make_lock(azurite, container, renew_wait=stepper)
        finished = False
        other = None

        with capture_logs() as logs, lock.hold(VAULT, CERT):
            stepper.wait_parked()
            BlobLeaseClient(lock_blob(azurite, container)).break_lease(lease_break_period=0)
            if taken:  # a redelivered event's run takes the lock meanwhile
                other = lock_blob(azurite, container).acquire_lease(15)
            stepper.grant()
            (renewer,) = renewer_threads()
            renewer.join(TIMEOUT)
            renewer_stopped = not renewer.is_alive()
            stepper.grant()  # nobody is parked any more: no further renewal
            finished = True

        assert finished
        assert renewer_stopped
        assert stepper.parks == 1  # it never parked again after the failed renewal
        assert renew_spy.call_count == 1
        warnings = [entry for entry in logs if entry["event"] == "rotation_lock_renewal_failed"]
        assert warnings == [
            {
                "event": "rotation_lock_renewal_failed",
                "log_level": "warning",
                "container": container,
                "blob": lock_blob_name(VAULT, CERT),
                "status": 409,
                "error_code": warnings[0]["error_code"],
            }
        ]
        assert warnings[0]["error_code"] == code
        assert renewer_threads() == []
        if other is not None:
            assert lease_state(azurite, container) == "leased"  # exit left the other's lease
            other.release()

    def test_a_transient_failure_is_tried_again_at_the_next_tick(self, azurite, container):
        """Storage unreachable once, with most of the lease left: no warning, renewing goes on."""
        stepper = RenewalStepper()
        lock = make_lock(azurite, container, renew_wait=stepper)  # real clock: ~0 s elapse

        with (
            mock.patch.object(
                BlobLeaseClient,
                "renew",
                autospec=True,
                side_effect=[ServiceRequestError("blip"), None, None],
            ) as renew,
            capture_logs() as logs,
            lock.hold(VAULT, CERT),
        ):
            stepper.wait_parked()
            for _ in range(3):
                stepper.step()
            still_renewing = len(renewer_threads()) == 1

        assert renew.call_count == 3
        assert still_renewing
        assert [e for e in logs if e["event"] == "rotation_lock_renewal_failed"] == []

    def test_transient_failures_until_the_lease_would_lapse_warn_once(self, azurite, container):
        """Each clock reading is 6 s later; lease 15 s, renewals every 5 s: the first failure
        (6 s after the last renewal) is retried, the second (12 s, so the next try would come
        after the lease lapsed) is the warning, and the renewer stops."""
        stepper = RenewalStepper()
        lock = make_lock(azurite, container, renew_wait=stepper, clock=Ticking(6.0))

        with (
            mock.patch.object(
                BlobLeaseClient, "renew", autospec=True, side_effect=ServiceRequestError("down")
            ) as renew,
            capture_logs() as logs,
            lock.hold(VAULT, CERT),
        ):
            stepper.wait_parked()
            stepper.step()
            stepper.grant()
            (renewer,) = renewer_threads()
            renewer.join(TIMEOUT)
            stopped = not renewer.is_alive()

        assert stopped
        assert renew.call_count == 2
        assert [e["event"] for e in logs] == ["rotation_lock_renewal_failed"]

    def test_the_warning_carries_no_connection_string_or_account_key(self, azurite, container):
        """Even when the failure's own message quotes the connection string (an unreachable
        Storage error), the warning carries container, blob, status and code only."""
        stepper = RenewalStepper()
        # 20 s pass per clock reading: the first failed renewal already leaves the lease to lapse
        lock = make_lock(azurite, container, renew_wait=stepper, clock=Ticking(20.0))
        leak = ServiceRequestError(f"cannot reach {azurite.connection_string}")

        with (
            mock.patch.object(BlobLeaseClient, "renew", autospec=True, side_effect=leak),
            capture_logs() as logs,
            lock.hold(VAULT, CERT),
        ):
            stepper.wait_parked()
            stepper.grant()
            (renewer,) = renewer_threads()
            renewer.join(TIMEOUT)

        (warning,) = logs
        assert warning["event"] == "rotation_lock_renewal_failed"
        assert warning["status"] is None
        assert warning["error_code"] == "ServiceRequestError"
        text = repr(logs)
        assert ACCOUNT_KEY not in text
        assert "AccountKey" not in text
        assert azurite.blob_endpoint not in text

    def test_the_warning_keeps_the_callers_log_context(self, azurite, container):
        """The renewer runs in a copy of the caller's contextvars: bound ids reach its warning."""
        stepper = RenewalStepper()
        lock = make_lock(azurite, container, renew_wait=stepper, clock=Ticking(20.0))
        structlog.contextvars.bind_contextvars(invocation_id="inv-42")

        with (
            mock.patch.object(
                BlobLeaseClient, "renew", autospec=True, side_effect=ServiceRequestError("down")
            ),
            capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs,
            lock.hold(VAULT, CERT),
        ):
            stepper.wait_parked()
            stepper.grant()
            (renewer,) = renewer_threads()
            renewer.join(TIMEOUT)

        (warning,) = logs
        assert warning["invocation_id"] == "inv-42"

    @pytest.mark.slow
    def test_the_lease_outlives_its_duration_in_real_time(self, azurite, container):
        """Wall clock: a 15 s lease held for 20 s by the default 5 s renewals is still ours."""
        lock = make_lock(azurite, container, lease_seconds=15)

        with lock.hold(VAULT, CERT):
            threading.Event().wait(20.0)  # the point of the test: real time passes
            competitor = competing_acquire_error(azurite, container)

        assert competitor == "LeaseAlreadyPresent"


class TestTimeout:
    def test_a_holder_that_never_releases_times_out_the_second_after_wait_seconds(
        self, azurite, container
    ):
        """The waiting run gives up after wait_seconds (on its injected clock) with a retryable
        TransientDependencyError."""
        holder = make_lock(azurite, container)
        now = [0.0]
        sleeps: list[float] = []

        def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds

        waiter = make_lock(
            azurite, container, wait_seconds=0.6, clock=lambda: now[0], sleep=fake_sleep
        )

        with (
            holder.hold(VAULT, CERT),
            pytest.raises(TransientDependencyError) as info,
            waiter.hold(VAULT, CERT),
        ):
            pytest.fail("the lock was acquired twice")

        assert sum(sleeps) == pytest.approx(0.6)
        assert now[0] == pytest.approx(0.6)
        assert info.value.retryable
        assert CERT in str(info.value)
        assert "0.6 s" in str(info.value)

    def test_wait_loop_backs_off_with_bounded_jitter(self, azurite, container):
        """Waits double from 50 ms to at most 1 s, jittered, and never sleep past the deadline."""
        holder = make_lock(azurite, container)
        now = [0.0]
        sleeps: list[float] = []

        def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds

        client = ContainerClient.from_connection_string(azurite.connection_string, container)
        waiter = BlobLeaseLock(
            client, lease_seconds=15, wait_seconds=5.0, clock=lambda: now[0], sleep=fake_sleep
        )

        with (
            holder.hold(VAULT, CERT),
            pytest.raises(TransientDependencyError),
            waiter.hold(VAULT, CERT),
        ):
            pytest.fail("the lock was acquired twice")

        assert sum(sleeps) == pytest.approx(5.0)
        assert 0.025 <= sleeps[0] <= 0.05
        assert all(0 < s <= 1.0 for s in sleeps)
        assert sleeps[4] > sleeps[0]  # it backs off
        assert len(set(sleeps)) > len(sleeps) // 2  # jittered, not a fixed cadence


class TestErrors:
    def test_malformed_connection_string_is_a_dependency_error_without_its_text(self):
        """A bad connection string fails with a clear message that does not echo it."""
        with pytest.raises(DependencyError) as info:
            BlobLeaseLock.from_connection_string("AccountKey=c2VjcmV0;nonsense", "locks")

        assert "malformed" in str(info.value)
        assert "c2VjcmV0" not in str(info.value)

    def test_wrong_account_key_is_an_authorization_error_without_secrets(self, azurite, container):
        """403 from Storage is an AuthorizationError naming the blob, never the key."""
        wrong_key = "d3Jvbmcta2V5LWZvci1henVyaXRl" * 3
        connection = azurite.connection_string.replace(ACCOUNT_KEY, wrong_key)
        lock = BlobLeaseLock.from_connection_string(connection, container, retries=0)

        with pytest.raises(AuthorizationError) as info, lock.hold(VAULT, CERT):
            pytest.fail("acquired with a wrong key")

        assert info.value.status_code == 403
        _assert_no_secrets(info.value, connection, wrong_key)

    def test_unreachable_storage_is_transient_without_secrets(self, azurite, container):
        """Storage that does not answer is retryable; the message carries no connection string."""
        closed = f"http://127.0.0.1:{_closed_port()}/devstoreaccount1"
        connection = azurite.connection_string.replace(azurite.blob_endpoint, closed)
        lock = BlobLeaseLock.from_connection_string(connection, container, retries=0)

        with pytest.raises(TransientDependencyError) as info, lock.hold(VAULT, CERT):
            pytest.fail("acquired without storage")

        _assert_no_secrets(info.value, connection, ACCOUNT_KEY)

    @pytest.mark.parametrize(("lease", "wait"), [(14, 1.0), (61, 1.0), (30, 0.0)])
    def test_out_of_range_knobs_are_rejected(self, azurite, container, lease, wait):
        """Leases are 15-60 s (finite, so a crashed holder frees the lock); waits are > 0."""
        client = ContainerClient.from_connection_string(azurite.connection_string, container)

        with pytest.raises(ValueError, match="must be"):
            BlobLeaseLock(client, lease_seconds=lease, wait_seconds=wait)

    def test_repr_names_the_container_only(self, azurite, container):
        """repr shows the container and lease, not the connection string."""
        text = repr(make_lock(azurite, container))

        assert container in text
        assert ACCOUNT_KEY not in text


def _assert_no_secrets(error: RotationError, *secrets: str) -> None:
    text = f"{error} {error!r}"
    for secret in secrets:
        assert secret not in text
    assert "AccountKey" not in text


def _no_sleep(seconds: float) -> None:
    pytest.fail(f"the lock waited ({seconds:.3f} s) although it was free")


def _closed_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
