"""Fakes with observable state for testing code built on the rotation ports (like ``structlog.testing``).

- ``FrozenClock(at)``: a ``Clock`` that only moves when told (``advance``).
- ``FakeCertificateSource``: versions and secrets added with ``add_version``; ``calls`` per method.
- ``FakeApimGateway``: entities and backends with ETags that change on every write; lists carry
  no ETags (as ARM's), the compare-and-swap writes read then write like the adapter; ``updates``
  lists the writes, ``calls`` counts every method and read; inject a 412 (a concurrent writer) or
  any error on the Nth write, or a failing ``list_certificates`` through ``fail``; entity
  thumbprints are computed from the source's versions, as APIM does.
- ``MemoryAuditSink``: ``records`` in write order.
- ``MemoryLock``: a threading ``RotationLock`` per certificate; ``held``, ``acquisitions``,
  ``contended`` (set when a ``hold`` finds the lock taken) and ``fail`` (raise on ``hold``).
- ``FakeValidator``: parses the bundle for its leaf and returns the findings you configured.
- ``FakeInboundPolicies``: APIM policy documents per service (``add_service`` with the default
  global policy, ``add_policy``, ``delete_policy``, ``policy_id``) with ETags that change on every
  write and the adapter's compare-and-swap; ``writes`` logs the writes, ``calls`` counts,
  ``race_once`` makes the next write lose a race (412), ``fail``; listing an unknown service is a
  ``ConfigError``, as with the adapter.

Nothing here imports ``devstack``: callers pass bytes and ``cryptography`` objects.
"""

from __future__ import annotations

from rotation.testing._apim import FakeApimGateway
from rotation.testing._certs import summarize_certificate
from rotation.testing._clock import FrozenClock
from rotation.testing._keyvault import FakeCertificateSource
from rotation.testing._memory import MemoryAuditSink, MemoryLock
from rotation.testing._policies import FakeInboundPolicies, PolicyWrite, policy_id
from rotation.testing._validator import FakeValidator

__all__ = [
    "FakeApimGateway",
    "FakeCertificateSource",
    "FakeInboundPolicies",
    "FakeValidator",
    "FrozenClock",
    "MemoryAuditSink",
    "MemoryLock",
    "PolicyWrite",
    "policy_id",
    "summarize_certificate",
]
