"""Credentials: the static devstack token credential and the choice in build_credential."""

from __future__ import annotations

import time

import pytest
from azure.identity import DefaultAzureCredential

from rotation.adapters.credentials import StaticTokenCredential, build_credential


class TestStaticTokenCredential:
    def test_returns_the_token_valid_well_beyond_the_refresh_window(self):
        """get_token gives the token with expiry > 300 s ahead (so the SDKs cache it)."""
        token = StaticTokenCredential("tok").get_token("https://vault.azure.net/.default")

        assert token.token == "tok"
        assert token.expires_on > time.time() + 300

    def test_repr_hides_the_token(self):
        """The token never appears in repr or str."""
        credential = StaticTokenCredential("super-secret")

        assert "super-secret" not in repr(credential)
        assert "super-secret" not in str(credential)

    def test_empty_token_is_refused(self):
        """An empty token is a clear error."""
        with pytest.raises(ValueError, match="non-empty token"):
            StaticTokenCredential("")


class TestBuildCredential:
    def test_devstack_token_gives_the_static_credential(self):
        """A devstack token selects the static credential."""
        credential = build_credential(devstack_token="t")

        assert isinstance(credential, StaticTokenCredential)

    def test_otherwise_default_azure_credential_with_client_id(self):
        """Without a devstack token: DefaultAzureCredential for the user-assigned identity."""
        credential = build_credential(client_id="11111111-2222-3333-4444-555555555555")

        assert isinstance(credential, DefaultAzureCredential)
        credential.close()
