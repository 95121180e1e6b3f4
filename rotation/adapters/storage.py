"""Storage connections by name, the way Azure Functions resolves them.

A *connection name* (``AzureWebJobsStorage``, ``ROTATION_AUDIT_CONNECTION``, ...) is read from an
environment-like mapping in one of two forms, exactly as the Functions host does:

- ``<NAME>`` holds a storage **connection string** (``UseDevelopmentStorage=true`` included);
- identity-based: ``<NAME>__accountName`` (service URIs derived with the cloud's endpoint
  suffix) or ``<NAME>__blobServiceUri`` / ``<NAME>__tableServiceUri``, optionally with
  ``<NAME>__credential=managedidentity`` and ``<NAME>__clientId`` (a user-assigned identity).
  ``managedidentity`` selects ``ManagedIdentityCredential``; without it ``DefaultAzureCredential``
  is used (developer credentials locally, the managed identity in Azure).

``resolve_connection`` returns ``None`` when the name is not configured at all, so a caller can
fall back to another name (``resolve_first``) or decide that a feature is off; a feature that is
configured but has no usable connection calls ``require_connection`` and gets a ``ConfigError``.
Anything configured but unusable (a malformed connection string, both forms at once, a non-https
or SAS-carrying service URI, an unknown ``__credential``, a ``__clientId`` that would be ignored,
a service the connection does not cover, a token that cannot be had or is refused) is a
``ConfigError`` naming the setting. Error messages never contain a connection string, account
key, SAS token or bearer token: they name settings and quote only scheme, host and path.

The client builders (``container_client``, ``table_client``, and the service-level ones) pass
extra keyword arguments (``retry_policy``, ``connection_verify``, timeouts, ...) through to the
SDK, so the lock and the audit table keep their own transport settings. ``check_blob`` and
``check_table`` make one cheap call to prove a connection works before a feature relies on it.
Nothing here reads the process environment; the SDKs are imported on first use (cold start).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from rotation.domain.errors import AuthorizationError, ConfigError

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient
    from azure.storage.blob import BlobServiceClient, ContainerClient

__all__ = [
    "MANAGED_IDENTITY",
    "PUBLIC_ENDPOINT_SUFFIX",
    "StorageConnection",
    "blob_service_client",
    "check_blob",
    "check_table",
    "container_client",
    "require_connection",
    "resolve_connection",
    "resolve_first",
    "table_client",
    "table_service_client",
    "token_credential",
]

MANAGED_IDENTITY = "managedidentity"
PUBLIC_ENDPOINT_SUFFIX = "core.windows.net"
_SEPARATOR = "__"
_PROPERTIES = ("accountName", "blobServiceUri", "tableServiceUri", "credential", "clientId")

Service = Literal["blob", "table"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageConnection:
    """One resolved connection: a connection string, or service URIs plus how to get a token."""

    name: str
    connection_string: str | None = field(default=None, repr=False)
    blob_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None

    @property
    def identity_based(self) -> bool:
        """True when the connection authenticates with an Entra token, not a key/SAS."""
        return self.connection_string is None

    def describe(self) -> str:
        """A one-line, secret-free description for logs and errors."""
        if not self.identity_based:
            return f"{self.name} (connection string)"
        how = self.credential or "DefaultAzureCredential"
        services = ", ".join(
            f"{kind} {uri}"
            for kind, uri in (("blob", self.blob_service_uri), ("table", self.table_service_uri))
            if uri
        )
        return f"{self.name} (identity-based: {how}; {services})"


def _raw(mapping: Mapping[str, str], key: str) -> str | None:
    value = mapping.get(key)
    return value.strip() if value is not None and value.strip() else None


def _safe_url(value: str) -> str:
    """``value`` reduced to scheme, host and path: a query string may carry a SAS token."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else "<not a URL>"


def _service_uri(setting: str, value: str, problems: list[str]) -> str | None:
    """An https service URI without query, fragment or credentials (bearer tokens need TLS)."""
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        problems.append(f"{setting}: not a URL")
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        problems.append(
            f"{setting}: must be a bare service URI; a query string, fragment or user info is "
            "not allowed (a SAS token does not belong here; the value is not shown)"
        )
        return None
    if parts.scheme.lower() != "https" or not parts.hostname:
        problems.append(
            f"{setting}: {_safe_url(value)!r} must be an https URL (Entra tokens are only sent "
            "over TLS)"
        )
        return None
    return value.rstrip("/")


def resolve_connection(
    name: str,
    mapping: Mapping[str, str],
    *,
    endpoint_suffix: str = PUBLIC_ENDPOINT_SUFFIX,
) -> StorageConnection | None:
    """The connection ``name`` in ``mapping``, or ``None`` when neither form is configured.

    ``endpoint_suffix`` completes ``<NAME>__accountName`` into service URIs
    (``core.windows.net`` in the public cloud, ``core.usgovcloudapi.net``,
    ``core.chinacloudapi.cn``); explicit ``__blobServiceUri``/``__tableServiceUri`` win.

    Raises:
        ConfigError: the connection is configured but cannot be used (every problem listed).
    """
    connection_string = _raw(mapping, name)
    properties = {p: _raw(mapping, f"{name}{_SEPARATOR}{p}") for p in _PROPERTIES}
    if connection_string is None and not any(properties.values()):
        return None
    problems: list[str] = []
    if connection_string is not None:
        set_properties = [f"{name}{_SEPARATOR}{p}" for p, v in properties.items() if v]
        if set_properties:
            problems.append(
                f"{name}: set either the connection string or the identity-based settings "
                f"({', '.join(set_properties)}), not both"
            )
        else:
            _check_connection_string(name, connection_string, problems)
        if problems:
            raise ConfigError(problems)
        return StorageConnection(name=name, connection_string=connection_string)
    return _identity_connection(name, properties, endpoint_suffix, problems)


def _check_connection_string(name: str, value: str, problems: list[str]) -> None:
    """Shallow shape check (the SDKs parse it fully when a client is built)."""
    if value.lower().replace(" ", "") == "usedevelopmentstorage=true":
        return
    pairs = [part.split("=", 1) for part in value.split(";") if part.strip()]
    keys = {pair[0].strip().lower() for pair in pairs if len(pair) == 2}  # noqa: PLR2004 - k=v
    if len(keys) != len(pairs) or not keys & {
        "accountname",
        "blobendpoint",
        "tableendpoint",
    }:
        problems.append(f"{name}: the connection string is malformed (its value is not shown)")


def _identity_connection(
    name: str,
    properties: Mapping[str, str | None],
    endpoint_suffix: str,
    problems: list[str],
) -> StorageConnection:
    account = properties["accountName"]
    credential = properties["credential"]
    client_id = properties["clientId"]
    if account is not None and not (3 <= len(account) <= 24 and account.isalnum()):  # noqa: PLR2004
        problems.append(
            f"{name}__accountName: not a storage account name (3-24 lower-case letters/digits)"
        )
        account = None
    derived = {
        service: f"https://{account.lower()}.{service}.{endpoint_suffix}" if account else None
        for service in ("blob", "table")
    }
    uris: dict[str, str | None] = {}
    for service in ("blob", "table"):
        setting = f"{name}{_SEPARATOR}{service}ServiceUri"
        explicit = properties[f"{service}ServiceUri"]
        uris[service] = _service_uri(setting, explicit, problems) if explicit else derived[service]
    if credential is not None and credential.lower() != MANAGED_IDENTITY:
        problems.append(
            f"{name}__credential: {credential!r} is not supported (use {MANAGED_IDENTITY!r}, or "
            "leave it unset for DefaultAzureCredential)"
        )
    if client_id is not None and (credential or "").lower() != MANAGED_IDENTITY:
        problems.append(
            f"{name}__clientId: only used with {name}__credential={MANAGED_IDENTITY} "
            "(set it, or remove the client id)"
        )
    if not any(uris.values()) and not problems:
        problems.append(
            f"{name}: set {name}__accountName, or {name}__blobServiceUri / "
            f"{name}__tableServiceUri (only __credential/__clientId are set)"
        )
    if problems:
        raise ConfigError(problems)
    return StorageConnection(
        name=name,
        blob_service_uri=uris["blob"],
        table_service_uri=uris["table"],
        credential=credential.lower() if credential else None,
        client_id=client_id,
    )


def resolve_first(
    names: Iterable[str],
    mapping: Mapping[str, str],
    *,
    endpoint_suffix: str = PUBLIC_ENDPOINT_SUFFIX,
) -> StorageConnection | None:
    """The first of ``names`` that is configured (e.g. a feature's own connection, then
    ``AzureWebJobsStorage``), or ``None``.

    Raises:
        ConfigError: the first configured connection cannot be used.
    """
    for name in names:
        connection = resolve_connection(name, mapping, endpoint_suffix=endpoint_suffix)
        if connection is not None:
            return connection
    return None


def require_connection(
    names: Iterable[str],
    mapping: Mapping[str, str],
    *,
    feature: str,
    service: Service,
    endpoint_suffix: str = PUBLIC_ENDPOINT_SUFFIX,
) -> StorageConnection:
    """The first configured connection of ``names``, which must cover ``service``.

    ``feature`` names what needs it (e.g. ``ROTATION_AUDIT_TABLE``), for the error message.

    Raises:
        ConfigError: none is configured, or the one configured cannot be used for ``service``.
    """
    candidates = tuple(names)
    connection = resolve_first(candidates, mapping, endpoint_suffix=endpoint_suffix)
    if connection is None:
        tried = ", ".join(f"{n} or {n}__accountName/__{service}ServiceUri" for n in candidates)
        raise ConfigError(
            [f"{feature}: needs a {service} storage connection, but none is set ({tried})"]
        )
    if connection.identity_based and _uri(connection, service) is None:
        message = (
            f"{feature}: the connection {connection.name} has no {service} endpoint "
            f"(set {connection.name}__accountName or {connection.name}__{service}ServiceUri)"
        )
        raise ConfigError([message])
    return connection


def _uri(connection: StorageConnection, service: Service) -> str | None:
    return connection.blob_service_uri if service == "blob" else connection.table_service_uri


def token_credential(connection: StorageConnection) -> Any:
    """The credential an identity-based connection asks for.

    ``ManagedIdentityCredential`` (with ``clientId`` for a user-assigned identity) when
    ``__credential=managedidentity``, else ``DefaultAzureCredential``.
    """
    if connection.credential == MANAGED_IDENTITY:
        from azure.identity import ManagedIdentityCredential  # noqa: PLC0415 - cold start

        return ManagedIdentityCredential(client_id=connection.client_id)
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - cold start

    return DefaultAzureCredential()


def _endpoint(connection: StorageConnection, service: Service) -> str:
    uri = _uri(connection, service)
    if uri is None:
        message = (
            f"{connection.name}: no {service} endpoint (set {connection.name}__accountName "
            f"or {connection.name}__{service}ServiceUri)"
        )
        raise ConfigError([message])
    return uri


def _malformed(connection: StorageConnection, service: Service) -> ConfigError:
    message = (
        f"{connection.name}: the connection string cannot be used for {service} storage "
        "(malformed, or no endpoint for it; its value is not shown)"
    )
    return ConfigError([message])


def blob_service_client(
    connection: StorageConnection, *, credential: Any = None, **client_kwargs: Any
) -> BlobServiceClient:
    """A ``BlobServiceClient`` for ``connection``.

    ``credential`` overrides the token credential of an identity-based connection (tests, or a
    credential the composition root already built); it is ignored for connection strings.

    Raises:
        ConfigError: the connection cannot be used for blob storage.
    """
    from azure.storage.blob import BlobServiceClient  # noqa: PLC0415 - cold start

    client: BlobServiceClient = _service_client(
        BlobServiceClient, "blob", connection, credential, client_kwargs
    )
    return client


def container_client(
    connection: StorageConnection, container: str, *, credential: Any = None, **client_kwargs: Any
) -> ContainerClient:
    """A ``ContainerClient`` for ``container`` (see ``blob_service_client``).

    Raises:
        ConfigError: the connection cannot be used for blob storage.
    """
    service = blob_service_client(connection, credential=credential, **client_kwargs)
    return service.get_container_client(container)


def table_service_client(
    connection: StorageConnection, *, credential: Any = None, **client_kwargs: Any
) -> TableServiceClient:
    """A ``TableServiceClient`` for ``connection`` (see ``blob_service_client``).

    Raises:
        ConfigError: the connection cannot be used for table storage.
    """
    from azure.data.tables import TableServiceClient  # noqa: PLC0415 - cold start

    client: TableServiceClient = _service_client(
        TableServiceClient, "table", connection, credential, client_kwargs
    )
    return client


def _service_client(
    kind: Any,
    service: Service,
    connection: StorageConnection,
    credential: Any,
    client_kwargs: dict[str, Any],
) -> Any:
    """``kind`` (a Blob or Table service client class) for ``connection``: from its connection
    string, or its ``service`` endpoint with a token credential."""
    from azure.core.exceptions import AzureError  # noqa: PLC0415 - cold start

    try:
        if connection.connection_string is not None:
            return kind.from_connection_string(connection.connection_string, **client_kwargs)
        return kind(
            _endpoint(connection, service),
            credential=credential or token_credential(connection),
            **client_kwargs,
        )
    except (ValueError, AzureError):
        raise _malformed(connection, service) from None


def table_client(
    connection: StorageConnection, table: str, *, credential: Any = None, **client_kwargs: Any
) -> TableClient:
    """A ``TableClient`` for ``table`` (see ``blob_service_client``).

    Raises:
        ConfigError: the connection cannot be used for table storage.
    """
    service = table_service_client(connection, credential=credential, **client_kwargs)
    return service.get_table_client(table)


def check_blob(client: ContainerClient, connection: StorageConnection) -> None:
    """Prove ``client`` can reach its container (one HEAD; a missing container is fine).

    The client's own retry policy applies (Storage retries every ``AzureError``, a missing
    credential included): build it with a short one, as the lock does.

    Raises:
        ConfigError: no token could be had, or storage refused it (401/403), or the account
            cannot be reached at all; the message names the connection, never a secret.
    """
    from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - cold start

    try:
        client.get_container_properties()
    except ResourceNotFoundError:
        return
    except Exception as exc:  # noqa: BLE001 - every failure here is reported as configuration
        raise _unusable(connection, "blob", exc) from None


def check_table(client: TableClient, connection: StorageConnection) -> None:
    """Prove ``client`` can reach its table (one query for one entity; a missing table is fine).

    Raises:
        ConfigError: as for ``check_blob``.
    """
    from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - cold start

    try:
        next(iter(client.list_entities(results_per_page=1, select=["PartitionKey"])), None)
    except ResourceNotFoundError:
        return
    except Exception as exc:  # noqa: BLE001 - every failure here is reported as configuration
        raise _unusable(connection, "table", exc) from None


def _unusable(connection: StorageConnection, service: Service, exc: Exception) -> ConfigError:
    from rotation.adapters.errors import DEAD_LETTERS, translate  # noqa: PLC0415 - cold start

    status = getattr(exc, "status_code", None)
    error = translate(exc, service=DEAD_LETTERS, operation="check", name=service)
    if isinstance(error, AuthorizationError) and status is None:
        reason = "no credential could get a token"
    elif isinstance(error, AuthorizationError):
        code = getattr(exc, "error_code", None)
        reason = f"storage refused the credential (HTTP {status}{f' {code}' if code else ''})"
    elif status is not None:
        reason = f"storage answered HTTP {status}"
    else:
        reason = f"storage could not be reached ({type(exc).__name__})"
    return ConfigError([f"{connection.describe()}: {service} storage unusable: {reason}"])
