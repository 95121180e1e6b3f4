"""`certrotate audit`: read the durable trail and verify it.

Reads an Azure Tables table or JSON-lines audit logs and checks that every record carries every
audit field (``rotation.adapters.audit.AUDIT_FIELDS``; ``docs/architecture.md``, "Audit record")
and no secret material. Exit codes: 0 all good, 1 a record failing verification, 2 usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from rotation.adapters.audit import AUDIT_FIELDS
from rotation.config import read_environment
from rotation.domain.errors import DependencyError, InvalidEventError
from rotation.domain.model import Decision, TargetKind, TargetResult, Trigger
from rotation.entrypoints.cli.wiring import audit_table_client, storage_connection, wide_console
from rotation.intake.jsonstream import JsonStream
from rotation.logconfig import redact

if TYPE_CHECKING:
    from azure.data.tables import TableClient

__all__ = ["audit", "verify_record"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_AUDIT_CONNECTIONS = ("ROTATION_AUDIT_CONNECTION", "AzureWebJobsStorage")


def verify_record(record: dict[str, object]) -> list[str]:
    """Problems with one audit record: missing fields (``AUDIT_FIELDS``), values outside the
    vocabulary (decision, trigger, each target's kind and result), secret-looking content."""
    problems = [f"missing field {name!r}" for name in AUDIT_FIELDS if name not in record]
    if record.get("decision") not in {str(d) for d in Decision}:
        problems.append("decision is not one of the documented decisions")
    if record.get("trigger") not in {str(t) for t in Trigger}:
        problems.append("trigger is not eventgrid, timer or cli")
    if not isinstance(record.get("event"), str) or not record.get("event"):
        problems.append("event name is empty")
    targets = record.get("targets", [])
    for index, target in enumerate(targets if isinstance(targets, list) else [None]):
        if not isinstance(target, dict):
            problems.append(f"targets[{index}] is not an object")
            continue
        if target.get("kind") not in {str(k) for k in TargetKind}:
            problems.append(f"targets[{index}].kind is not one of {', '.join(TargetKind)}")
        if target.get("result") not in {str(r) for r in TargetResult}:
            problems.append(f"targets[{index}].result is not a documented target result")
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
    client: TableClient, table: str, certificate: str | None, since: datetime | None
) -> Iterator[tuple[str, dict[str, object] | str]]:
    from rotation.adapters.tables import iter_audit_records  # noqa: PLC0415 - SDK import only when asked

    records = iter_audit_records(client, certificate=certificate, since=since)
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
@click.option("--connection", "connection_name", metavar="NAME",
              help="Storage connection of the table, Functions style: NAME holds a connection "
              "string, or NAME__accountName / NAME__tableServiceUri (+ __credential, __clientId) "
              "name it identity-based [default: ROTATION_AUDIT_CONNECTION, then "
              "AzureWebJobsStorage, as the app].")  # fmt: skip
@click.option("--connection-string-env", metavar="VAR",
              help="Environment variable holding a storage connection string (instead of "
              "--connection).")  # fmt: skip
@click.option("--file", "files", multiple=True, type=_FILE, help="JSON-lines audit log to read.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.option("--certificate", metavar="NAME", help="Only records about this certificate.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only records at or after this UTC time.")  # fmt: skip
def audit(
    *,
    table: str | None,
    connection_name: str | None,
    connection_string_env: str | None,
    files: tuple[Path, ...],
    as_json: bool,
    certificate: str | None,
    since: datetime | None,
) -> None:
    """Read the durable audit trail and verify every record (all audit fields, nothing secret).

    The fields are listed in docs/architecture.md ("Audit record").
    """
    since = since.replace(tzinfo=UTC) if since else None
    table = table or (None if files else read_environment().get("ROTATION_AUDIT_TABLE"))
    if not table and not files:
        raise click.UsageError("give --table NAME or --file FILE (or set ROTATION_AUDIT_TABLE)")
    sources = _file_records(files) if files else iter(())
    if table:
        connection = storage_connection(
            names=(connection_name,) if connection_name else _AUDIT_CONNECTIONS,
            connection_string_env=connection_string_env, feature="--table", service="table",
        )  # fmt: skip
        client = audit_table_client(click.get_current_context(), connection, table)
        sources = _chain(sources, _table_records(client, table, certificate, since))
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
        wide_console().print(out)
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
