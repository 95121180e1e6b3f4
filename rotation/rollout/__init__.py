"""The rotation path of one certificate: resolve, plan, validate, apply, verify.

``Rollout`` converges one certificate's APIM bindings; ``ListingCache`` keeps APIM listings
between the events of a replay. See ``docs/architecture.md`` ("The rotation path").
"""

from __future__ import annotations

from rotation.rollout.converge import Inventory, Outcome, Rollout, Settings
from rotation.rollout.listings import ListingCache

__all__ = ["Inventory", "ListingCache", "Outcome", "Rollout", "Settings"]
