"""The replay loop behind ``certrotate replay``: stream, handle, audit the malformed, count.

Events come one at a time from files and/or an Event Grid dead-letter container and go through
an ``EventHandler.handle`` (the ``replay`` command passes ``RotationService.batch()``: the
Functions trigger's path, with APIM listings shared between consecutive events of one
certificate); a malformed event is audited (as the trigger does) and reported, a failing one
fails alone. Only the decision counts are kept (and the batch's listings are bounded), so a
replay runs in constant memory. The click command itself is in ``rotation.entrypoints.cli.replay``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from rotation.domain.errors import AuthorizationError, ConfigError, InvalidEventError
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.logconfig import bind_correlation, redact

if TYPE_CHECKING:
    from rotation.adapters.blobs import DeadLetterBlobSource
    from rotation.ports import AuditSink, EventHandler

__all__ = ["MALFORMED", "Item", "event_stream", "run_replay", "summary"]

MALFORMED = "malformed"
Item = tuple[str, KeyVaultEvent | InvalidEventError]
_ORDER = [*(str(d) for d in Decision), MALFORMED]


def event_stream(
    files: tuple[Path, ...],
    deadletters: DeadLetterBlobSource | None,
    prefix: str,
    vaults: tuple[str, ...],
) -> Iterator[Item]:
    """Every (location, event-or-error) from the files, then from the dead-letter container.

    A file that cannot be read (or stops being readable part-way) is one malformed item at the
    file's own location, and the stream goes on with the next file.

    Raises:
        RotationError: the dead-letter container cannot be listed or read.
    """
    from rotation.intake.events import iter_file_events  # noqa: PLC0415

    for path in files:
        try:
            yield from iter_file_events(path, allowed_vault_urls=vaults)
        except OSError as exc:
            why = f"cannot be read ({type(exc).__name__}: {exc.strerror or 'I/O error'})"
            yield path.name, InvalidEventError(why)
    if deadletters is not None:
        yield from deadletters.iter_events(prefix, allowed_vault_urls=vaults)


def _malformed(location: str, error: InvalidEventError, audit: AuditSink) -> dict[str, Any]:
    """Audit a malformed event (as the Functions trigger does) and describe it.

    The record carries the event's own id (when it has a readable one) under a fresh
    correlation id, never the previous event's; an audit sink failure is reported in the line
    and the replay goes on.
    """

    correlation = bind_correlation(trigger=Trigger.CLI, eventgrid_event_id=error.event_id)
    message = str(redact(str(error)))
    try:
        audit.write(
            AuditRecord(
                event="event.malformed", decision=Decision.IGNORED, trigger=Trigger.CLI,
                event_id=error.event_id, correlation_id=correlation,
                error=f"InvalidEventError: {message}", message=f"replayed from {location}",
            )
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - one failing sink must not end the replay
        message += "; " + str(redact(f"not audited: {type(exc).__name__}: {exc}"))
    return {
        "location": location, "event_id": error.event_id, "certificate": None, "version": None,
        "decision": MALFORMED, "findings": [], "targets": [], "dry_run": None, "error": message,
    }  # fmt: skip


def _handled(location: str, event: KeyVaultEvent, service: EventHandler) -> dict[str, Any]:
    """Handle one event. Any error fails this event only (the service has audited it), except
    a missing or refused credential and invalid settings, which stop the replay.

    Raises:
        AuthorizationError | ConfigError: as above.
    """
    bind_correlation(trigger=Trigger.CLI, eventgrid_event_id=event.event_id or None)
    try:
        body = service.handle(event, trigger=Trigger.CLI).as_dict()
    except (AuthorizationError, ConfigError):
        raise  # every later event would fail alike: stop (the service audited this one)
    except Exception as exc:  # noqa: BLE001 - one bad event must not end a 10,000-event replay
        error = str(redact(f"{type(exc).__name__}: {exc}"))
        body = {"decision": str(Decision.FAILED), "error": error}
    return {
        "location": location, "event_id": event.event_id or None,
        "certificate": event.object_name or None, "version": event.version or None,
        "decision": body["decision"], "findings": body.get("findings", []),
        "targets": body.get("targets", []), "dry_run": body.get("dry_run"), "error": body.get("error"),
    }  # fmt: skip


def run_replay(
    service: EventHandler, audit: AuditSink, items: Iterator[Item], *, as_json: bool
) -> Counter[str]:
    """Replay every item, printing as it goes; returns the decision counts (O(1) memory).

    Raises:
        OSError | RotationError: reading an input failed (one event's failure does not raise).
    """
    # The stream as it is now, before Progress swaps sys.stderr (see cli.replay._Stderr).
    err = Console(file=sys.stderr, soft_wrap=True, highlight=False)
    counts: Counter[str] = Counter()
    columns = (SpinnerColumn(), TextColumn("replaying"), MofNCompleteColumn(), TimeElapsedColumn())
    show = not as_json and sys.stderr.isatty()
    with Progress(*columns, console=err, transient=True, disable=not show) as progress:
        task = progress.add_task("replay", total=None)
        for location, item in items:
            if isinstance(item, InvalidEventError):
                line = _malformed(location, item, audit)
                err.print(f"malformed event at {location}: {line['error']}", markup=False)
            else:
                line = _handled(location, item, service)
                if line["decision"] in {Decision.FAILED, Decision.REJECTED}:
                    why = line["error"] or ", ".join(line["findings"]) or "no findings"
                    err.print(f"{line['decision']} at {location}: {why}", markup=False)
            counts[str(line["decision"])] += 1
            if as_json:
                click.echo(json.dumps(line, separators=(",", ":")))
            progress.advance(task)
    return counts


def summary(counts: Counter[str]) -> Table:
    """The decision counts as a table, in decision order, with a total row."""
    table = Table("decision", "events", title="replay summary")
    for decision in sorted(counts, key=lambda d: _ORDER.index(d) if d in _ORDER else len(_ORDER)):
        table.add_row(decision, str(counts[decision]))
    table.add_row("total", str(sum(counts.values())), style="bold")
    return table
