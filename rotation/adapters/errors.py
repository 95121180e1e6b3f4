"""Translate ``azure.core`` exceptions into certrotate's domain errors (the adapters' only exit).

| SDK failure                                                  | domain error                 |
| ------------------------------------------------------------ | ---------------------------- |
| 401 / 403 / credential failures                              | ``AuthorizationError``       |
| 404                                                          | ``CertificateNotFoundError`` |
| 412                                                          | ``PreconditionFailedError``  |
| 408 / 429 / 5xx / ``ServiceRequestError`` / ``ServiceResponseError`` / timeouts / resets | ``TransientDependencyError`` |
| anything else                                                | ``DependencyError``          |

Messages carry the service, operation, resource name, status and error code only: never
tokens, bodies or secret values. The original exception is chained as ``__cause__``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from rotation.domain.errors import (
    AuthorizationError,
    CertificateNotFoundError,
    DependencyError,
    PreconditionFailedError,
    RotationError,
    TransientDependencyError,
)

__all__ = ["translate", "translating"]

_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _error_code(exc: HttpResponseError) -> str | None:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and _SAFE_CODE.match(code) else None


def _inner_codes(exc: HttpResponseError) -> set[str]:
    error = getattr(exc, "error", None)
    inner = getattr(error, "innererror", None) or {}
    code = inner.get("code") if isinstance(inner, dict) else None
    return {code} if isinstance(code, str) else set()


_BY_STATUS: dict[int, type[DependencyError]] = {
    HTTPStatus.UNAUTHORIZED: AuthorizationError,
    HTTPStatus.FORBIDDEN: AuthorizationError,
    HTTPStatus.PRECONDITION_FAILED: PreconditionFailedError,
    HTTPStatus.REQUEST_TIMEOUT: TransientDependencyError,
    HTTPStatus.TOO_MANY_REQUESTS: TransientDependencyError,
}


def _from_status(
    exc: HttpResponseError, status: int, where: str, service: str, operation: str
) -> RotationError:
    if status == HTTPStatus.NOT_FOUND:
        return CertificateNotFoundError(f"{where} not found (HTTP 404)")
    if status == HTTPStatus.FORBIDDEN and "SecretDisabled" in _inner_codes(exc):
        return DependencyError(
            f"{where} failed: the secret version is disabled",
            service=service,
            operation=operation,
            status_code=status,
        )
    code = _error_code(exc)
    message = f"{where} failed: HTTP {status}" + (f" ({code})" if code else "")
    default = (
        TransientDependencyError if status >= HTTPStatus.INTERNAL_SERVER_ERROR else DependencyError
    )
    error_type = _BY_STATUS.get(status, default)
    return error_type(message, service=service, operation=operation, status_code=status)


_TRIED = re.compile(r"^\s+(\w+Credential):", re.MULTILINE)


def _credential_hint(exc: ClientAuthenticationError) -> str:
    """What was tried and what to do, when no credential could get a token (the chained
    ``DefaultAzureCredential`` message lists the credentials it tried; only their names are
    kept: never its text, which may quote configuration)."""
    if exc.response is not None:  # a token was sent and refused: a 401/403 with a body
        return ""
    tried = _TRIED.findall(str(exc.message or ""))
    names = ", ".join(dict.fromkeys(tried)) if tried else "the configured credential"
    return (
        f": no credential could get a token (tried {names}); run `az login`, or set "
        "AZURE_CLIENT_ID (user-assigned managed identity) or AZURE_TENANT_ID, AZURE_CLIENT_ID "
        "and AZURE_CLIENT_SECRET"
    )


def translate(exc: BaseException, *, service: str, operation: str, name: str) -> RotationError:
    """The domain error for an SDK/transport exception raised while doing ``operation`` on ``name``."""
    where = f"{service} {operation} {name!r}"
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return _from_status(exc, int(exc.status_code), where, service, operation)
    kind = type(exc).__name__
    if isinstance(exc, ClientAuthenticationError):
        return AuthorizationError(
            f"{where} failed: could not authenticate ({kind}){_credential_hint(exc)}",
            service=service,
            operation=operation,
        )
    if isinstance(
        exc, ServiceRequestError | ServiceResponseError | TimeoutError | ConnectionError
    ):
        return TransientDependencyError(
            f"{where} failed: connection or timeout ({kind})", service=service, operation=operation
        )
    return DependencyError(f"{where} failed ({kind})", service=service, operation=operation)


@contextmanager
def translating(service: str, operation: str, name: str) -> Iterator[None]:
    """Run SDK calls, re-raising any Azure or transport failure as a domain error.

    Raises:
        RotationError: the translated error, ``from`` the original.
    """
    try:
        yield
    except (AzureError, TimeoutError, ConnectionError) as exc:
        raise translate(exc, service=service, operation=operation, name=name) from exc
