"""The one translator of ``azure.core`` exceptions into certrotate's domain errors.

Every adapter that calls an Azure SDK (Key Vault, APIM through ARM, the audit table, the
dead-letter blobs, the blob-lease lock) raises its failures through ``translate`` /
``translating`` with its ``Service``: the mapping below is shared, and what differs per service
(what a 404 means, which error codes are permanent, what an operator should check) is data.

| SDK failure                                                  | domain error                 |
| ------------------------------------------------------------ | ---------------------------- |
| 401 / 403 / ``ClientAuthenticationError``                    | ``AuthorizationError``       |
| an error code the service lists in ``permanent_codes``       | ``DependencyError``          |
| 404, when the service's ``not_found`` is a certificate       | ``CertificateNotFoundError`` |
| 404 otherwise (a missing table, container or blob)           | ``DependencyError``          |
| 412                                                          | ``PreconditionFailedError``  |
| 408 / 429 / 5xx / ``ServiceRequestError`` / ``ServiceResponseError`` / timeouts / resets | ``TransientDependencyError`` |
| anything else                                                | ``DependencyError``          |

Messages read ``{service} {operation} {name!r} failed: HTTP {status} ({error code}): {hint}``
and carry the service, operation, resource name, status, a validated error code and the
service's hint only: never tokens, bodies, connection strings or secret values. The original
exception is chained as ``__cause__``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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

__all__ = [
    "APIM",
    "AUDIT_TABLE",
    "DEAD_LETTERS",
    "EVENT_GRID",
    "KEY_VAULT",
    "LOCKS",
    "Service",
    "response_lost",
    "translate",
    "translating",
]

_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """What one Azure service's failures mean, for ``translate``.

    ``name`` is the ``service`` of every error raised for it. ``missing_is_not_found`` makes a
    404 the port's ``CertificateNotFoundError`` (the named certificate, version or entity does
    not exist); otherwise a 404 is a ``DependencyError`` with ``hints[404]`` (a missing table,
    container or blob is the operator's business). ``permanent_codes`` maps a service error
    code (top-level or inner) to the reason it is permanent, whatever the status. ``hints``
    maps a status to what an operator should check, appended to the message.
    """

    name: str
    missing_is_not_found: bool = False
    permanent_codes: Mapping[str, str] = field(default_factory=dict)
    hints: Mapping[int, str] = field(default_factory=dict)


_STORAGE_ACCESS = "check the account key in the connection string or the identity's data role"

KEY_VAULT = Service(
    name="keyvault",
    missing_is_not_found=True,
    permanent_codes={"SecretDisabled": "the secret version is disabled"},
    hints={
        HTTPStatus.UNAUTHORIZED: "the credential was refused",
        HTTPStatus.FORBIDDEN: "the identity needs get/list on the vault's certificates and secrets",
    },
)
APIM = Service(
    name="apim",
    missing_is_not_found=True,
    hints={
        HTTPStatus.UNAUTHORIZED: "the credential was refused",
        HTTPStatus.FORBIDDEN: "the identity needs write access to the APIM service",
    },
)


def _storage(name: str, missing: str) -> Service:
    """A storage service: ``missing`` says what a 404 means; 401/403 are the access hint."""
    hints: dict[int, str] = {
        HTTPStatus.NOT_FOUND: missing,
        HTTPStatus.UNAUTHORIZED: _STORAGE_ACCESS,
        HTTPStatus.FORBIDDEN: _STORAGE_ACCESS,
    }
    return Service(name=name, hints=hints)


AUDIT_TABLE = _storage("audit-table", "the table does not exist")
DEAD_LETTERS = _storage("blob storage", "the dead-letter container or blob does not exist")
LOCKS = _storage("blob-lease", "the lock container or blob does not exist")

EVENT_GRID = Service(
    name="eventgrid",
    hints={
        HTTPStatus.UNAUTHORIZED: "the credential or access key was refused",
        HTTPStatus.FORBIDDEN: "the identity needs the EventGrid Data Sender role on the topic",
    },
)

_BY_STATUS: dict[int, type[DependencyError]] = {
    HTTPStatus.UNAUTHORIZED: AuthorizationError,
    HTTPStatus.FORBIDDEN: AuthorizationError,
    HTTPStatus.PRECONDITION_FAILED: PreconditionFailedError,
    HTTPStatus.REQUEST_TIMEOUT: TransientDependencyError,
    HTTPStatus.TOO_MANY_REQUESTS: TransientDependencyError,
}


def _safe(code: object) -> str | None:
    return code if isinstance(code, str) and _SAFE_CODE.match(code) else None


def _codes(exc: HttpResponseError) -> tuple[str | None, set[str]]:
    """The error code to show (ARM/Key Vault ``error.code`` or Storage's ``error_code``) and
    every code the response carried, inner ones included."""
    error = getattr(exc, "error", None)
    shown = _safe(getattr(error, "code", None)) or _safe(getattr(exc, "error_code", None))
    inner = getattr(error, "innererror", None) or {}
    every = {shown, _safe(inner.get("code")) if isinstance(inner, dict) else None}
    return shown, {code for code in every if code}


def _from_status(
    exc: HttpResponseError, status: int, where: str, service: Service, operation: str
) -> RotationError:
    shown, codes = _codes(exc)
    permanent = sorted(codes & service.permanent_codes.keys())
    if permanent:
        return DependencyError(
            f"{where} failed: {service.permanent_codes[permanent[0]]}",
            service=service.name,
            operation=operation,
            status_code=status,
        )
    if status == HTTPStatus.NOT_FOUND and service.missing_is_not_found:
        return CertificateNotFoundError(f"{where} not found (HTTP 404)")
    hint = service.hints.get(status)
    message = (
        f"{where} failed: HTTP {status}"
        + (f" ({shown})" if shown else "")
        + (f": {hint}" if hint else "")
    )
    default = (
        TransientDependencyError if status >= HTTPStatus.INTERNAL_SERVER_ERROR else DependencyError
    )
    error_type = _BY_STATUS.get(status, default)
    return error_type(message, service=service.name, operation=operation, status_code=status)


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


def translate(exc: BaseException, *, service: Service, operation: str, name: str) -> RotationError:
    """The domain error for an SDK/transport exception raised while doing ``operation`` on ``name``."""
    where = f"{service.name} {operation} {name!r}"
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return _from_status(exc, int(exc.status_code), where, service, operation)
    kind = type(exc).__name__
    if isinstance(exc, ClientAuthenticationError):
        return AuthorizationError(
            f"{where} failed: could not authenticate ({kind}){_credential_hint(exc)}",
            service=service.name,
            operation=operation,
        )
    if isinstance(
        exc, ServiceRequestError | ServiceResponseError | TimeoutError | ConnectionError
    ):
        return TransientDependencyError(
            f"{where} failed: connection or timeout ({kind})",
            service=service.name,
            operation=operation,
        )
    return DependencyError(f"{where} failed ({kind})", service=service.name, operation=operation)


def response_lost(error: BaseException) -> bool:
    """Whether ``error`` (translated) came from a request whose response never arrived: the
    request may or may not have taken effect, so only a conditional write may be sent again."""
    return isinstance(error.__cause__, ServiceResponseError)


@contextmanager
def translating(service: Service, operation: str, name: str) -> Iterator[None]:
    """Run SDK calls, re-raising any Azure or transport failure as a domain error.

    Raises:
        RotationError: the translated error, ``from`` the original.
    """
    try:
        yield
    except (AzureError, TimeoutError, ConnectionError) as exc:
        raise translate(exc, service=service, operation=operation, name=name) from exc
