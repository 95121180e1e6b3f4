"""certrotate: validated, audited rotation of APIM client certificates from Key Vault events."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
