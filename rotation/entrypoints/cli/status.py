"""`certrotate status`: one row per APIM binding: what it presents, until when, and whether it
is in sync with Key Vault; then one row per inbound identity (a policy document pinning a
thumbprint of a version of an inbound certificate) (``RotationService.status``; decided by
``rotation.domain.status``).

Reads only. When the durable audit trail is configured (``ROTATION_AUDIT_TABLE``), each row also
shows the last decision recorded for its certificate. Exit codes: 0 every row is healthy; 1 some
binding or inbound identity needs attention (or the status could not be read); 2 usage or
configuration error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from rotation.domain.errors import ConfigError, RotationError
from rotation.domain.status import (
    BindingStatus,
    IdentityStatus,
    StatusRow,
    needs_attention,
    with_last_decisions,
)
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
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per binding or identity per line."
)
@verbose_option
@settings_option
@click.pass_context
def status(ctx: click.Context, as_json: bool, verbose: bool) -> None:
    """Show every APIM binding's certificate and every inbound identity: version, expiry, in sync.

    One row per APIM certificate entity that names a certificate in a configured vault: service,
    entity, backends, certificate, version in use, thumbprint, not_after, days left, the newest
    enabled Key Vault version, in sync (yes/no) and, with ROTATION_AUDIT_TABLE set, the last
    decision on record for the certificate. Then, for ROTATION_INBOUND_CERTIFICATES, a table
    "inbound identities": one row per policy document and thumbprint it pins of a version of an
    inbound certificate: service, scope, policy, certificate, version, thumbprint, not_after,
    days left, newest, in sync (the document pins the newest enabled version), last decision.
    With --json every row carries "kind": "certificate" (a binding) or "policy" (an inbound
    identity). Writes nothing.

    Exit status: 0 when every binding is in sync and none expires within ROTATION_ALERT_DAYS
    days, and every policy document pins the newest enabled version of its inbound certificate
    and the newest identity it pins does not expire within them; 1 when something needs
    attention, or the status could not be read; 2 on a usage or configuration error (a mistyped
    APIM service id, a missing or refused credential).
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
    _report(rows, as_json=as_json, alert_days=settings.alert_days)
    ctx.exit(1 if needs_attention(rows) else 0)


def _report(rows: Sequence[StatusRow], *, as_json: bool, alert_days: int) -> None:
    """Print the rows (tables, or one JSON object per line) and what needs attention on stderr."""
    bindings = [r for r in rows if isinstance(r, BindingStatus)]
    identities = [r for r in rows if isinstance(r, IdentityStatus)]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_dict(), separators=(",", ":")))
    else:
        console = wide_console()
        if bindings or not identities:
            console.print(_table(bindings, alert_days=alert_days))
        if identities:
            console.print(_identities_table(identities, alert_days=alert_days))
    err = Console(stderr=True, highlight=False)
    if not bindings:
        err.print("no APIM certificate entity names a certificate in ROTATION_VAULTS")
    for what, group in (("binding(s)", bindings), ("inbound identity(ies)", identities)):
        bad = sum(not r.healthy for r in group)
        if bad:
            err.print(
                f"{bad} of {len(group)} {what} out of sync or expiring within {alert_days} days",
                markup=False,
            )


def _last_decisions(
    connection: StorageConnection, table: str, rows: Sequence[StatusRow], *, verify: str | bool
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


def _status_table(title: str, *where: str) -> Table:
    """A status table: the service, the columns that say where (``where``), then what is
    pinned there and how it stands."""
    table = Table(title=title)
    for name in (
        "service", *where, "certificate", "version", "thumbprint", "not_after", "days left",
        "newest", "in sync", "last decision",
    ):  # fmt: skip
        table.add_column(name, overflow="fold")
    return table


def _table(rows: Sequence[BindingStatus], *, alert_days: int) -> Table:
    table = _status_table(
        f"certrotate status (alert within {alert_days} days)", "entity", "backends"
    )
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


def _identities_table(rows: Sequence[IdentityStatus], *, alert_days: int) -> Table:
    table = _status_table(
        f"inbound identities (alert within {alert_days} days)", "scope", "policy"
    )
    for r in rows:
        days = "-" if r.days_left is None else str(r.days_left)
        if r.expiring:
            days += " !" if r.current else " (older)"
        table.add_row(
            r.service, r.scope, r.resource, r.certificate, r.version[:8], r.thumbprint,
            r.not_after.strftime("%Y-%m-%d %H:%M:%SZ") if r.not_after else "-", days,
            (r.newest or "-")[:8], "yes" if r.in_sync else "NO", r.last_decision or "-",
        )  # fmt: skip
    return table
