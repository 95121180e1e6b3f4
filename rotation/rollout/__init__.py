"""The rotation path of one certificate: resolve, plan, validate, apply, verify.

- ``state``: ``RolloutContext`` (ports and knobs), ``Outcome``, ``Inventory`` (a leaf module);
- ``resolve``, ``validate``, ``apply``, ``verify``: the steps;
- ``converge``: ``Rollout``, which runs the steps and re-plans after a 412;
- ``record``: the audit records of an outcome;
- ``listings``: ``ListingCache``, APIM listings kept between the events of a replay.

See ``docs/architecture.md`` ("The rotation path").
"""

from __future__ import annotations

from rotation.rollout.converge import Rollout
from rotation.rollout.listings import ListingCache
from rotation.rollout.state import Inventory, Outcome, RolloutContext

__all__ = ["Inventory", "ListingCache", "Outcome", "Rollout", "RolloutContext"]
