"""The durable audit trail in Azure Tables (or Azurite): ``TableAuditSink`` and its reader.

One entity per ``AuditRecord``: PartitionKey ``{vault}|{certificate}`` (so one certificate's
history is one partition), RowKey ``{UTC time, sortable}-{uuid4}`` (so rows sort by time and never
collide), every audit field as a property (``None`` omitted, ``findings``/``targets`` JSON-encoded)
and ``recorded_at``. ``azure.core`` errors become the domain's ``DependencyError`` family
(``rotation.adapters.errors.translate``); messages carry status codes and error codes, never the
connection string.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from rotation.adapters.audit import AUDIT_FIELDS
from rotation.adapters.clock import SystemClock
from rotation.adapters.errors import AUDIT_TABLE, translate
from rotation.adapters.storage import StorageConnection, table_client
from rotation.domain.errors import DependencyError, RotationError
from rotation.domain.follow import last_validated
from rotation.domain.model import AuditRecord
from rotation.ports import Clock

__all__ = [
    "TableAuditSink",
    "TableValidationHistory",
    "iter_audit_records",
    "open_connection_table",
    "open_table",
]

_SERVICE = AUDIT_TABLE.name
_LIST_FIELDS = ("findings", "targets")
_TABLE_KEYS = frozenset({"PartitionKey", "RowKey", "Timestamp", "etag"})
_KEY_UNSAFE = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def open_table(connection_string: str, table_name: str, *, retries: int = 3) -> TableClient:
    """A ``TableClient`` for ``table_name`` (``UseDevelopmentStorage=true`` works too).

    Raises:
        DependencyError: the connection string is malformed (its text is never shown).
    """
    try:
        return TableClient.from_connection_string(
            connection_string, table_name=table_name, retry_total=retries
        )
    except (ValueError, AzureError):
        raise DependencyError(
            "the audit table connection string is malformed",
            service=_SERVICE,
            operation="connect",
        ) from None


def open_connection_table(
    connection: StorageConnection,
    table_name: str,
    *,
    retries: int = 3,
    credential: Any = None,
    connection_verify: str | bool = True,
) -> TableClient:
    """A ``TableClient`` for ``table_name`` over a named storage connection (a connection string
    or identity-based, see ``rotation.adapters.storage``), retrying ``retries`` times like
    ``open_table``.

    Raises:
        ConfigError: the connection cannot be used for table storage (no secret shown).
    """
    return table_client(
        connection,
        table_name,
        credential=credential,
        connection_verify=connection_verify,
        retry_total=retries,
    )


def _partition_key(record: AuditRecord) -> str:
    return _partition(record.vault, record.certificate)


def _partition(vault: str | None, certificate: str | None) -> str:
    vault = vault or "-"
    if vault.lower().startswith("https://"):
        vault = urlsplit(vault).netloc.lower()
    return _KEY_UNSAFE.sub("_", f"{vault}|{certificate or '-'}")


def _row_key(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex}"


class TableAuditSink:
    """``AuditSink`` appending each record to an Azure Tables table (created on first write)."""

    def __init__(self, client: TableClient, *, clock: Clock | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or SystemClock()
        self._ready = False

    def __repr__(self) -> str:
        return f"TableAuditSink(table={self._client.table_name!r})"

    @classmethod
    def from_connection(
        cls,
        connection: StorageConnection,
        table_name: str,
        *,
        clock: Clock | None = None,
        credential: Any = None,
        connection_verify: str | bool = True,
    ) -> TableAuditSink:
        """The sink over a named storage connection (see ``open_connection_table``).

        Raises:
            ConfigError: the connection cannot be used for table storage.
        """
        client = open_connection_table(
            connection, table_name, credential=credential, connection_verify=connection_verify
        )
        return cls(client, clock=clock)

    def _error(self, exc: AzureError, operation: str) -> RotationError:
        return translate(
            exc, service=AUDIT_TABLE, operation=operation, name=str(self._client.table_name)
        )

    def _ensure_table(self) -> None:
        if self._ready:
            return
        try:
            self._client.create_table()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise self._error(exc, "create_table") from exc
        self._ready = True

    def write(self, record: AuditRecord) -> None:
        """Store ``record`` as one entity.

        Raises:
            TransientDependencyError: throttled, 5xx, timeout, unreachable.
            AuthorizationError: 401/403.
            DependencyError: anything else.
        """
        self._ensure_table()
        at = self._clock.now()
        entity: dict[str, object] = {
            "PartitionKey": _partition_key(record),
            "RowKey": _row_key(at),
            "recorded_at": at.astimezone(UTC),
        }
        for name, value in record.as_dict().items():
            if value is None:
                continue
            entity[name] = json.dumps(value) if name in _LIST_FIELDS else value
        try:
            self._client.create_entity(entity=entity)
        except AzureError as exc:
            raise self._error(exc, "create_entity") from exc


def _to_record(entity: dict[str, Any]) -> dict[str, object]:
    out: dict[str, object] = dict.fromkeys((*AUDIT_FIELDS, *AuditRecord.__dataclass_fields__))
    for name, value in entity.items():
        if name in _TABLE_KEYS:
            continue
        if name in _LIST_FIELDS:
            out[name] = json.loads(value) if isinstance(value, str) else []
        elif isinstance(value, datetime):
            out[name] = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        else:
            out[name] = value
    for name in _LIST_FIELDS:
        out[name] = out[name] if isinstance(out[name], list) else []
    return out


def iter_audit_records(
    client: TableClient, *, certificate: str | None = None, since: datetime | None = None
) -> Iterator[dict[str, object]]:
    """Stream stored records (as ``AuditRecord.as_dict()`` plus ``recorded_at``), page by page.

    Raises:
        DependencyError (or a subclass): the table cannot be read.
    """
    clauses, parameters = [], {}
    if certificate is not None:
        clauses.append("certificate eq @certificate")
        parameters["certificate"] = certificate
    if since is not None:
        clauses.append("RowKey ge @since")
        parameters["since"] = f"{since.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"
    try:
        pages = (
            client.query_entities(" and ".join(clauses), parameters=parameters)
            if clauses
            else client.list_entities()
        )
        for entity in pages:
            yield _to_record(dict(entity))
    except AzureError as exc:
        raise translate(
            exc, service=AUDIT_TABLE, operation="query", name=str(client.table_name)
        ) from exc
    except (TypeError, ValueError):
        raise DependencyError(
            "the audit table holds an entity that is not an audit record",
            service=_SERVICE,
            operation="query",
        ) from None


class TableValidationHistory:
    """``ValidationHistory`` over the durable table: one query of the certificate's partition
    (rows sort by time), judged by ``rotation.domain.follow.last_validated``."""

    def __init__(self, client: TableClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"TableValidationHistory(table={self._client.table_name!r})"

    @classmethod
    def from_connection(
        cls,
        connection: StorageConnection,
        table_name: str,
        *,
        credential: Any = None,
        connection_verify: str | bool = True,
    ) -> TableValidationHistory:
        """Raises: ConfigError: the connection cannot be used for table storage."""
        client = open_connection_table(
            connection, table_name, credential=credential, connection_verify=connection_verify
        )
        return cls(client)

    @classmethod
    def from_connection_string(
        cls, connection_string: str, table_name: str
    ) -> TableValidationHistory:
        """Raises: DependencyError: the connection string is malformed."""
        return cls(open_table(connection_string, table_name))

    def last_validated(self, vault_url: str, certificate: str) -> str | None:
        """The trail's last validated version of ``certificate``; None when there is none (or
        no table yet).

        Raises:
            DependencyError (or a subclass): the table cannot be read.
        """
        try:
            pages = self._client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": _partition(vault_url, certificate)}
            )
            rows = [_to_record(dict(entity)) for entity in pages]
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise translate(
                exc, service=AUDIT_TABLE, operation="query", name=str(self._client.table_name)
            ) from exc
        return last_validated(rows, vault_url, certificate)
