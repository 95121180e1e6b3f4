"""An ``AuditSink`` that appends one JSON object per audit record to a file (JSON Lines).

Used by ``certrotate demo`` (and available to any CLI run) for a local, greppable audit trail.
Each record is ``AuditRecord.as_dict()``: the audit fields (docs/architecture.md, "Audit record"), which by construction carry
no secret material (no keys, bundles, tokens or connection strings), plus ``recorded_at`` (UTC,
from the sink's clock) as the durable table stores it, so ``certrotate audit --since`` finds them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from rotation.adapters.clock import SystemClock
from rotation.domain.errors import DependencyError
from rotation.domain.follow import last_validated
from rotation.domain.inbound import added_at
from rotation.domain.model import AuditRecord
from rotation.ports import Clock

__all__ = ["JsonLinesAuditSink"]


class JsonLinesAuditSink:
    """Append audit records to ``path`` as JSON Lines (UTF-8, one record per line).

    The file is opened for each record and closed again, so a crash never loses a written
    record and no handle outlives a run.
    """

    def __init__(self, path: Path | str, *, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self._clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"JsonLinesAuditSink({str(self.path)!r})"

    def write(self, record: AuditRecord) -> None:
        """Append ``record`` as one JSON line.

        Raises:
            DependencyError: the file could not be written (missing directory, permissions).
        """
        at = self._clock.now().astimezone(UTC).isoformat().replace("+00:00", "Z")
        line = json.dumps(
            record.as_dict() | {"recorded_at": at}, separators=(",", ":"), default=str
        )
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            raise DependencyError(
                f"cannot append to audit log {self.path}: {exc.strerror or exc}",
                service="auditlog",
                operation="write",
            ) from exc

    def last_validated(self, vault_url: str, certificate: str) -> str | None:
        """``ValidationHistory``: the last validated version in the file (``follow``); None
        when the file does not exist yet.

        Raises:
            DependencyError: the file exists but cannot be read.
        """
        return last_validated(self._rows(), vault_url, certificate)

    def inbound_added_at(
        self, vault_url: str, certificate: str
    ) -> dict[tuple[str, str], datetime]:
        """``ValidationHistory``: when each inbound thumbprint was added, per the file (empty
        when the file does not exist yet).

        Raises:
            DependencyError: the file exists but cannot be read.
        """
        return added_at(self._rows(), vault_url, certificate)

    def _rows(self) -> list[dict[str, object]]:
        """Every record in the file (none when it does not exist yet)."""
        if not self.path.exists():
            return []
        try:
            with self.path.open(encoding="utf-8") as handle:
                return [json.loads(line) for line in handle if line.strip()]
        except (OSError, ValueError) as exc:
            raise DependencyError(
                f"cannot read audit log {self.path}: {type(exc).__name__}",
                service="auditlog",
                operation="read",
            ) from exc
