"""A ``multiprocessing`` spawn child for the audit chain tests: appends records to one
certificate's chain through its own ``TableAuditSink``, starting at a barrier with the others."""

from __future__ import annotations

from typing import Any

from rotation.adapters.tables import TableAuditSink
from rotation.domain.errors import TransientDependencyError
from rotation.domain.model import AuditRecord, Decision, Trigger

CERT = "partner-mtls"
VAULT = "https://kv-chain.vault.azure.net"


def chain_record(event_id: str) -> AuditRecord:
    """An applied record about ``CERT`` in ``VAULT`` carrying ``event_id``."""
    return AuditRecord(
        event="rotation.applied",
        decision=Decision.APPLIED,
        trigger=Trigger.EVENTGRID,
        event_id=event_id,
        vault=VAULT,
        certificate=CERT,
        version="v1",
    )


def append_in_child(
    connection: str, table: str, me: int, count: int, *, start: Any, results: Any
) -> None:
    """Write ``count`` records; a write that fails retryably is written again (as a redelivered
    event would be). Puts (me, retryable failures seen) on ``results``."""
    sink = TableAuditSink.from_connection_string(connection, table)
    start.wait(timeout=120)
    retried = 0
    for index in range(count):
        while True:
            try:
                sink.write(chain_record(f"w{me}-{index}"))
                break
            except TransientDependencyError:
                retried += 1
                if retried > 100 * count:
                    raise
    results.put((me, retried))
