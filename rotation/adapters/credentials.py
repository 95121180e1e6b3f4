"""Credentials for the Azure SDK clients, built once in the composition root.

In Azure: ``DefaultAzureCredential`` (honouring ``AZURE_CLIENT_ID`` for a user-assigned managed
identity). Against the local devstack only: ``StaticTokenCredential`` with the stack's token.
Neither is constructed at import time, and the token never appears in a ``repr``.
"""

from __future__ import annotations

import time
from typing import Any, Self

from azure.core.credentials import AccessToken

__all__ = ["StaticTokenCredential", "build_credential"]

_LIFETIME_SECONDS = 3600


class StaticTokenCredential:
    """A ``TokenCredential`` that always returns the same bearer token (devstack only)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("StaticTokenCredential needs a non-empty token")
        self._token = token

    def __repr__(self) -> str:
        return "StaticTokenCredential(token=<redacted>)"

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # noqa: ARG002 - SDK protocol
        """The static token, valid for an hour from now (so the SDKs cache it)."""
        return AccessToken(self._token, int(time.time()) + _LIFETIME_SECONDS)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def build_credential(*, devstack_token: str | None = None, client_id: str | None = None) -> Any:
    """The credential for the settings: static when ``devstack_token`` is set, else default.

    ``client_id`` (``AZURE_CLIENT_ID``) selects a user-assigned managed identity.
    ``azure.identity`` is imported here, not at module import, to keep cold starts short.
    """
    if devstack_token:
        return StaticTokenCredential(devstack_token)
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - lazy: cold start

    return DefaultAzureCredential(managed_identity_client_id=client_id)
