"""`certrotate reconcile`: the Functions app's reconcile sweep, run by hand.

Calls ``RotationService.reconcile(trigger=Trigger.CLI)``, the sweep behind the ``reconcile``
timer: every certificate an APIM entity references in a configured vault is converged (missed
events are caught) and in-use versions near expiry get their alert records. Wired like
``replay``/``plan`` (``cli.wiring.wire``: settings from the environment, audit and log lines on
stderr). The service raises a retryable ``BackendUpdateError`` only *after* writing every
record, and returns the records only when it does not raise, so the command collects the
records as they are written (a tap on the audit sink) and prints them either way. Exit codes:
0 nothing failed, 1 a certificate or service failed, 2 usage or configuration error.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import click
from rich.console import Console
from rich.table import Table

from rotation.config import Settings
from rotation.domain.errors import RotationError
from rotation.domain.model import AuditRecord, Decision, TargetResult, Trigger
from rotation.entrypoints.cli.wiring import (
    failure_exit_code,
    settings_option,
    stderr_stream,
    verbose_option,
    wire,
)
from rotation.logconfig import bind_correlation, redact

__all__ = ["reconcile"]

_TARGET = "rotation.target"
_ALERTS = frozenset({"certificate.near_expiry", "certificate.expired"})
_CHANGED = frozenset({TargetResult.UPDATED, TargetResult.CREATED, TargetResult.RETIRED})
_WOULD_CHANGE = frozenset({TargetResult.SKIPPED_DRY_RUN})
_KINDS = {  # the table's short name of a record (every other one is a "rotation")
    "rotation.planned": "plan",
    "certificate.near_expiry": "near expiry",
    "certificate.expired": "expired",
    "reconcile.failed": "listing",
}


class _Sweep:
    """An audit sink tap keeping the sweep's records (every one but the per-target records),
    in the order the service writes them: exactly what ``reconcile`` returns."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> None:
        if record.event != _TARGET:
            self.records.append(record)


@click.command()
@click.option("--dry-run", is_flag=True, help="Decide and record, but write nothing to APIM.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per record per line on stdout."
)
@verbose_option
@settings_option
@click.pass_context
def reconcile(ctx: click.Context, dry_run: bool, as_json: bool, verbose: bool) -> None:
    """Run the reconcile sweep now: converge every certificate an APIM entity references in a
    configured vault (catches missed events) and record near-expiry alerts; with ROTATION_AUDIT_ANCHORS set, anchor the audit chains.

    The same sweep as the Functions app's `reconcile` timer, with the same settings. Prints one
    row per record of the sweep (certificate, version, record, decision, findings, targets
    changed) and a summary line; audit lines and diagnostics go to stderr.

    Exit status: 0 when nothing failed (a rejected candidate is a correct outcome); 1 when any
    certificate or APIM service failed (the records are still printed); 2 on a usage or
    configuration error, or when every failure was a missing or refused Azure credential.
    """
    sweep = _Sweep()
    settings, service, _ = wire(ctx, dry_run=dry_run, as_json=as_json, tap=sweep, verbose=verbose)
    bind_correlation(trigger=Trigger.CLI)
    error: str | None = None
    code = 1
    try:
        records: Sequence[AuditRecord] = service.reconcile(trigger=Trigger.CLI)
    except RotationError as exc:  # after every record was written (or a sink failed mid-sweep)
        records = sweep.records
        error = str(redact(f"{type(exc).__name__}: {exc}"))
        code = failure_exit_code(exc)  # 2: a missing or refused credential, bad settings
    err = Console(file=stderr_stream(), soft_wrap=True, highlight=False)
    _report_problems(records, err)
    if as_json:
        for record in records:
            click.echo(json.dumps(record.as_dict(), separators=(",", ":")))
    else:
        Console(highlight=False).print(_table(records, dry_run=settings.dry_run))
    (err if as_json else Console(highlight=False)).print(_summary(records), markup=False)
    if error is not None:
        err.print(f"reconcile failed: {error}", markup=False)
    _anchor(ctx, settings, err)
    failed = error is not None or any(r.decision is Decision.FAILED for r in records)
    ctx.exit(code if failed else 0)


def _anchor(ctx: click.Context, settings: Settings, err: Console) -> None:
    """Anchor every audit chain head, as the timer's sweep does (``ROTATION_AUDIT_ANCHORS``
    with the audit table; nothing otherwise). A failure is one line on stderr and never the
    exit status: the next sweep anchors again."""
    from rotation import bootstrap  # noqa: PLC0415 - the storage SDK only when anchoring
    from rotation.entrypoints.cli.wiring import Wiring  # noqa: PLC0415

    wiring = ctx.find_object(Wiring) or Wiring()
    try:
        anchoring = bootstrap.build_anchoring(
            settings, storage_credential=wiring.storage_credential
        )
        if anchoring is None:
            return
        count = anchoring()
    except Exception as exc:  # noqa: BLE001 - anchoring must not fail the sweep
        reason = redact(f"{type(exc).__name__}: {exc}")
        err.print(f"warning: the audit chains were not anchored: {reason}", markup=False)
        return
    err.print(f"anchored {count} audit chain head(s) in {settings.audit_anchors}", markup=False)


def _report_problems(records: Sequence[AuditRecord], err: Console) -> None:
    """Failed and rejected records and expiry alerts on stderr, with why (as replay does)."""
    for r in records:
        if r.event in _ALERTS:
            err.print(f"{r.event} {r.certificate}: {r.message}", markup=False)
        elif r.certificate is None:  # reconcile.failed: a service could not be listed
            err.print(f"{r.decision}: {r.message}: {r.error or 'no error text'}", markup=False)
        elif r.decision in {Decision.FAILED, Decision.REJECTED}:
            why = r.error or ", ".join(r.findings) or r.message or "no findings"
            err.print(f"{r.decision} {r.certificate}: {why}", markup=False)


def _table(records: Sequence[AuditRecord], *, dry_run: bool) -> Table:
    """One row per record: certificate, version, record kind, decision, findings, and how many
    targets changed (would change, in a dry run). Fits 80 columns; long names fold, never clip."""
    changed = _WOULD_CHANGE if dry_run else _CHANGED
    title = "reconcile (dry run: targets that would change)" if dry_run else "reconcile"
    table = Table(title=title)
    table.add_column("certificate", overflow="fold")
    table.add_column("version", no_wrap=True)
    table.add_column("record", overflow="fold")
    table.add_column("decision", no_wrap=True)
    table.add_column("findings", overflow="fold")
    table.add_column("changed", justify="right", no_wrap=True)
    for r in records:
        table.add_row(
            r.certificate or "-", (r.version or "-")[:8], _KINDS.get(r.event, "rotation"),
            str(r.decision), ", ".join(r.findings) or "-",
            str(sum(t.result in changed for t in r.targets)),
        )  # fmt: skip
    return table


def _summary(records: Sequence[AuditRecord]) -> str:
    """One line: the decisions of the sweep's runs in decision order, then the alerts."""
    counts = Counter(str(r.decision) for r in records if r.event not in _ALERTS)
    order = [str(d) for d in Decision]
    parts = [f"{d} {counts[d]}" for d in order if counts[d]]
    alerts = sum(r.event in _ALERTS for r in records)
    line = f"reconcile summary: {', '.join(parts) or 'nothing bound'}"
    return line + (f"; {alerts} expiry alert(s)" if alerts else "")
