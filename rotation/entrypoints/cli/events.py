"""`certrotate events`: the dry front half of replay.

Streams each file through the same intake as the Functions trigger and prints what certrotate
would act on. Exit codes: 0 all good, 1 a malformed event, 2 usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from rotation.config import normalize_vault_url, read_environment, vault_urls_from_env
from rotation.domain.errors import ConfigError, InvalidEventError
from rotation.domain.model import KeyVaultEvent
from rotation.entrypoints.cli.wiring import wide_console
from rotation.intake.events import iter_file_events

__all__ = ["event_to_dict", "events"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def event_to_dict(event: KeyVaultEvent) -> dict[str, object]:
    """The JSON shape ``certrotate events --json`` prints for one event."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    dl = event.deadletter
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema": event.schema,
        "vault_name": event.vault_name,
        "vault_url": event.vault_url,
        "object_type": event.object_type,
        "object_name": event.object_name,
        "version": event.version,
        "not_before": iso(event.not_before),
        "expires": iso(event.expires),
        "event_time": iso(event.event_time),
        "deadletter": (
            {"reason": dl.reason, "attempts": dl.attempts, "last_outcome": dl.last_outcome}
            if dl
            else None
        ),
        "disposition": str(event.disposition),
    }


def _allowed_vaults(vaults: tuple[str, ...]) -> tuple[str, ...]:
    try:
        if vaults:
            return tuple(normalize_vault_url(v) for v in vaults)
        return vault_urls_from_env(read_environment())
    except (ValueError, ConfigError) as exc:
        raise click.BadParameter(str(exc), param_hint="--vault / ROTATION_VAULTS") from None


@click.command("events")
@click.argument("files", nargs=-1, required=True, type=_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.option(
    "--vault",
    "vaults",
    multiple=True,
    metavar="URL",
    help="Also accept events whose data.Id is on this vault URL (default: ROTATION_VAULTS).",
)
def events(files: tuple[Path, ...], as_json: bool, vaults: tuple[str, ...]) -> None:
    """Parse event FILES (JSON arrays, objects, JSON Lines, dead-letter blobs) and print them.

    Nothing is rotated: this shows exactly what `replay` would hand to the rotation engine.
    A malformed event (or an unreadable file) is reported on stderr and the rest goes on;
    --json output is a complete JSON array whatever happened. Exit status 1 when anything was
    malformed.
    """
    allowed = _allowed_vaults(vaults)
    table = Table("location", "event type", "vault", "certificate", "version", "disposition")
    failures = 0
    first = True
    if as_json:
        click.echo("[", nl=False)
    try:
        for file, location, item in _items(files, allowed):
            if isinstance(item, InvalidEventError):
                failures += 1
                click.echo(f"{file.parent / _at(location, item)}", err=True)
            elif as_json:
                click.echo(
                    ("\n  " if first else ",\n  ") + json.dumps(event_to_dict(item)), nl=False
                )
                first = False
            else:
                cells = (location, item.event_type, item.vault_name, item.object_name,
                         item.version, str(item.disposition))  # fmt: skip
                table.add_row(*(_cell(cell) for cell in cells))
    finally:  # --json output stays one complete JSON array, whatever happened
        if as_json:
            click.echo("\n]" if not first else "]")

    if not as_json:
        wide_console().print(table)
    if failures:
        click.echo(f"{failures} malformed event(s)", err=True)
        raise SystemExit(1)


def _cell(value: str) -> Text:
    """Event data as a table cell: never rich markup, and no control or other unprintable
    characters (an ``ESC`` sequence from a payload must not reach the terminal)."""
    return Text("".join(c if c.isprintable() else "\ufffd" for c in value))


def _items(
    files: tuple[Path, ...], allowed: tuple[str, ...]
) -> Iterator[tuple[Path, str, KeyVaultEvent | InvalidEventError]]:
    """Every (file, location, event-or-error); a file that cannot be read is one error."""
    for file in files:
        try:
            for location, item in iter_file_events(file, allowed_vault_urls=allowed):
                yield file, location, item
        except OSError as exc:
            why = f"cannot be read ({type(exc).__name__}: {exc.strerror or 'I/O error'})"
            yield file, file.name, InvalidEventError(why)


def _at(location: str, error: InvalidEventError) -> str:
    path = error.path
    where = f"{location}{'' if path.startswith('[') or not path else '.'}{path}"
    return f"{where}: {error.reason}"
