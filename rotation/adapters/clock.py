"""The production ``Clock``: the one place certrotate reads the system time."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["SystemClock"]


class SystemClock:
    """``rotation.ports.Clock`` over the system time, tz-aware UTC."""

    def now(self) -> datetime:
        """Now, tz-aware UTC."""
        return datetime.now(UTC)
