"""What the APIM adapters share over ``azure-mgmt-apimanagement``: one client per subscription,
ETags through the SDK's ``cls`` hook, and the read half of a compare-and-swap.

``ArmApimClients`` is the base of ``ArmApimGateway`` (certificates, backends) and
``ArmInboundPolicies`` (policy documents): both take the same settings and keep nothing but them
and the client cache. Failures go through ``rotation.adapters.errors`` (``translating``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from azure.mgmt.apimanagement import ApiManagementClient

from rotation.adapters.errors import APIM, translating
from rotation.domain.clouds import cloud_for_arm_endpoint
from rotation.domain.errors import (
    CertificateNotFoundError,
    ConfigError,
    DependencyError,
    PreconditionFailedError,
)

__all__ = ["ArmApimClients", "etagged", "listing", "moved", "read_for_swap"]

_SERVICE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.ApiManagement/service/(?P<name>[^/]+)$",
    re.IGNORECASE,
)


class ArmApimClients:
    """``ApiManagementClient``s by subscription, created on first use, with shared settings."""

    def __init__(
        self,
        credential: Any,
        *,
        base_url: str = "https://management.azure.com",
        connection_verify: str | bool = True,
        retry_total: int = 3,
        retry_backoff_factor: float = 0.8,
        read_timeout: float = 60.0,
        credential_scope: str | None = None,
    ) -> None:
        """``credential_scope`` is the ARM token's scope; by default that of ``base_url``'s
        cloud (``rotation.domain.clouds``: public, US Gov, China, or the endpoint's own origin).
        """
        self._credential = credential
        self._base_url = base_url.rstrip("/")
        scope = credential_scope or cloud_for_arm_endpoint(base_url).arm_scope
        self._options: dict[str, Any] = {
            "credential_scopes": [scope],
            "connection_verify": connection_verify,
            "retry_total": retry_total,
            "retry_backoff_factor": retry_backoff_factor,
            "read_timeout": read_timeout,
        }
        self._lock = threading.Lock()  # guards the client cache only
        self._clients: dict[str, ApiManagementClient] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r})"

    def _client(self, service_id: str) -> tuple[ApiManagementClient, str, str]:
        """The client of the service's subscription, its resource group and service name.

        Raises:
            ValueError: ``service_id`` is not an APIM service ARM id.
        """
        subscription, rg, name = self._parts(service_id)
        with self._lock:
            client = self._clients.get(subscription.lower())
            if client is None:
                client = self._new_client(subscription)
                self._clients[subscription.lower()] = client
        return client, rg, name

    @staticmethod
    def _parts(service_id: str) -> tuple[str, str, str]:
        """The subscription, resource group and service name of an APIM service ARM id.

        Raises:
            ValueError: ``service_id`` is not an APIM service ARM id.
        """
        match = _SERVICE_ID.match(service_id.rstrip("/"))
        if match is None:
            raise ValueError(f"not an APIM service ARM id: {service_id!r}")
        return match["sub"], match["rg"], match["name"]

    def _new_client(self, subscription: str) -> ApiManagementClient:
        """A new client of ``subscription`` with the shared settings (not cached here)."""
        return ApiManagementClient(
            self._credential, subscription, base_url=self._base_url, **self._options
        )


@contextmanager
def listing(operation: str, service_id: str, name: str) -> Iterator[None]:
    """``translating`` for a list call, where a 404 means the service itself does not exist:
    a configuration error naming the setting, not a missing certificate."""
    try:
        with translating(APIM, operation, name):
            yield
    except CertificateNotFoundError as exc:
        raise ConfigError(
            [
                f"ROTATION_APIM_SERVICES: APIM service {service_id} not found ({operation}: HTTP 404)"
            ]
        ) from exc


def _with_etag(_pipeline: Any, model: Any, headers: Any) -> tuple[Any, str]:
    return model, str(headers.get("ETag") or "")


def etagged(operation: Any, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Call an SDK operation with the ``cls`` hook that also returns the ``ETag`` header."""
    result: tuple[Any, str] = operation(*args, cls=_with_etag, **kwargs)
    return result


def read_for_swap(
    operation: str, target: str, get: Callable[..., Any], *args: Any, **kwargs: Any
) -> tuple[Any, str]:
    """The read half of a compare-and-swap: ``get(*args, **kwargs)`` with its ETag (for
    ``If-Match``); ``target`` names what is read in messages.

    Raises:
        PreconditionFailedError: the target is gone, so it no longer matches the plan.
        DependencyError: the response carried no ETag (never write unconditionally instead).
        TransientDependencyError / AuthorizationError: see the ports.
    """
    try:
        with translating(APIM, operation, target):
            model, etag = etagged(get, *args, **kwargs)
    except CertificateNotFoundError:
        raise moved(operation, target, gone=True) from None
    if not etag:
        raise DependencyError(
            f"apim {operation} {target!r}: the read carried no ETag",
            service=APIM.name,
            operation=operation,
        )
    return model, etag


def moved(operation: str, target: str, *, gone: bool = False) -> PreconditionFailedError:
    """The compare half failed: the target is not what the plan saw (handled like a 412)."""
    what = "gone" if gone else "changed"
    return PreconditionFailedError(
        f"apim {operation} {target!r}: {what} since it was listed",
        service=APIM.name,
        operation=operation,
        status_code=412,
    )
