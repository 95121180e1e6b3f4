"""The durable audit trail in Azure Tables (or Azurite): ``TableAuditSink`` and its reader.

One entity per ``AuditRecord``: PartitionKey ``{vault}|{certificate}`` (so one certificate's
history is one partition), RowKey ``{UTC time, sortable}-{uuid4}`` (so rows sort by time and never
collide), every audit field as a property (``None`` omitted, ``findings``/``targets`` JSON-encoded)
and ``recorded_at``.

Each certificate's records form a hash chain (``rotation.domain.chain``): every record carries
``seq``, ``prev_hash`` and ``hash`` (over ``CHAINED_FIELDS``: the audit fields and
``recorded_at``), and the
partition holds one chain head entity (RowKey ``HEAD_ROW``) naming the last ``seq`` and ``hash``.
An append writes the record and replaces the head (If-Match on the head's ETag; created when
absent) in one table transaction, so both land or neither: a writer that loses the race waits a
jittered, doubling moment, re-reads the head and tries again (``CHAIN_ATTEMPTS`` in all), then
fails retryably. A record's time is
kept after the previous record's, so RowKey order is chain order. ``azure.core`` errors become the domain's ``DependencyError`` family
(``rotation.adapters.errors.translate``); messages carry status codes and error codes, never the
connection string.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from rotation.adapters.audit import AUDIT_FIELDS
from rotation.adapters.clock import SystemClock
from rotation.adapters.errors import AUDIT_TABLE, translate
from rotation.adapters.storage import StorageConnection, table_client
from rotation.domain.chain import GENESIS, Link, link_hash
from rotation.domain.errors import DependencyError, RotationError, TransientDependencyError
from rotation.domain.follow import last_validated
from rotation.domain.inbound import added_at
from rotation.domain.model import AuditRecord
from rotation.ports import Clock

__all__ = [
    "CHAINED_FIELDS",
    "CHAIN_ATTEMPTS",
    "HEAD_ROW",
    "ChainItem",
    "TableAuditSink",
    "TableValidationHistory",
    "iter_audit_records",
    "iter_chain_heads",
    "iter_chain_items",
    "open_connection_table",
    "open_table",
]

_SERVICE = AUDIT_TABLE.name
_LIST_FIELDS = ("findings", "targets")
_CHAIN_KEYS = frozenset({"seq", "prev_hash", "hash"})
_TABLE_KEYS = frozenset({"PartitionKey", "RowKey", "Timestamp", "etag", *_CHAIN_KEYS})
HEAD_ROW = "~chain-head"
"""RowKey of a partition's chain head (``~`` sorts after every record's RowKey)."""
CHAIN_ATTEMPTS = 8
"""Appends tried against a moving head before the write fails retryably."""
CHAINED_FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys((*AUDIT_FIELDS, *AuditRecord.__dataclass_fields__, "recorded_at"))
)
"""What a record's ``hash`` covers besides ``seq`` and ``prev_hash``: every audit field
(``AUDIT_FIELDS``, and any other ``AuditRecord`` field such as ``error``/``message``) and
``recorded_at``."""
_BACKOFF, _BACKOFF_MAX = 0.02, 0.5  # seconds: a lost append's jittered wait, doubling
_CONFLICT_CODES = frozenset({"UpdateConditionNotSatisfied", "EntityAlreadyExists"})
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

    def __init__(
        self,
        client: TableClient,
        *,
        clock: Clock | None = None,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._clock: Clock = clock or SystemClock()
        self._pause = pause
        self._ready = False

    def __repr__(self) -> str:
        return f"TableAuditSink(table={self._client.table_name!r})"

    @classmethod
    def from_connection_string(
        cls, connection_string: str, table_name: str, *, clock: Clock | None = None
    ) -> TableAuditSink:
        """The sink over a storage connection string (tests, tools).

        Raises:
            DependencyError: the connection string is malformed.
        """
        return cls(open_table(connection_string, table_name), clock=clock)

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
        """Append ``record`` to its certificate's chain: the record and the new chain head in one
        transaction, conditional on the head read (retried against a moving head).

        Raises:
            TransientDependencyError: throttled, 5xx, timeout, unreachable, or the head kept
                moving for ``CHAIN_ATTEMPTS`` attempts.
            AuthorizationError: 401/403.
            DependencyError: anything else.
        """
        self._ensure_table()
        partition = _partition_key(record)
        for attempt in range(CHAIN_ATTEMPTS):
            head = self._read_head(partition)
            try:
                self._client.submit_transaction(self._append(record, partition, head))
            except TableTransactionError as exc:
                code = getattr(exc, "error_code", None)
                if code in _CONFLICT_CODES or exc.status_code in {409, 412}:
                    # Another writer moved the head: back off (jittered), re-read it, retry.
                    self._pause(random.uniform(0, min(_BACKOFF * 2**attempt, _BACKOFF_MAX)))  # noqa: S311 - jitter, not crypto
                    continue
                raise self._error(exc, "submit_transaction") from exc
            except AzureError as exc:
                raise self._error(exc, "submit_transaction") from exc
            return
        raise TransientDependencyError(
            f"the audit chain head kept moving for {CHAIN_ATTEMPTS} attempts",
            service=_SERVICE,
            operation="submit_transaction",
        )

    def _read_head(self, partition: str) -> dict[str, Any] | None:
        try:
            entity = self._client.get_entity(partition, HEAD_ROW)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._error(exc, "get_entity") from exc
        return {**entity, "etag": entity.metadata["etag"]}

    def _append(
        self, record: AuditRecord, partition: str, head: dict[str, Any] | None
    ) -> list[Any]:
        seq, prev_hash = (int(head["seq"]) + 1, str(head["hash"])) if head else (1, GENESIS)
        at = self._clock.now().astimezone(UTC)
        last_at = head.get("recorded_at") if head else None
        if isinstance(last_at, datetime) and at <= last_at:
            at = last_at.astimezone(UTC) + timedelta(microseconds=1)  # keep RowKey = chain order
        entity: dict[str, object] = {
            "PartitionKey": partition,
            "RowKey": _row_key(at),
            "recorded_at": at,
        }
        for name, value in record.as_dict().items():
            if value is None:
                continue
            entity[name] = json.dumps(value) if name in _LIST_FIELDS else value
        digest = link_hash(_to_record(entity), CHAINED_FIELDS, seq=seq, prev_hash=prev_hash)
        entity |= {"seq": seq, "prev_hash": prev_hash, "hash": digest}
        new_head = {
            "PartitionKey": partition,
            "RowKey": HEAD_ROW,
            "seq": seq,
            "hash": digest,
            "last_row": entity["RowKey"],
            "recorded_at": at,
            "vault": record.vault,
            "certificate": record.certificate,
        }
        if head is None:
            return [("create", entity), ("create", new_head)]
        condition = {
            "mode": UpdateMode.REPLACE,
            "etag": head["etag"],
            "match_condition": MatchConditions.IfNotModified,
        }
        return [("create", entity), ("update", new_head, condition)]


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


@contextmanager
def _reading(client: TableClient) -> Iterator[None]:
    """Stream the table, translating what can go wrong: the SDK's errors, and an entity that
    is not an audit record.

    Raises:
        DependencyError (or a subclass): the table cannot be read, or holds a foreign entity.
    """
    try:
        yield
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


def _entities(
    client: TableClient, *, certificate: str | None, since: datetime | None
) -> Iterable[Any]:
    """The table's entities (lazily, page by page), of ``certificate`` and from ``since`` on."""
    clauses, parameters = [], {}
    if certificate is not None:
        clauses.append("certificate eq @certificate")
        parameters["certificate"] = certificate
    if since is not None:
        clauses.append("RowKey ge @since")
        parameters["since"] = f"{since.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"
    if clauses:
        return client.query_entities(" and ".join(clauses), parameters=parameters)
    return client.list_entities()


def iter_audit_records(
    client: TableClient, *, certificate: str | None = None, since: datetime | None = None
) -> Iterator[dict[str, object]]:
    """Stream stored records (as ``AuditRecord.as_dict()`` plus ``recorded_at``), page by page.

    Raises:
        DependencyError (or a subclass): the table cannot be read.
    """
    with _reading(client):
        pages = _entities(client, certificate=certificate, since=since)
        for entity in pages:
            if entity.get("RowKey") != HEAD_ROW:
                yield _to_record(dict(entity))


@dataclass(frozen=True, slots=True)
class ChainItem:
    """One entity of the trail in storage order: a record (``link`` None when it was written
    before the chain) or, ``head`` True, a partition's chain head (``record`` empty)."""

    chain: str
    position: str
    record: dict[str, object]
    link: Link | None
    head: bool = False


def _link(entity: dict[str, Any], *, head: bool) -> Link | None:
    seq, digest = entity.get("seq"), entity.get("hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(digest, str):
        return None
    prev = entity.get("prev_hash")
    return Link(seq=seq, prev_hash="" if head else str(prev or ""), hash=digest)


def iter_chain_items(
    client: TableClient, *, certificate: str | None = None, since: datetime | None = None
) -> Iterator[ChainItem]:
    """Stream every record and chain head in storage order (partition by partition, each
    partition's records in RowKey order, its head last), holding one page at a time.

    Raises:
        DependencyError (or a subclass): the table cannot be read.
    """
    with _reading(client):
        pages = _entities(client, certificate=certificate, since=since)
        for raw in pages:
            entity = dict(raw)
            chain, row = str(entity["PartitionKey"]), str(entity["RowKey"])
            if row == HEAD_ROW:
                yield ChainItem(chain, row, {}, _link(entity, head=True), head=True)
            else:
                yield ChainItem(chain, row, _to_record(entity), _link(entity, head=False))


def iter_chain_heads(client: TableClient) -> Iterator[tuple[str, Link]]:
    """Every partition's chain head: (chain, head link), for anchoring.

    Raises:
        DependencyError (or a subclass): the table cannot be read.
    """
    try:
        for raw in client.query_entities("RowKey eq @row", parameters={"row": HEAD_ROW}):
            link = _link(dict(raw), head=True)
            if link is not None:
                yield str(raw["PartitionKey"]), link
    except AzureError as exc:
        raise translate(
            exc, service=AUDIT_TABLE, operation="query", name=str(client.table_name)
        ) from exc


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
        return last_validated(self._rows(vault_url, certificate), vault_url, certificate)

    def inbound_added_at(
        self, vault_url: str, certificate: str
    ) -> dict[tuple[str, str], datetime]:
        """When certrotate added each inbound thumbprint of ``certificate`` to each policy
        document, per the certificate's partition (empty when there is no table yet).

        Raises:
            DependencyError (or a subclass): the table cannot be read.
        """
        return added_at(self._rows(vault_url, certificate), vault_url, certificate)

    def _rows(self, vault_url: str, certificate: str) -> list[dict[str, object]]:
        """The records of the certificate's partition, in time order (none without a table)."""
        try:
            pages = self._client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": _partition(vault_url, certificate)}
            )
            return [_to_record(dict(e)) for e in pages if e.get("RowKey") != HEAD_ROW]
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise translate(
                exc, service=AUDIT_TABLE, operation="query", name=str(self._client.table_name)
            ) from exc
