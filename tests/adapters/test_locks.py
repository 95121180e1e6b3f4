"""BlobLeaseLock against Azurite: one lease per certificate, bounded waits, clean errors."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from rotation.adapters.locks import BlobLeaseLock, lock_blob_name
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


class TestTimeout:
    def test_a_holder_that_never_releases_times_out_the_second_in_bounded_time(
        self, azurite, container
    ):
        """The waiting run gives up after wait_seconds with a retryable TransientDependencyError."""
        holder = make_lock(azurite, container)
        waiter = make_lock(azurite, container, wait_seconds=0.6)

        with holder.hold(VAULT, CERT):
            started = time.monotonic()
            with pytest.raises(TransientDependencyError) as info, waiter.hold(VAULT, CERT):
                pytest.fail("the lock was acquired twice")
            elapsed = time.monotonic() - started

        assert 0.6 <= elapsed < 5.0
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
