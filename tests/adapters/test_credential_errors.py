"""A credential that cannot get a token is one line naming what was tried and what to do."""

from __future__ import annotations

import typing

from azure.core.exceptions import ClientAuthenticationError

from rotation.adapters.errors import APIM, translate
from rotation.domain.errors import AuthorizationError

REPORT = """DefaultAzureCredential failed to retrieve a token from the included credentials.
Attempted credentials:
\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment variables are not fully configured.
Visit https://aka.ms/azsdk/python/identity/environmentcredential/troubleshoot to troubleshoot this issue.
\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.
\tAzureCliCredential: Azure CLI not found on path
To mitigate this issue, please refer to the troubleshooting guidelines here."""


def test_no_credential_names_what_was_tried_and_what_to_do():
    error = translate(
        ClientAuthenticationError(message=REPORT), service=APIM, operation="list", name="svc"
    )

    assert isinstance(error, AuthorizationError)
    text = str(error)
    assert "\n" not in text
    assert "tried EnvironmentCredential, ManagedIdentityCredential, AzureCliCredential" in text
    assert "run `az login`, or set AZURE_CLIENT_ID" in text
    assert "not found on path" not in text


def test_a_refused_token_has_no_hint():
    """A token that was sent and refused (a response came back) is not a missing credential."""

    class Response:
        status_code = 401
        reason = "Unauthorized"
        headers: typing.ClassVar[dict[str, str]] = {}

        def text(self) -> str:
            return ""

    exc = ClientAuthenticationError(message="refused", response=Response())  # type: ignore[arg-type]

    error = translate(exc, service=APIM, operation="list", name="svc")

    assert isinstance(error, AuthorizationError)
    assert "HTTP 401" in str(error)
    assert "az login" not in str(error)
