"""App settings: ``Settings.from_env`` (one error listing every problem) and the value parsers.

The public names live in ``rotation.config.settings``; the parsers in ``rotation.config.values``.
"""

from __future__ import annotations

from rotation.config.settings import (
    Settings,
    log_level_from_env,
    normalize_vault_url,
    read_environment,
    vault_urls_from_env,
)

__all__ = [
    "Settings",
    "log_level_from_env",
    "normalize_vault_url",
    "read_environment",
    "vault_urls_from_env",
]
