"""``FrozenClock``: a ``Clock`` that only moves when told."""

from __future__ import annotations

from datetime import datetime, timedelta


class FrozenClock:
    """A clock that returns ``at`` until ``advance`` moves it."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs a tz-aware datetime")
        self.at = at

    def now(self) -> datetime:
        """The frozen instant."""
        return self.at

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or ``timedelta(**kwargs)``; returns the new instant."""
        self.at += delta if delta is not None else timedelta(**kwargs)
        return self.at
