"""Audit sinks and correlation: how every decision reaches stdout (and a durable table).

``StructlogAuditSink`` writes one JSON line per ``AuditRecord`` through the ``rotation.audit``
logger with ``audit=True`` (so audit lines can be queried apart from diagnostics), carrying every
audit field (docs/architecture.md, "Audit record"). ``CompositeAuditSink`` fans a record out to several sinks and never lets
one failing sink starve the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from rotation.domain.model import AuditRecord
from rotation.ports import AuditSink

__all__ = [
    "AUDIT_FIELDS",
    "CompositeAuditSink",
    "StructlogAuditSink",
    "audit_level",
]

_WARNING_EVENTS = frozenset({"certificate.near_expiry", "certificate.expired"})


def audit_level(record: AuditRecord) -> str:
    """The log level of an audit record (docs/operations.md, "Logs"): ``error`` for ``failed``,
    ``warning`` for ``rejected`` and expiry alerts, else ``info``."""
    if record.decision == "failed":
        return "error"
    if record.decision == "rejected" or record.event in _WARNING_EVENTS:
        return "warning"
    return "info"


AUDIT_FIELDS: tuple[str, ...] = (
    "event", "decision", "event_id", "event_type", "topic", "vault", "certificate", "version",
    "previous_version", "thumbprint_sha1", "thumbprint_sha256", "not_before", "not_after",
    "findings", "targets", "strategy", "dry_run", "duration_ms", "correlation_id", "trigger",
)  # fmt: skip
"""The fields every audit record carries (docs/architecture.md, "Audit record"), (``None`` where not applicable)."""


class StructlogAuditSink:
    """``AuditSink`` writing one structlog line per record (logger ``rotation.audit``)."""

    def __init__(self, logger: Any = None) -> None:
        self._log = logger if logger is not None else structlog.get_logger("rotation.audit")

    def __repr__(self) -> str:
        return "StructlogAuditSink()"

    def write(self, record: AuditRecord) -> None:
        """Log ``record`` as one JSON line with ``audit=True``, at ``audit_level(record)``."""
        fields = record.as_dict()
        event = str(fields.pop("event"))
        if fields["correlation_id"] is None:
            fields["correlation_id"] = structlog.contextvars.get_contextvars().get(
                "correlation_id"
            )
        getattr(self._log, audit_level(record))(event, audit=True, **fields)


class CompositeAuditSink:
    """Writes each record to every sink; if any fail, the rest still get it, then it raises."""

    def __init__(self, *sinks: AuditSink) -> None:
        self.sinks = sinks

    def __repr__(self) -> str:
        return f"CompositeAuditSink({', '.join(map(repr, self.sinks))})"

    def last_validated(self, vault_url: str, certificate: str) -> str | None:
        """``ValidationHistory``: the first sink that can be read back answers; None if none."""
        for sink in self.sinks:
            reader = getattr(sink, "last_validated", None)
            if callable(reader):
                found: str | None = reader(vault_url, certificate)
                return found
        return None

    def inbound_added_at(
        self, vault_url: str, certificate: str
    ) -> Mapping[tuple[str, str], datetime] | None:
        """``ValidationHistory``: the first sink that can be read back answers; None if none."""
        for sink in self.sinks:
            reader = getattr(sink, "inbound_added_at", None)
            if callable(reader):
                found: Mapping[tuple[str, str], datetime] | None = reader(vault_url, certificate)
                return found
        return None

    def write(self, record: AuditRecord) -> None:
        """Write to all sinks.

        Raises:
            Exception: the first sink failure (retryable ones preferred), after every sink ran;
                the others are attached as notes.
        """
        errors: list[Exception] = []
        for sink in self.sinks:
            try:
                sink.write(record)
            except Exception as exc:  # noqa: BLE001 - every sink must get the record first
                errors.append(exc)
        if errors:
            errors.sort(key=lambda e: not getattr(e, "retryable", False))
            first = errors[0]
            for other in errors[1:]:
                first.add_note(f"another audit sink also failed: {type(other).__name__}: {other}")
            raise first
