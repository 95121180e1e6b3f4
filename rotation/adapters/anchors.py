"""Anchors of the audit chains: each chain head's ``seq`` and ``hash`` appended, one JSON line
each, to a daily append blob (``{YYYY-MM-DD}.jsonl``) in a container outside the audit table
(``infra/`` provisions ``audit-anchors`` with a time-based immutability policy).

``AnchorLog.append`` writes the lines; ``AnchorLog.read`` gathers every anchored hash per chain
and ``seq`` for ``certrotate audit --verify --anchors`` (``rotation.domain.chain``). SDK errors
become the domain's ``DependencyError`` family; messages never carry the connection string.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from rotation.adapters.errors import Service, translate
from rotation.adapters.tables import iter_chain_heads
from rotation.domain.chain import Link
from rotation.domain.errors import DependencyError
from rotation.ports import Clock

__all__ = ["ANCHORS", "AnchorLog", "anchor_chains"]

_ACCESS = "check the account key in the connection string or the identity's data role"
ANCHORS = Service(
    name="audit-anchors",
    hints={
        HTTPStatus.NOT_FOUND: "the anchors container does not exist",
        HTTPStatus.UNAUTHORIZED: _ACCESS,
        HTTPStatus.FORBIDDEN: _ACCESS,
    },
)
_BLOCK = 1 << 20  # well under the 4 MiB an append block may hold


class AnchorLog:
    """The daily append blobs of chain heads in one container."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    def __repr__(self) -> str:
        return f"AnchorLog(container={self._container.container_name!r})"

    @classmethod
    def from_connection_string(cls, connection_string: str, container: str) -> AnchorLog:
        """Raises: DependencyError: the connection string is malformed (never echoed)."""
        try:
            return cls(ContainerClient.from_connection_string(connection_string, container))
        except (ValueError, AzureError):
            raise DependencyError(
                "the anchors connection string is malformed",
                service=ANCHORS.name,
                operation="connect",
            ) from None

    def _error(self, exc: AzureError, operation: str) -> DependencyError:
        error = translate(
            exc, service=ANCHORS, operation=operation, name=str(self._container.container_name)
        )
        assert isinstance(error, DependencyError)  # noqa: S101 - translate's contract
        return error

    def append(self, heads: Iterable[tuple[str, Link]], at: datetime) -> int:
        """Append one line per (chain, head) to the blob of ``at``'s UTC day; how many.

        Raises:
            DependencyError (or a subclass): the container cannot be written.
        """
        stamp = at.astimezone(UTC)
        blob = self._container.get_blob_client(f"{stamp:%Y-%m-%d}.jsonl")
        when = stamp.isoformat().replace("+00:00", "Z")
        try:
            # Only if absent (today's blob may exist): never truncate the day's anchors.
            with contextlib.suppress(ResourceExistsError, ResourceModifiedError):
                blob.create_append_blob(headers={"If-None-Match": "*"})
            count, block = 0, bytearray()
            for chain, head in heads:
                line = {"chain": chain, "seq": head.seq, "hash": head.hash, "anchored_at": when}
                block += (json.dumps(line, separators=(",", ":")) + "\n").encode()
                count += 1
                if len(block) >= _BLOCK:
                    blob.append_block(bytes(block))
                    block.clear()
            if block:
                blob.append_block(bytes(block))
        except AzureError as exc:
            raise self._error(exc, "append") from exc
        return count

    def read(self) -> dict[str, dict[int, frozenset[str]]]:
        """Every anchored hash by chain and ``seq`` (all days); memory grows with chains and
        days, not with records.

        Raises:
            DependencyError (or a subclass): the container cannot be read, or a line is not an
                anchor.
        """
        found: dict[str, dict[int, set[str]]] = {}
        try:
            for item in self._container.list_blobs():
                stream = self._container.download_blob(item.name)
                for number, line in enumerate(stream.readall().splitlines(), 1):
                    chain, seq, digest = _parse(line, f"{item.name}:{number}")
                    found.setdefault(chain, {}).setdefault(seq, set()).add(digest)
        except AzureError as exc:
            raise self._error(exc, "read") from exc
        return {c: {s: frozenset(h) for s, h in seqs.items()} for c, seqs in found.items()}


def _parse(line: bytes, where: str) -> tuple[str, int, str]:
    try:
        value = json.loads(line)
        chain, seq, digest = value["chain"], value["seq"], value["hash"]
    except (ValueError, TypeError, KeyError):
        raise DependencyError(
            f"{where} is not an anchor line", service=ANCHORS.name, operation="read"
        ) from None
    if not (isinstance(chain, str) and isinstance(seq, int) and isinstance(digest, str)):
        raise DependencyError(
            f"{where} is not an anchor line", service=ANCHORS.name, operation="read"
        )
    return chain, seq, digest


def anchor_chains(table: TableClient, anchors: AnchorLog, clock: Clock) -> int:
    """Append every chain head of ``table`` to today's anchor blob (the reconcile sweep's
    anchoring); how many heads.

    Raises:
        DependencyError (or a subclass): the table cannot be read or the container written.
    """
    return anchors.append(iter_chain_heads(table), clock.now())
