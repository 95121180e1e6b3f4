"""``BlobLeaseLock``: one blob lease per certificate serialises concurrent rotations of it.

Event Grid redelivers while a slow run is still going and the Functions host scales out, so two
processes can converge the same certificate at once. ETags keep ``pin`` correct, but a blue-green
entity is created with an unconditional PUT (ARM has no ``If-None-Match`` for APIM certificates),
so both runs would write it. ``RotationService`` therefore runs each rollout inside
``lock.hold(vault, certificate)``; this adapter implements that with Azure Blob Storage leases
(Azurite works the same way):

- the lock is an empty blob named ``sha256("{vault host}/{certificate}").lock`` (both
  lower-cased, as Key Vault names are case-insensitive), created on first use together with the
  container; its metadata names the vault host and certificate for operators;
- ``hold`` acquires a lease of ``lease_seconds`` (15-60 s, so a crashed holder frees the lock by
  itself); ``409 LeaseAlreadyPresent`` means another run holds it: wait with a jittered,
  doubling backoff (50 ms to 1 s) and try again until ``wait_seconds`` have passed, then raise
  ``TransientDependencyError`` (retryable: Event Grid redelivers later);
- while the block runs, a daemon thread owned by ``hold`` (named ``rotation-lock-renewer-…``)
  renews the lease every ``renew_every`` seconds (default ``lease_seconds / 3``, leaving two
  thirds of the lease for a slow renewal) with ``BlobLeaseClient.renew()``. It runs in a copy
  of the caller's ``contextvars``, so its log lines carry the invocation's bound context;
- a renewal that fails transiently (Storage unreachable or throttled after the SDK's retries)
  is tried again at the next tick, as long as the lease can still be alive by then;
- a renewal that fails for good (the lease was broken or taken: 409/412, or transient failures
  until the lease would lapse) cannot stop the block half-way safely, so it is only recorded: one
  structlog warning
  ``rotation_lock_renewal_failed`` (container, blob, HTTP status and Storage error code; never the
  connection string) and the renewer stops. The block goes on without exclusivity, as with
  ``ROTATION_LOCK=off``: ETags keep ``pin`` and backend moves correct, and a concurrent
  blue-green run re-writes its new entity with the same content;
- on exit, also when the block raises, the renewer is stopped and joined (bounded) before the
  lease is released; a failed release is ignored (the lease expires within ``lease_seconds``) so
  it never masks the block's own outcome.

Azure errors become domain errors (``rotation.adapters.errors.translate``); messages carry the
container, blob and status only, never the connection string.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import structlog
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobLeaseClient, ContainerClient, LinearRetry

from rotation.adapters.errors import LOCKS, translate
from rotation.adapters.storage import StorageConnection, container_client
from rotation.domain.errors import DependencyError, RotationError, TransientDependencyError
from rotation.domain.planning import vault_key

__all__ = ["RENEWER_THREAD_PREFIX", "BlobLeaseLock", "RenewWait", "lock_blob_name"]

_SERVICE = LOCKS.name
_LEASE_RANGE = (15, 60)  # what Blob Storage accepts for a finite lease
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 1.0
_LEASE_TAKEN = "LeaseAlreadyPresent"
_CONNECT_TIMEOUT = 5
_READ_TIMEOUT = 10
_RENEWALS_PER_LEASE = 3
_JOIN_SECONDS = 5.0  # bound on stopping the renewer (an in-flight renew() is SDK-time-bounded)
RENEWER_THREAD_PREFIX = "rotation-lock-renewer"

_log = structlog.get_logger(__name__)

RenewWait = Callable[[threading.Event, float], bool]
"""Waits between renewals: ``(stop, seconds) -> True`` once ``stop`` is set, else ``False``."""


def _lock_key(vault_url: str, certificate: str) -> tuple[str, str]:
    return (vault_key(vault_url) or vault_url.strip().lower(), certificate.strip().lower())


def lock_blob_name(vault_url: str, certificate: str) -> str:
    """The lock blob's name: ``sha256("{vault host}/{certificate}")`` hex, lower-cased, ``.lock``."""
    host, name = _lock_key(vault_url, certificate)
    return hashlib.sha256(f"{host}/{name}".encode()).hexdigest() + ".lock"


def _lease_lost(exc: Exception) -> bool:
    """A renewal refused because the lease is no longer ours (broken, expired or taken)."""
    return isinstance(exc, HttpResponseError) and exc.status_code in {
        HTTPStatus.CONFLICT,
        HTTPStatus.PRECONDITION_FAILED,
    }


class BlobLeaseLock:
    """A ``RotationLock`` over blob leases in one container (see the module docstring)."""

    def __init__(
        self,
        container: ContainerClient,
        *,
        lease_seconds: int = 30,
        wait_seconds: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        renew_every: float | None = None,
        renew_wait: RenewWait = threading.Event.wait,
    ) -> None:
        """``clock`` (monotonic seconds) and ``sleep`` drive the wait loop; ``clock`` also tells
        the renewer how long ago the lease was last renewed.

        The renewer renews the held lease every ``renew_every`` seconds (default
        ``lease_seconds / 3``); between renewals it calls ``renew_wait(stop, renew_every)``,
        which returns True once ``hold`` has set ``stop`` (default ``threading.Event.wait``; a
        test passes its own to step renewals deterministically).

        Raises:
            ValueError: ``lease_seconds`` outside 15-60, ``wait_seconds`` not > 0, or
                ``renew_every`` not within (0, ``lease_seconds``).
        """
        if not _LEASE_RANGE[0] <= lease_seconds <= _LEASE_RANGE[1]:
            raise ValueError(f"lease_seconds must be within {_LEASE_RANGE}, not {lease_seconds}")
        if not wait_seconds > 0:
            raise ValueError(f"wait_seconds must be > 0, not {wait_seconds}")
        if renew_every is None:
            renew_every = lease_seconds / _RENEWALS_PER_LEASE
        if not 0 < renew_every < lease_seconds:
            raise ValueError(
                f"renew_every must be > 0 and < lease_seconds ({lease_seconds}), not {renew_every}"
            )
        self._container = container
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.renew_every = renew_every
        self._renew_wait = renew_wait
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter only; nothing secret depends on it

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        container: str,
        *,
        lease_seconds: int = 30,
        wait_seconds: float = 20.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        renew_every: float | None = None,
        renew_wait: RenewWait = threading.Event.wait,
    ) -> BlobLeaseLock:
        """A lock in ``container`` of the account named by ``connection_string``.

        Storage calls retry ``retries`` times about a second apart and time out quickly (the
        SDK's default backoff starts at 15 s, longer than a whole Event Grid delivery).

        Raises:
            DependencyError: the connection string is blank or malformed (its text is never shown).
            ValueError: as for the constructor.
        """
        try:
            client = ContainerClient.from_connection_string(
                connection_string,
                container,
                retry_policy=LinearRetry(backoff=1, random_jitter_range=1, retry_total=retries),
                connection_timeout=_CONNECT_TIMEOUT,
                read_timeout=_READ_TIMEOUT,
            )
        except (ValueError, AzureError):
            raise DependencyError(
                "the lock storage connection string is blank or malformed",
                service=_SERVICE,
                operation="connect",
            ) from None
        return cls(
            client,
            lease_seconds=lease_seconds,
            wait_seconds=wait_seconds,
            sleep=sleep,
            clock=clock,
            renew_every=renew_every,
            renew_wait=renew_wait,
        )

    @classmethod
    def from_connection(
        cls,
        connection: StorageConnection,
        container: str,
        *,
        wait_seconds: float = 20.0,
        retries: int = 2,
        credential: Any = None,
        connection_verify: str | bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> BlobLeaseLock:
        """A lock in ``container`` of a named storage connection (a connection string or an
        identity-based one, see ``rotation.adapters.storage``), with the same quick retries and
        timeouts as ``from_connection_string``. ``credential`` overrides the connection's own
        token credential (tests); ``connection_verify`` is a CA bundle (tests against Azurite).

        Raises:
            ConfigError: the connection cannot be used for blob storage (no secret shown).
        """
        client = container_client(
            connection,
            container,
            credential=credential,
            connection_verify=connection_verify,
            retry_policy=LinearRetry(backoff=1, random_jitter_range=1, retry_total=retries),
            connection_timeout=_CONNECT_TIMEOUT,
            read_timeout=_READ_TIMEOUT,
        )
        return cls(client, wait_seconds=wait_seconds, sleep=sleep)

    @property
    def container_name(self) -> str:
        """The container that holds the lock blobs."""
        return str(self._container.container_name)

    def __repr__(self) -> str:
        return (
            f"BlobLeaseLock(container={self.container_name!r}, lease_seconds={self.lease_seconds})"
        )

    @contextmanager
    def hold(self, vault_url: str, certificate: str) -> Iterator[None]:
        """Hold the certificate's lease for the block, renewed while it runs; released on exit,
        also on exceptions. A failed renewal is logged, never raised into the block.

        Raises:
            TransientDependencyError: not acquired within ``wait_seconds``, or Storage failed
                transiently (throttled, 5xx, unreachable).
            AuthorizationError: 401/403 from Storage.
            DependencyError: any other Storage failure.
        """
        blob = self._container.get_blob_client(lock_blob_name(vault_url, certificate))
        lease = self._acquire(blob, vault_url, certificate)
        stop = threading.Event()
        renewer = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._renew, lease, blob, stop),
            name=f"{RENEWER_THREAD_PREFIX}-{blob.blob_name[:16]}",
            daemon=True,
        )
        try:
            renewer.start()
            yield
        finally:
            stop.set()
            if renewer.is_alive():
                renewer.join(_JOIN_SECONDS)
            # A failed release is harmless (the lease expires within lease_seconds) and must
            # never mask the block's own outcome.
            with contextlib.suppress(AzureError):
                lease.release()

    def _renew(self, lease: BlobLeaseClient, blob: BlobClient, stop: threading.Event) -> None:
        """The renewer thread: renew every ``renew_every`` s until ``stop``. A transient failure
        is tried again at the next tick while the lease can still be alive then; a lost lease
        (409/412) or a lease that would lapse before the next try is warned about once, and the
        renewer stops (the block goes on; see the module docstring). Never raises."""
        renewed_at = self._clock()
        while not self._renew_wait(stop, self.renew_every):
            try:
                lease.renew()
                renewed_at = self._clock()
            except Exception as exc:  # noqa: BLE001 - a daemon thread must not die noisily
                lapses = self._clock() - renewed_at + self.renew_every >= self.lease_seconds
                if not (_lease_lost(exc) or lapses):
                    continue
                if not stop.is_set():  # failing while hold exits is the release's business
                    _log.warning(
                        "rotation_lock_renewal_failed",
                        container=self.container_name,
                        blob=blob.blob_name,
                        status=getattr(exc, "status_code", None),
                        error_code=getattr(exc, "error_code", None) or type(exc).__name__,
                    )
                return

    def _acquire(self, blob: BlobClient, vault_url: str, certificate: str) -> BlobLeaseClient:
        deadline = self._clock() + self.wait_seconds
        delay = _FIRST_BACKOFF
        while True:
            lease = self._try_acquire(blob, vault_url, certificate)
            if lease is not None:
                return lease
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise TransientDependencyError(
                    f"the rotation lock for certificate {certificate!r} is held by another run; "
                    f"not acquired within {self.wait_seconds:g} s",
                    service=_SERVICE, operation="acquire_lease", status_code=HTTPStatus.CONFLICT,
                )  # fmt: skip
            self._sleep(min(remaining, self._rng.uniform(delay / 2, delay)))
            delay = min(delay * 2, _MAX_BACKOFF)

    def _try_acquire(
        self, blob: BlobClient, vault_url: str, certificate: str
    ) -> BlobLeaseClient | None:
        """The lease, or None when another run holds it; creates a missing blob once."""
        for first in (True, False):
            try:
                return blob.acquire_lease(lease_duration=self.lease_seconds)
            except ResourceNotFoundError as exc:
                if not first:
                    raise self._error(exc, "acquire_lease", blob) from exc
                self._create(blob, vault_url, certificate)
            except HttpResponseError as exc:
                code = getattr(exc, "error_code", None)
                if exc.status_code == HTTPStatus.CONFLICT and code == _LEASE_TAKEN:
                    return None
                raise self._error(exc, "acquire_lease", blob) from exc
            except AzureError as exc:
                raise self._error(exc, "acquire_lease", blob) from exc
        return None  # pragma: no cover - the loop returns or raises

    def _create(self, blob: BlobClient, vault_url: str, certificate: str) -> None:
        """Create the empty lock blob (and the container if missing); losing a race is fine."""
        host, name = _lock_key(vault_url, certificate)
        metadata = {"vault": _ascii(host), "certificate": _ascii(name)}
        for first in (True, False):
            try:
                blob.upload_blob(b"", overwrite=False, metadata=metadata)
            except (ResourceExistsError, ResourceModifiedError):
                return  # another run created it first (or holds it already)
            except ResourceNotFoundError as exc:
                if not first:
                    raise self._error(exc, "upload_blob", blob) from exc
                self._create_container()
                continue
            except AzureError as exc:
                raise self._error(exc, "upload_blob", blob) from exc
            return

    def _create_container(self) -> None:
        try:
            self._container.create_container()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise translate(
                exc, service=LOCKS, operation="create_container", name=self.container_name
            ) from exc

    def _error(self, exc: AzureError, operation: str, blob: BlobClient) -> RotationError:
        where = f"{self.container_name}/{blob.blob_name}"
        return translate(exc, service=LOCKS, operation=operation, name=where)


def _ascii(text: str) -> str:
    """Metadata travels as HTTP headers: keep it ASCII."""
    return text.encode("ascii", "replace").decode("ascii")
