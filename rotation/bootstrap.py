"""Composition root: the one place SDK clients, credentials and the service are built.

Entrypoints call ``get_handler()``; tests replace it with ``monkeypatch``. Nothing here runs at
import time, so a wrong setting can never stop the Functions host from indexing the app.
"""

from __future__ import annotations

import functools

from rotation.ports import EventHandler

__all__ = ["get_handler"]


@functools.cache
def get_handler() -> EventHandler:
    """The rotation service wired to real adapters from the settings (built once, lazily).

    Raises:
        ConfigError: the settings are invalid (every problem listed).
    """
    raise NotImplementedError("the rotation service is wired in by the rotation-engine work")
