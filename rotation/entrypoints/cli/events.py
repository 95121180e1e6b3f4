"""`certrotate events` (the dry front half of replay) and `certrotate audit` (read the trail).

``events`` streams each file through the same intake as the Functions trigger and prints what
certrotate would act on. ``audit`` reads the durable trail (an Azure Tables table, or JSON-lines
audit logs) and verifies every record carries the ARCHITECTURE §5 fields and no secret material.
Exit codes: 0 all good, 1 a malformed event / a record failing verification, 2 usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rotation.adapters.audit import AUDIT_FIELDS
from rotation.config import normalize_vault_url, read_environment, vault_urls_from_env
from rotation.domain.errors import ConfigError, DependencyError, InvalidEventError
from rotation.domain.model import Decision, KeyVaultEvent, Trigger
from rotation.intake.events import iter_file_events
from rotation.intake.jsonstream import JsonStream
from rotation.logconfig import redact

__all__ = ["COMMANDS", "audit", "event_to_dict", "events", "verify_record"]

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
        _console().print(table)
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


def _console() -> Console:
    # Piped output is read by people and grep, not an 80-column terminal: do not truncate.
    console = Console()
    return console if console.is_terminal else Console(width=240)


def _at(location: str, error: InvalidEventError) -> str:
    path = error.path
    where = f"{location}{'' if path.startswith('[') or not path else '.'}{path}"
    return f"{where}: {error.reason}"


# --- audit ----------------------------------------------------------------------------------


def verify_record(record: dict[str, object]) -> list[str]:
    """Problems with one audit record: missing §5 fields, bad enums, secret-looking content."""
    problems = [f"missing field {name!r}" for name in AUDIT_FIELDS if name not in record]
    if record.get("decision") not in {str(d) for d in Decision}:
        problems.append("decision is not one of the documented decisions")
    if record.get("trigger") not in {str(t) for t in Trigger}:
        problems.append("trigger is not eventgrid, timer or cli")
    if not isinstance(record.get("event"), str) or not record.get("event"):
        problems.append("event name is empty")
    problems.extend(
        f"field {key!r} holds secret-looking content"
        for key, value in record.items()
        if redact({key: value}) != {key: _plain(value)}
    )
    return problems


def _plain(value: object) -> object:
    # redact() turns tuples into lists; compare like with like.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _file_records(paths: Iterable[Path]) -> Iterator[tuple[str, dict[str, object] | str]]:
    for path in paths:
        with path.open(encoding="utf-8-sig", errors="replace") as stream:
            for location, value in JsonStream(stream, path.name):
                if isinstance(value, InvalidEventError):
                    yield location, f"not JSON ({value.reason})"
                elif not isinstance(value, dict):
                    yield location, "not a JSON object"
                elif value.get("audit") is True or "decision" in value:
                    # structlog lines keep the record's name under "event"; drop log-only keys.
                    for key in ("audit", "level", "logger", "logger_name"):
                        value.pop(key, None)
                    yield location, value


def _table_records(
    table: str, env_var: str, certificate: str | None, since: datetime | None
) -> Iterator[tuple[str, dict[str, object] | str]]:
    from rotation.adapters.tables import iter_audit_records, open_table  # noqa: PLC0415 - SDK import only when asked

    env = read_environment()
    connection = env.get(env_var) or env.get("AzureWebJobsStorage")
    if not connection:
        raise click.UsageError(f"set {env_var} (or AzureWebJobsStorage) to read the audit table")
    records = iter_audit_records(
        open_table(connection, table), certificate=certificate, since=since
    )
    for index, record in enumerate(records):
        yield f"{table}[{index}]", record


def _when(record: dict[str, object]) -> datetime | None:
    raw = record.get("recorded_at") or record.get("timestamp")
    try:
        return datetime.fromisoformat(str(raw)).astimezone(UTC) if raw else None
    except ValueError:
        return None


@click.command("audit")
@click.option("--table", metavar="NAME", help="Azure Tables table (default ROTATION_AUDIT_TABLE).")
@click.option("--connection-string-env", default="ROTATION_AUDIT_CONNECTION", metavar="VAR",
              show_default=True, help="Environment variable holding the storage connection string.")  # fmt: skip
@click.option("--file", "files", multiple=True, type=_FILE, help="JSON-lines audit log to read.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.option("--certificate", metavar="NAME", help="Only records about this certificate.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only records at or after this UTC time.")  # fmt: skip
def audit(
    *,
    table: str | None,
    connection_string_env: str,
    files: tuple[Path, ...],
    as_json: bool,
    certificate: str | None,
    since: datetime | None,
) -> None:
    """Read the durable audit trail and verify every record (§5 fields, nothing secret)."""
    since = since.replace(tzinfo=UTC) if since else None
    table = table or (None if files else read_environment().get("ROTATION_AUDIT_TABLE"))
    if not table and not files:
        raise click.UsageError("give --table NAME or --file FILE (or set ROTATION_AUDIT_TABLE)")
    sources = _file_records(files) if files else iter(())
    if table:
        sources = _chain(sources, _table_records(table, connection_string_env, certificate, since))
    out = Table("time", "event", "decision", "certificate", "version", "trigger", "check")
    failures = 0
    try:
        for location, item in sources:
            record = item if isinstance(item, dict) else {}
            if certificate and isinstance(item, dict) and record.get("certificate") != certificate:
                continue
            when = _when(record)
            if since and isinstance(item, dict) and (when is None or when < since):
                continue
            problems = verify_record(record) if isinstance(item, dict) else [item]
            failures += bool(problems)
            _emit(out, location, record, problems, as_json=as_json)
    except DependencyError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    if not as_json:
        _console().print(out)
    if failures:
        click.echo(f"{failures} record(s) failed verification", err=True)
        raise SystemExit(1)


def _chain(
    *parts: Iterator[tuple[str, dict[str, object] | str]],
) -> Iterator[tuple[str, dict[str, object] | str]]:
    for part in parts:
        yield from part


def _emit(
    out: Table, location: str, raw: dict[str, object], problems: list[str], *, as_json: bool
) -> None:
    # A record that failed the secret check must not print the secret it holds.
    record = {k: redact(v) for k, v in raw.items()}
    for problem in problems:
        click.echo(f"{location}: {problem}", err=True)
    if as_json:
        click.echo(json.dumps({**record, "location": location, "problems": problems}, default=str))
        return
    out.add_row(
        str(record.get("recorded_at") or record.get("timestamp") or ""),
        str(record.get("event", "")), str(record.get("decision", "")),
        str(record.get("certificate") or ""), str(record.get("version") or ""),
        str(record.get("trigger", "")), "ok" if not problems else f"{location}: " + "; ".join(problems),
    )  # fmt: skip


COMMANDS: list[click.Command] = [events, audit]
