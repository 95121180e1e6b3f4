"""``ListingCache``: APIM listings kept per certificate between the events of one replay.

``RotationService.batch`` hands a replay (and the Functions app's worker, ``bootstrap.get_handler``)
an ``EventHandler`` whose events plan from the listing the previous run of the same certificate
ended with: the certificate entities (and backends) for an outbound certificate, every service's
policy documents for an inbound one (see ``docs/rotation.md``, "Replays: shared APIM listings").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotation.domain.planning import vault_key
from rotation.ports import Clock
from rotation.rollout.converge import Rollout
from rotation.rollout.inbound import InboundRollout, PolicyListing
from rotation.rollout.state import Inventory

__all__ = ["KeptListing", "ListingCache"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptListing:
    """One certificate's kept APIM listing and when it was made (by the service's clock): the
    ``inventory`` a ``Rollout`` planned from, or the ``policies`` an ``InboundRollout`` did
    (exactly one is set; a certificate is handled by one path only)."""

    listed_at: datetime
    inventory: Inventory | None = None
    policies: PolicyListing | None = None


class ListingCache:
    """APIM listings kept per (vault, certificate) between the events of one batch.

    A rollout for an event lists every service's certificate entities, but backends only where
    *that* certificate is bound, so a listing is only ever handed to the next rollout of the
    same certificate. An inbound rollout's listing (every service's policy documents) is kept
    the same way, per certificate. It is kept only after a run that neither wrote to APIM (a
    target ``updated``, ``created``, ``retired`` or ``failed``), nor failed, nor re-planned
    after a compare-and-swap refusal; it expires ``max_age`` after it was listed (by
    ``clock``; a clock that went back expires it too); and only the ``max_certificates`` most
    recently used certificates are kept, so memory stays bounded however long the batch.

    Sharing is safe for the same reason reconcile's single listing is: every write is the
    gateway's compare-and-swap against what the plan saw, so a plan made from a listing that
    someone else has since made stale is refused, and the rollout re-lists and re-plans.
    Safe to share between threads (a Functions worker runs invocations concurrently): a
    listing is never changed once kept, and a run on another thread is someone else.
    """

    def __init__(self, clock: Clock, *, max_age: timedelta, max_certificates: int) -> None:
        if max_age < timedelta(0) or max_certificates < 1:
            raise ValueError("max_age must be >= 0 and max_certificates >= 1")
        self._clock = clock
        self._max_age = max_age
        self._max = max_certificates
        self._kept: OrderedDict[tuple[str, str], KeptListing] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def take(self, vault_url: str, certificate: str) -> KeptListing | None:
        """The kept listing of ``certificate`` if it is still young enough, else None (an
        expired one is dropped)."""
        key = _listing_key(vault_url, certificate)
        now = self._clock.now()
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                return None
            age = now - kept.listed_at
            if age < timedelta(0) or age >= self._max_age:
                del self._kept[key]
                return None
            self._kept.move_to_end(key)
            return kept

    def settle(self, rollout: Rollout | InboundRollout, *, listed_at: datetime) -> None:
        """After ``rollout`` ran: keep the listing it ended with, or drop the certificate's.

        ``listed_at`` is when that listing was made: the kept one's time when the rollout
        planned from it, else a time taken before the rollout listed.
        """
        key = _listing_key(rollout.vault_url, rollout.name)
        out = rollout.outcome
        kept: KeptListing | None = None
        if isinstance(rollout, InboundRollout):
            if rollout.listing is not None:
                kept = KeptListing(listed_at=listed_at, policies=rollout.listing)
        elif rollout.inventory is not None:
            kept = KeptListing(listed_at=listed_at, inventory=rollout.inventory)
        with self._lock:
            if out.error is not None or rollout.replanned or out.wrote or kept is None:
                self._kept.pop(key, None)
                return
            self._kept[key] = kept
            self._kept.move_to_end(key)
            while len(self._kept) > self._max:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        """Forget every kept listing."""
        with self._lock:
            self._kept.clear()


def _listing_key(vault_url: str, certificate: str) -> tuple[str, str]:
    return vault_key(vault_url) or vault_url.lower(), certificate.lower()
