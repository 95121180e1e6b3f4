"""``MemoryLock`` and ``MemoryAuditSink``: the lock and audit ports in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from rotation.domain.errors import (
    RotationError,
    TransientDependencyError,
)
from rotation.domain.follow import last_validated
from rotation.domain.inbound import added_at
from rotation.domain.model import (
    AuditRecord,
)
from rotation.domain.planning import vault_key


class MemoryLock:
    """A ``RotationLock`` over ``threading.Lock``s, one per (vault host, certificate), lower-cased.

    ``held`` is the set of keys held now, ``acquisitions`` every key in acquisition order,
    ``contended`` is set once a ``hold`` finds its key taken (so tests order threads on it);
    ``fail`` makes every ``hold`` raise it. A ``hold`` that cannot acquire within
    ``wait_seconds`` raises ``TransientDependencyError``, as the blob lease does.
    """

    def __init__(self, *, wait_seconds: float = 5.0) -> None:
        self.wait_seconds = wait_seconds
        self.held: set[tuple[str, str]] = set()
        self.acquisitions: list[tuple[str, str]] = []
        self.contended = threading.Event()
        self.fail: RotationError | None = None
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    @contextmanager
    def hold(self, vault_url: str, certificate: str) -> Iterator[None]:
        """Hold the certificate's lock for the block.

        Raises:
            RotationError: ``fail``, when set.
            TransientDependencyError: not acquired within ``wait_seconds``.
        """
        if self.fail is not None:
            raise self.fail
        key = (vault_key(vault_url) or vault_url.lower(), certificate.lower())
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=False):
            self.contended.set()
            if not lock.acquire(timeout=self.wait_seconds):
                raise TransientDependencyError(
                    f"lock for {certificate!r} not acquired within {self.wait_seconds:g} s",
                    service="memory-lock", operation="acquire",
                )  # fmt: skip
        with self._guard:
            self.held.add(key)
            self.acquisitions.append(key)
        try:
            yield
        finally:
            with self._guard:
                self.held.discard(key)
            lock.release()


class MemoryAuditSink:
    """Keeps every record in ``records``."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> None:
        """Append the record."""
        self.records.append(record)

    def last_validated(self, vault_url: str, certificate: str) -> str | None:
        """``ValidationHistory``: the last validated version on record (``follow``)."""
        return last_validated((r.as_dict() for r in self.records), vault_url, certificate)

    def inbound_added_at(
        self, vault_url: str, certificate: str
    ) -> dict[tuple[str, str], datetime]:
        """``ValidationHistory``: when each inbound thumbprint was added, on record."""
        return added_at((r.as_dict() for r in self.records), vault_url, certificate)

    @property
    def events(self) -> list[str]:
        """The ``event`` names, in order."""
        return [r.event for r in self.records]
