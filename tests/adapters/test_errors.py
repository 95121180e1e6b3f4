"""The one translation of azure.core exceptions into domain errors (rotation.adapters.errors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from rotation.adapters.errors import (
    APIM,
    AUDIT_TABLE,
    DEAD_LETTERS,
    KEY_VAULT,
    LOCKS,
    Service,
    translate,
    translating,
)
from rotation.domain.errors import (
    AuthorizationError,
    CertificateNotFoundError,
    DependencyError,
    PreconditionFailedError,
    TransientDependencyError,
)

SERVICES = [KEY_VAULT, APIM, AUDIT_TABLE, DEAD_LETTERS, LOCKS]
ROTATION = Path(__file__).resolve().parents[2] / "rotation"


def _http(status, cls=HttpResponseError):
    error = cls(message="Operation returned an invalid status")
    error.status_code = status
    return error


class _OData:
    """An ARM/Key Vault ``error`` body as azure-core parses it."""

    def __init__(self, code: str, inner: str | None = None) -> None:
        self.code = code
        self.innererror = {"code": inner} if inner else {}


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
        error = translate(_http(status), service=APIM, operation="get_backend", name="b")

        assert type(error) is expected

    @pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
    @pytest.mark.parametrize(
        ("status", "expected", "retryable"),
        [
            (401, AuthorizationError, True),
            (403, AuthorizationError, True),
            (408, TransientDependencyError, True),
            (412, PreconditionFailedError, True),
            (429, TransientDependencyError, True),
            (500, TransientDependencyError, True),
            (504, TransientDependencyError, True),
            (400, DependencyError, False),
            (409, DependencyError, False),
        ],
    )
    def test_every_service_shares_the_status_table(
        self, service: Service, status, expected, retryable
    ):
        """Every adapter's failures retry (or not) alike: the mapping is one table."""
        error = translate(_http(status), service=service, operation="op", name="n")

        assert type(error) is expected
        assert error.retryable is retryable
        assert isinstance(error, DependencyError)
        assert (error.service, error.operation, error.status_code) == (service.name, "op", status)

    @pytest.mark.parametrize("service", [KEY_VAULT, APIM], ids=lambda s: s.name)
    def test_a_404_from_key_vault_or_apim_is_the_ports_not_found(self, service: Service):
        """The named certificate, version, entity or backend does not exist: not retryable."""
        error = translate(_http(404), service=service, operation="get", name="partner")

        assert type(error) is CertificateNotFoundError
        assert error.retryable is False
        assert str(error) == f"{service.name} get 'partner' not found (HTTP 404)"

    @pytest.mark.parametrize(
        ("service", "hint"),
        [
            (AUDIT_TABLE, "the table does not exist"),
            (DEAD_LETTERS, "the dead-letter container or blob does not exist"),
            (LOCKS, "the lock container or blob does not exist"),
        ],
        ids=lambda v: getattr(v, "name", ""),
    )
    def test_a_404_from_storage_is_a_permanent_dependency_error_with_its_hint(
        self, service: Service, hint
    ):
        """A missing table, container or blob is no certificate: DependencyError, with the
        service's hint, naming the resource."""
        error = translate(
            _http(404, ResourceNotFoundError), service=service, operation="op", name="dead/x.json"
        )

        assert type(error) is DependencyError
        assert error.retryable is False
        assert error.status_code == 404
        assert str(error) == f"{service.name} op 'dead/x.json' failed: HTTP 404: {hint}"

    @pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
    def test_403_names_what_the_operator_should_check(self, service: Service):
        """Each service's 403 carries its own access hint after the status."""
        error = translate(_http(403), service=service, operation="op", name="n")

        assert str(error) == f"{service.name} op 'n' failed: HTTP 403: {service.hints[403]}"

    def test_secret_disabled_is_permanent_for_key_vault_only(self):
        """Key Vault's 403 with inner code SecretDisabled is not an access problem; the same
        code from another service stays a 403."""
        original = _http(403)
        original.error = _OData("Forbidden", inner="SecretDisabled")

        from_vault = translate(original, service=KEY_VAULT, operation="get_secret", name="c/v")
        from_apim = translate(original, service=APIM, operation="get", name="c")

        assert type(from_vault) is DependencyError
        assert from_vault.retryable is False
        assert (
            str(from_vault) == "keyvault get_secret 'c/v' failed: the secret version is disabled"
        )
        assert type(from_apim) is AuthorizationError

    def test_storage_error_code_is_shown_when_it_is_a_plain_code(self):
        """Storage puts its code on ``error_code``; ARM and Key Vault on ``error.code``; a code
        that is not a plain identifier (it could be anything) is left out."""
        storage = _http(409)
        storage.error_code = "LeaseAlreadyPresent"
        arm = _http(409)
        arm.error = _OData("Conflict")
        odd = _http(409)
        odd.error_code = "AccountKey=c2VjcmV0 leaked"

        assert str(translate(storage, service=LOCKS, operation="op", name="n")) == (
            "blob-lease op 'n' failed: HTTP 409 (LeaseAlreadyPresent)"
        )
        assert str(translate(arm, service=APIM, operation="op", name="n")) == (
            "apim op 'n' failed: HTTP 409 (Conflict)"
        )
        assert "c2VjcmV0" not in str(translate(odd, service=AUDIT_TABLE, operation="op", name="n"))

    def test_message_names_service_operation_name_and_status_only(self):
        """Messages carry service, operation, name and status; never the SDK body."""
        original = _http(503)
        original.message = "Bearer secret-token in a body"

        error = translate(original, service=KEY_VAULT, operation="get_secret", name="c/v1")

        assert str(error) == "keyvault get_secret 'c/v1' failed: HTTP 503"
        assert "secret-token" not in str(error)
        assert isinstance(error, DependencyError)
        assert error.service == "keyvault"
        assert error.operation == "get_secret"

    @pytest.mark.parametrize(
        "cls", [ServiceRequestError, ServiceResponseError, TimeoutError, ConnectionResetError]
    )
    def test_transport_failures_are_transient(self, cls):
        """Connection errors, resets and timeouts are transient."""
        error = translate(cls("boom"), service=APIM, operation="list_backends", name="svc")

        assert type(error) is TransientDependencyError
        assert error.retryable is True

    def test_credential_failure_is_authorization(self):
        """A credential that cannot get a token (no status) is AuthorizationError."""
        error = translate(
            ClientAuthenticationError("no identity"),
            service=KEY_VAULT,
            operation="get_secret",
            name="c",
        )

        assert type(error) is AuthorizationError

    def test_sdk_404_subclass(self):
        """ResourceNotFoundError with 404 is CertificateNotFoundError."""
        error = translate(
            _http(404, ResourceNotFoundError), service=APIM, operation="get", name="x"
        )

        assert isinstance(error, CertificateNotFoundError)

    def test_any_other_sdk_failure_is_a_permanent_dependency_error(self):
        """An Azure error with no status and no transport cause is not retried."""
        error = translate(
            DecodeError("unexpected body"), service=AUDIT_TABLE, operation="query", name="t"
        )

        assert type(error) is DependencyError
        assert error.retryable is False
        assert str(error) == "audit-table query 't' failed (DecodeError)"

    def test_translating_chains_the_original(self):
        """The context manager raises the domain error from the original."""
        original = _http(429)

        with pytest.raises(TransientDependencyError) as caught, translating(APIM, "op", "n"):
            raise original

        assert caught.value.__cause__ is original

    @pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
    def test_no_service_echoes_the_response_body(self, service: Service):
        """Whatever the service, the SDK message (which may quote a body or a header) stays out."""
        for status in (401, 404, 429, 503):
            original = _http(status)
            original.message = "Authorization: Bearer secret-token; AccountKey=c2VjcmV0"

            text = str(translate(original, service=service, operation="op", name="n"))

            assert "secret-token" not in text
            assert "c2VjcmV0" not in text

    def test_translating_leaves_other_exceptions_alone(self):
        """Programmer errors are not disguised as dependency failures."""
        with pytest.raises(KeyError), translating(APIM, "op", "n"):
            raise KeyError("x")


class TestOneTranslator:
    def test_no_other_module_maps_sdk_failures_itself(self):
        """The status and transport mapping lives in adapters/errors.py alone: no other module
        names the SDK's authentication or transport errors."""
        mapped = {"ClientAuthenticationError", "ServiceRequestError", "ServiceResponseError"}

        offenders = sorted(
            (str(path.relative_to(ROTATION)), name)
            for path in ROTATION.rglob("*.py")
            if path != ROTATION / "adapters" / "errors.py"
            for name in mapped
            if name in path.read_text(encoding="utf-8")
        )

        assert offenders == []
