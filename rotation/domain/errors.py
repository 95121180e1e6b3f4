"""The error types of certrotate.

This module exists so that every layer can import the errors without import loops.
The hierarchy (retry semantics live in the type, as ``retryable``)::

    RotationError(Exception)                          retryable = False
    ├── InvalidEventError(RotationError, ValueError)   malformed/forged event; audit and drop
    ├── ConfigError(RotationError)                     settings invalid; lists every problem
    ├── BundleFormatError(RotationError, ValueError)   a certificate bundle cannot be parsed
    ├── CertificateNotFoundError(RotationError, LookupError)
    ├── DependencyError(RotationError)                 Key Vault / APIM failure (.service, .status_code, .operation)
    │   ├── TransientDependencyError                   429/5xx/timeout/reset/412 after retries; retryable
    │   ├── PreconditionFailedError                    412: the ETag moved; re-read and re-plan; retryable
    │   └── AuthorizationError                         401/403: an operator must fix access; retryable
    └── BackendUpdateError(RotationError)              some targets failed; retryable if any failure was

Event Grid redelivers when an invocation raises, so ``retryable`` errors propagate out of the
Functions trigger and non-retryable ones are audited and swallowed (``docs/architecture.md``, "Errors and Event Grid").
Messages never carry secret material: adapters build them from status codes and names only.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthorizationError",
    "BackendUpdateError",
    "BundleFormatError",
    "CertificateNotFoundError",
    "ConfigError",
    "DependencyError",
    "InvalidEventError",
    "PreconditionFailedError",
    "RotationError",
    "TransientDependencyError",
]


class RotationError(Exception):
    """Base of every certrotate error. ``retryable`` says whether Event Grid should redeliver."""

    retryable: ClassVar[bool] = False


class InvalidEventError(RotationError, ValueError):
    """Raised by the intake when a payload is malformed, forged or too large.

    ``path`` names the offending field (e.g. ``[0].data.Id``); ``event_id`` is the malformed
    event's own ``id`` when it has a readable one (for its audit record). Not retryable:
    redelivering the same bytes cannot help.
    """

    def __init__(self, message: str, *, path: str = "", event_id: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message
        self.event_id = event_id


class ConfigError(RotationError):
    """Raised by ``Settings.from_env`` with every missing or invalid setting at once.

    Retryable: an operator can fix the app settings within Event Grid's retry window.
    """

    retryable: ClassVar[bool] = True

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"invalid certrotate settings ({len(self.problems)} problem(s)):\n{listing}"
        )


class BundleFormatError(RotationError, ValueError):
    """Raised when a certificate bundle (PKCS#12/PEM/DER) cannot be parsed."""


class CertificateNotFoundError(RotationError, LookupError):
    """Raised by a ``CertificateSource`` when the certificate or version does not exist."""


class DependencyError(RotationError):
    """A call to Key Vault or APIM failed in a way retrying will not fix."""

    def __init__(
        self,
        message: str,
        *,
        service: str,
        operation: str,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.operation = operation
        self.status_code = status_code


class TransientDependencyError(DependencyError):
    """429, 5xx, timeouts, connection resets: Event Grid should redeliver."""

    retryable: ClassVar[bool] = True


class PreconditionFailedError(TransientDependencyError):
    """412: someone else wrote the entity since we read its ETag. Re-read and re-plan."""


class AuthorizationError(DependencyError):
    """401/403 from Azure: configuration, which an operator can fix; so retried."""

    retryable: ClassVar[bool] = True


class BackendUpdateError(RotationError):
    """Some APIM targets could not be moved; ``results`` holds one entry per target."""

    def __init__(self, message: str, *, results: tuple[object, ...], retryable: bool) -> None:
        super().__init__(message)
        self.results = results
        # Instance-level on purpose: whether to retry depends on which failures occurred.
        self.retryable = retryable  # type: ignore[misc]
