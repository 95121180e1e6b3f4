"""Translation of azure.core exceptions into domain errors (rotation.adapters.errors)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from rotation.adapters.errors import translate, translating
from rotation.domain.errors import (
    AuthorizationError,
    CertificateNotFoundError,
    DependencyError,
    PreconditionFailedError,
    TransientDependencyError,
)


def _http(status, cls=HttpResponseError):
    error = cls(message="Operation returned an invalid status")
    error.status_code = status
    return error


class TestTranslate:
    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (401, AuthorizationError),
            (403, AuthorizationError),
            (404, CertificateNotFoundError),
            (412, PreconditionFailedError),
            (408, TransientDependencyError),
            (429, TransientDependencyError),
            (500, TransientDependencyError),
            (502, TransientDependencyError),
            (503, TransientDependencyError),
            (400, DependencyError),
            (409, DependencyError),
        ],
    )
    def test_status_codes_map_to_domain_errors(self, status, expected):
        """Each HTTP status lands on its documented domain error."""
        error = translate(_http(status), service="apim", operation="get_backend", name="b")

        assert type(error) is expected

    def test_message_names_service_operation_name_and_status_only(self):
        """Messages carry service, operation, name and status; never the SDK body."""
        original = _http(503)
        original.message = "Bearer secret-token in a body"

        error = translate(original, service="keyvault", operation="get_secret", name="c/v1")

        assert str(error) == "keyvault get_secret 'c/v1' failed: HTTP 503"
        assert "secret-token" not in str(error)
        assert error.service == "keyvault"
        assert error.operation == "get_secret"

    @pytest.mark.parametrize(
        "cls", [ServiceRequestError, ServiceResponseError, TimeoutError, ConnectionResetError]
    )
    def test_transport_failures_are_transient(self, cls):
        """Connection errors, resets and timeouts are transient."""
        error = translate(cls("boom"), service="apim", operation="list_backends", name="svc")

        assert type(error) is TransientDependencyError
        assert error.retryable is True

    def test_credential_failure_is_authorization(self):
        """A credential that cannot get a token (no status) is AuthorizationError."""
        error = translate(
            ClientAuthenticationError("no identity"),
            service="keyvault",
            operation="get_secret",
            name="c",
        )

        assert type(error) is AuthorizationError

    def test_sdk_404_subclass(self):
        """ResourceNotFoundError with 404 is CertificateNotFoundError."""
        error = translate(
            _http(404, ResourceNotFoundError), service="apim", operation="get", name="x"
        )

        assert isinstance(error, CertificateNotFoundError)

    def test_translating_chains_the_original(self):
        """The context manager raises the domain error from the original."""
        original = _http(429)

        with pytest.raises(TransientDependencyError) as caught, translating("apim", "op", "n"):
            raise original

        assert caught.value.__cause__ is original

    def test_translating_leaves_other_exceptions_alone(self):
        """Programmer errors are not disguised as dependency failures."""
        with pytest.raises(KeyError), translating("apim", "op", "n"):
            raise KeyError("x")
