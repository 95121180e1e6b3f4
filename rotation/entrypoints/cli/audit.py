"""`certrotate audit`: read the durable trail and verify it.

Reads an Azure Tables table or JSON-lines audit logs and checks that every record carries every
audit field (``rotation.adapters.audit.AUDIT_FIELDS``; ``docs/architecture.md``, "Audit record")
and no secret material. ``--verify`` instead walks each certificate's hash chain in the table
(``rotation.domain.chain``) and reports every break with its position. Exit codes: 0 all good
(every chain intact), 1 a record failing verification (a chain broken), 2 usage.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from rotation.adapters.audit import AUDIT_FIELDS
from rotation.domain.chain import Break, BreakKind, ChainVerifier, Link
from rotation.domain.errors import ConfigError, DependencyError, InvalidEventError
from rotation.domain.model import Decision, TargetKind, TargetResult, Trigger
from rotation.entrypoints.cli.wiring import (
    audit_table_client,
    command_environment,
    settings_option,
    storage_connection,
    wide_console,
)
from rotation.intake.jsonstream import JsonStream
from rotation.logconfig import redact

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient

    from rotation.adapters.storage import StorageConnection
    from rotation.adapters.tables import ChainItem

__all__ = ["audit", "verify_record"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_AUDIT_CONNECTIONS = ("ROTATION_AUDIT_CONNECTION", "AzureWebJobsStorage")


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """``--since``: an ISO 8601 date or time, with ``Z`` or an offset (none: UTC), as an aware
    UTC datetime."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-03-02, 2026-03-02T08:15:00Z, "
            "2026-03-02T09:15:00+01:00)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


ADDED_FIELDS = frozenset({"topic"})
"""Audit fields added after records were first written: records from before them lack them,
and that is not a problem (every record written since carries them)."""


def verify_record(record: dict[str, object]) -> list[str]:
    """Problems with one audit record: missing fields (``AUDIT_FIELDS``), values outside the
    vocabulary (decision, trigger, each target's kind and result), secret-looking content."""
    problems = [
        f"missing field {name!r}"
        for name in AUDIT_FIELDS
        if name not in record and name not in ADDED_FIELDS
    ]
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
@settings_option
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
@click.option("--since", callback=_since, metavar="ISO",
              help="Only records at or after this time: ISO 8601, e.g. 2026-03-02, "
              "2026-03-02T08:15:00Z or 2026-03-02T09:15:00+01:00 (no offset: UTC).")  # fmt: skip
@click.option(
    "--verify",
    is_flag=True,
    help="Verify each certificate's hash chain in the table; report every break.",
)
@click.option(
    "--anchors",
    metavar="CONTAINER",
    help="With --verify: also check the chains against the heads anchored in CONTAINER.",
)
@click.option("--anchor", "anchor_to", metavar="CONTAINER",
              help="Append every chain head to today's anchor blob in CONTAINER, then exit.")  # fmt: skip
def audit(
    *,
    table: str | None,
    connection_name: str | None,
    connection_string_env: str | None,
    files: tuple[Path, ...],
    as_json: bool,
    certificate: str | None,
    since: datetime | None,
    verify: bool,
    anchors: str | None,
    anchor_to: str | None,
) -> None:
    """Read the durable audit trail and verify every record (all audit fields, nothing secret).

    The fields are listed in docs/architecture.md ("Audit record").
    """
    if verify or anchors or anchor_to:
        table = _verify_table(table, files)
        ctx = click.get_current_context()
        connection = storage_connection(
            names=(connection_name,) if connection_name else _AUDIT_CONNECTIONS,
            connection_string_env=connection_string_env, feature="--verify", service="table",
        )  # fmt: skip
        client = audit_table_client(ctx, connection, table)
        containers = functools.partial(_container, ctx, connection)
        _chains(client, containers, certificate, since,
                as_json=as_json, verify=verify, anchors=anchors, anchor_to=anchor_to)  # fmt: skip
        return
    table = table or (None if files else command_environment().get("ROTATION_AUDIT_TABLE"))
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


def _verify_table(table: str | None, files: tuple[Path, ...]) -> str:
    if files:
        raise click.UsageError("--verify reads the table's chains; it does not take --file")
    table = table or command_environment().get("ROTATION_AUDIT_TABLE")
    if not table:
        raise click.UsageError("give --table NAME (or set ROTATION_AUDIT_TABLE) to --verify")
    return table


def _container(ctx: click.Context, connection: StorageConnection, name: str) -> ContainerClient:
    """The blob container ``name`` over the audit table's connection (the anchors)."""
    from rotation.adapters.storage import container_client  # noqa: PLC0415 - SDK on use
    from rotation.entrypoints.cli.wiring import Wiring  # noqa: PLC0415

    wiring = ctx.find_object(Wiring) or Wiring()
    try:
        return container_client(
            connection, name, credential=wiring.storage_credential,
            connection_verify=wiring.storage_verify,
        )  # fmt: skip
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def _chains(
    client: TableClient,
    containers: Callable[[str], ContainerClient],
    certificate: str | None,
    since: datetime | None,
    *,
    as_json: bool,
    verify: bool,
    anchors: str | None,
    anchor_to: str | None,
) -> None:
    if anchor_to:
        if verify:
            raise click.UsageError("--anchor CONTAINER writes anchors; run --verify on its own")
        _anchor(client, containers(anchor_to), anchor_to)
        return
    if not verify:
        raise click.UsageError("--anchors CONTAINER goes with --verify")
    anchor_log = containers(anchors) if anchors else None
    _verify(client, anchor_log, certificate, since, as_json=as_json)


def _anchor(client: TableClient, anchors: ContainerClient, container: str) -> None:
    """Append every chain head of the table to today's blob in ``container``."""
    from rotation.adapters.anchors import AnchorLog  # noqa: PLC0415 - SDK import only when asked
    from rotation.adapters.clock import SystemClock  # noqa: PLC0415
    from rotation.adapters.tables import iter_chain_heads  # noqa: PLC0415

    try:
        count = AnchorLog(anchors).append(iter_chain_heads(client), SystemClock().now())
    except DependencyError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"anchored {count} chain head(s) in {container}", err=True)


def _verify(
    client: TableClient,
    anchors: ContainerClient | None,
    certificate: str | None,
    since: datetime | None,
    *,
    as_json: bool,
) -> None:
    """Stream every chain (one partition at a time, constant memory), print each break as found
    and a summary per chain; exit 1 when any chain is broken."""
    from rotation.adapters.anchors import AnchorLog  # noqa: PLC0415 - SDK import only when asked
    from rotation.adapters.tables import iter_chain_items  # noqa: PLC0415

    items = iter_chain_items(client, certificate=certificate, since=since)
    try:
        anchored = AnchorLog(anchors).read() if anchors is not None else {}
        chains, broken = _walk(items, partial=since is not None, as_json=as_json,
                               anchored=anchored)  # fmt: skip
        if certificate is None and since is None:
            for chain in anchored:  # anchored chains the walk never met: deleted whole
                _emit_break(Break(BreakKind.ANCHOR, chain, "head", None,
                                  "the chain was anchored but is not in the table"),
                            as_json=as_json)  # fmt: skip
                chains, broken = chains + 1, broken + 1
    except DependencyError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{chains} chain(s), {broken} broken", err=True)
    if broken:
        raise SystemExit(1)


def _walk(
    items: Iterable[ChainItem],
    *,
    partial: bool,
    as_json: bool,
    anchored: dict[str, dict[int, frozenset[str]]],
) -> tuple[int, int]:
    from rotation.adapters.tables import CHAINED_FIELDS  # noqa: PLC0415 - SDK import only when asked

    current: ChainVerifier | None = None
    chains = broken = 0
    for item in items:
        if current is not None and current.chain != item.chain:
            broken += _close(current, None, as_json=as_json)
            current = None
        if current is None:
            chains += 1
            current = ChainVerifier(item.chain, CHAINED_FIELDS, partial=partial,
                                    anchors=anchored.pop(item.chain, {}))  # fmt: skip
        if item.head:
            broken += _close(current, item.link, as_json=as_json)
            current = None
            continue
        for found in current.record(item.position, item.record, item.link):
            _emit_break(found, as_json=as_json)
    if current is not None:
        broken += _close(current, None, as_json=as_json)
    return chains, broken


def _close(verifier: ChainVerifier, head: Link | None, *, as_json: bool) -> bool:
    """Check the head, print the chain's summary; True when the chain is broken."""
    for found in verifier.finish(head):
        _emit_break(found, as_json=as_json)
    status = "broken" if verifier.breaks else "intact"
    if as_json:
        click.echo(json.dumps({
            "chain": verifier.chain, "status": status, "records": verifier.records,
            "unchained": verifier.unchained, "breaks": verifier.breaks,
        }))  # fmt: skip
    else:
        click.echo(
            f"{verifier.chain}: {status}: {verifier.records} record(s), "
            f"{verifier.unchained} unchained, {verifier.breaks} break(s)"
        )
    return bool(verifier.breaks)


def _emit_break(found: Break, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"break": found.as_dict()}))
    else:
        seq = "" if found.seq is None else f" seq {found.seq}"
        click.echo(f"{found.chain} {found.position}{seq}: {found.kind}: {found.detail}")
