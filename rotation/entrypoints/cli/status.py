"""`certrotate status`: one row per APIM binding: what it presents, until when, and whether it
is in sync with Key Vault (``RotationService.status``; decided by ``rotation.domain.status``).

Reads only. When the durable audit trail is configured (``ROTATION_AUDIT_TABLE``), each row also
shows the last decision recorded for its certificate. Exit codes: 0 every binding is in sync and
none expires within ``ROTATION_ALERT_DAYS``; 1 some binding needs attention (or the status could
not be read); 2 usage or configuration error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from rotation.domain.errors import ConfigError, RotationError
from rotation.domain.status import BindingStatus, needs_attention, with_last_decisions
from rotation.entrypoints.cli.wiring import (
    failure_exit_code,
    settings_option,
    verbose_option,
    wide_console,
    wire,
)

if TYPE_CHECKING:
    from rotation.adapters.storage import StorageConnection

__all__ = ["status"]

_TARGET = "rotation.target"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per binding per line.")
@verbose_option
@settings_option
@click.pass_context
def status(ctx: click.Context, as_json: bool, verbose: bool) -> None:
    """Show every APIM binding's certificate: version in use, expiry, and whether it is in sync.

    One row per APIM certificate entity that names a certificate in a configured vault: service,
    entity, backends, certificate, version in use, thumbprint, not_after, days left, the newest
    enabled Key Vault version, in sync (yes/no) and, with ROTATION_AUDIT_TABLE set, the last
    decision on record for the certificate. Writes nothing.

    Exit status: 0 when every binding is in sync and none expires within ROTATION_ALERT_DAYS
    days; 1 when a binding is out of sync or expiring, or the status could not be read; 2 on a
    usage or configuration error (a mistyped APIM service id, a missing or refused credential).
    """
    settings, service, _ = wire(ctx, dry_run=True, as_json=as_json, verbose=verbose)
    try:
        rows = service.status(alert_days=settings.alert_days)
        if settings.audit_table and settings.audit_connection:
            rows = with_last_decisions(
                rows,
                _last_decisions(
                    settings.audit_connection, settings.audit_table, rows,
                    verify=str(settings.devstack_ca_bundle) if settings.devstack_ca_bundle else True,
                ),
            )  # fmt: skip
    except ConfigError as exc:  # e.g. a mistyped APIM service id: fix the settings
        click.echo(f"cannot read the status: {'; '.join(exc.problems)}", err=True)
        ctx.exit(2)
    except RotationError as exc:  # a refused or missing credential: exit 2
        click.echo(f"cannot read the status: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(failure_exit_code(exc))
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_dict(), separators=(",", ":")))
    else:
        wide_console().print(_table(rows, alert_days=settings.alert_days))
    attention = needs_attention(rows)
    err = Console(stderr=True, highlight=False)
    if not rows:
        err.print("no APIM certificate entity names a certificate in ROTATION_VAULTS")
    elif attention:
        bad = sum(not r.healthy for r in rows)
        err.print(
            f"{bad} of {len(rows)} binding(s) out of sync or expiring within "
            f"{settings.alert_days} days",
            markup=False,
        )
    ctx.exit(1 if attention else 0)


def _last_decisions(
    connection: StorageConnection, table: str, rows: Sequence[BindingStatus], *, verify: str | bool
) -> dict[tuple[str, str], str]:
    """The decision of the newest canonical record per (vault, certificate) in the trail.

    Raises:
        DependencyError: the table cannot be read.
    """
    from rotation.adapters.tables import iter_audit_records, open_connection_table  # noqa: PLC0415

    client = open_connection_table(connection, table, connection_verify=verify)
    out: dict[tuple[str, str], str] = {}
    for vault, certificate in sorted({(r.vault, r.certificate) for r in rows}):
        newest: tuple[str, str] | None = None
        for record in iter_audit_records(client, certificate=certificate):
            if record.get("event") == _TARGET or not record.get("decision"):
                continue
            if str(record.get("vault") or "").lower() != vault.lower():
                continue
            at = str(record.get("recorded_at") or "")
            if newest is None or at >= newest[0]:
                newest = (at, str(record["decision"]))
        if newest is not None:
            out[(vault, certificate)] = newest[1]
    return out


def _table(rows: Sequence[BindingStatus], *, alert_days: int) -> Table:
    table = Table(title=f"certrotate status (alert within {alert_days} days)")
    for name in (
        "service", "entity", "backends", "certificate", "version", "thumbprint", "not_after",
        "days left", "newest", "in sync", "last decision",
    ):  # fmt: skip
        table.add_column(name, overflow="fold")
    for r in rows:
        version = (r.version or "-")[:8] + (" (versionless)" if r.versionless else "")
        table.add_row(
            r.service, r.entity, ", ".join(r.backends) or "-", r.certificate, version,
            r.thumbprint or "-",
            r.not_after.strftime("%Y-%m-%d %H:%M:%SZ") if r.not_after else "-",
            "-" if r.days_left is None else str(r.days_left) + (" !" if r.expiring else ""),
            (r.newest or "-")[:8], "yes" if r.in_sync else "NO", r.last_decision or "-",
        )  # fmt: skip
    return table
