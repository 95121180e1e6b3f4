"""``local.settings.json``: the Functions emulator's settings file, read by the CLI's
``--settings FILE`` so the emulator and the CLI share one file (docs/settings.md).

Only its ``Values`` object is used (strings, as app settings are); ``ConnectionStrings`` and
``Host`` are the host's business. An encrypted file (``"IsEncrypted": true``) cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path

from rotation.domain.errors import ConfigError

__all__ = ["read_local_settings"]


def read_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of the local.settings.json at ``path``.

    Raises:
        ConfigError: the file cannot be read, is not JSON, is encrypted, has no ``Values``
            object, or a value is not a string (the message names the file and the key; never a
            value, which may be a secret).
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigError([f"--settings {path}: cannot read it ({exc.strerror})"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ConfigError([f"--settings {path}: not a JSON document{where}"]) from None
    if not isinstance(document, dict):
        raise ConfigError([f"--settings {path}: expected a JSON object with a Values object"])
    if document.get("IsEncrypted") is True:
        raise ConfigError(
            [f"--settings {path}: IsEncrypted is true; decrypt it first (func settings decrypt)"]
        )
    values = document.get("Values")
    if not isinstance(values, dict):
        raise ConfigError([f"--settings {path}: no Values object"])
    problems = [
        f"--settings {path}: Values.{key} must be a string"
        for key, value in values.items()
        if not isinstance(value, str)
    ]
    if problems:
        raise ConfigError(problems)
    return {str(k): v for k, v in values.items()}
