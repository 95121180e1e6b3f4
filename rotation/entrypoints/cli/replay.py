"""`certrotate replay`, `certrotate plan` and `certrotate demo`.

``replay`` streams events (files or an Event Grid dead-letter container) through the same
rotation path the Functions trigger uses, one event in memory at a time (only the decision counts
are kept; the loop lives in ``rotation.entrypoints.replay``), through ``RotationService.batch``:
consecutive events of one certificate share its APIM listing while nothing changed it; ``plan``
shows what a rotation would do now; ``demo`` tells the whole story on the embedded local stack
(the logic lives in ``rotation.entrypoints.demo``). Exit codes: 0 success, 1 a problem found, 2 usage or
configuration error. Diagnostics and audit lines go to stderr, so ``--json`` output on stdout
stays machine-readable.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import click
from rich.console import Console
from rich.table import Table

from rotation.domain.errors import ConfigError, DependencyError, RotationError
from rotation.domain.model import Decision
from rotation.entrypoints.replay import MALFORMED, event_stream, run_replay, summary

if TYPE_CHECKING:
    from rotation.config import Settings
    from rotation.ports import AuditSink
    from rotation.service import RotationService

__all__ = ["COMMANDS", "MALFORMED", "demo", "plan", "replay", "stderr_stream", "wire"]


class _Stderr:
    """``sys.stderr`` looked up on every write (click's runner and rich's progress swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def stderr_stream() -> TextIO:
    """A text stream that always writes to the current ``sys.stderr``."""
    return cast("TextIO", _Stderr())


def wire(
    *, dry_run: bool, as_json: bool, tap: AuditSink | None = None
) -> tuple[Settings, RotationService, AuditSink]:
    """Settings from the environment, logging to stderr, the audit sink and the service.

    ``--dry-run`` forces dry run. ``tap`` also receives every record the service writes (after
    the configured sinks, and even when one of them fails). Any configuration problem is a usage
    error (exit 2).
    """
    from rotation import bootstrap  # noqa: PLC0415 - keeps `certrotate --help` fast
    from rotation.adapters.audit import CompositeAuditSink  # noqa: PLC0415
    from rotation.config import Settings, read_environment  # noqa: PLC0415
    from rotation.logconfig import configure_logging  # noqa: PLC0415

    try:
        settings = Settings.from_env(read_environment())
        if dry_run:
            settings = dataclasses.replace(settings, dry_run=True)
        configure_logging(
            json=True if as_json else None, level=settings.log_level, stream=stderr_stream()
        )
        audit = bootstrap.build_audit_sink(settings)
        if tap is not None:
            audit = CompositeAuditSink(audit, tap)
        return settings, bootstrap.build_service(settings, audit=audit), audit
    except (ConfigError, DependencyError) as exc:
        raise click.UsageError(str(exc)) from exc


# --- replay -------------------------------------------------------------------------------------


@click.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Decide and report, but write nothing to APIM.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per event per line on stdout."
)
@click.option(
    "--deadletter-container", metavar="NAME", help="Replay this Event Grid dead-letter container."
)
@click.option(
    "--connection-string-env",
    metavar="VAR",
    help="Environment variable holding the storage connection string.",
)
@click.option(
    "--prefix", default="", metavar="P", help="Only dead-letter blobs whose names start with P."
)
@click.option(
    "--listing-max-age", type=click.FloatRange(min=0), default=30.0, show_default=True,
    metavar="SECONDS",
    help="How long consecutive events of one certificate may reuse its APIM listing (0: list "
    "afresh for every event, like the Functions trigger).",
)  # fmt: skip
@click.pass_context
def replay(
    ctx: click.Context, /, *, files: tuple[Path, ...], dry_run: bool, as_json: bool,
    deadletter_container: str | None, connection_string_env: str | None, prefix: str,
    listing_max_age: float,
) -> None:  # fmt: skip
    """Replay Key Vault events from FILES and/or an Event Grid dead-letter container.

    FILES may hold a JSON array or object, JSON Lines, either schema (Event Grid or CloudEvents),
    or dead-letter blobs saved as files. Events stream one at a time through the same rotation
    path as the Functions trigger (consecutive events of one certificate reuse its APIM listing
    for up to --listing-max-age seconds while no run changed APIM; writes stay
    compare-and-swaps). A malformed event
    is reported on stderr (file, index, field) and audited, and the replay goes on; so does an
    event whose handling fails.

    Exit status: 0 when no event failed (a rejection is a correct outcome); 1 when any event
    failed OR any input was malformed; 2 on a usage or configuration error.
    """
    if not files and not deadletter_container:
        raise click.UsageError("give at least one FILE or --deadletter-container NAME")
    connection = None
    if deadletter_container:
        if not connection_string_env:
            raise click.UsageError("--deadletter-container needs --connection-string-env VAR")
        connection = _read_env(connection_string_env)
    settings, service, audit = wire(dry_run=dry_run, as_json=as_json)
    items = event_stream(files, deadletter_container, connection, prefix, settings.vaults)
    try:
        handler = service.batch(max_age_seconds=listing_max_age)
        counts = run_replay(handler, audit, items, as_json=as_json)
    except (RotationError, OSError) as exc:  # an input itself failed (unreadable file, listing)
        click.echo(f"replay stopped: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)
    Console(file=sys.stderr if as_json else None).print(summary(counts))
    ctx.exit(1 if counts[str(Decision.FAILED)] or counts[MALFORMED] else 0)


def _read_env(name: str) -> str:
    """The value of environment variable ``name``, read through the one environment reader."""
    from rotation.config import read_environment  # noqa: PLC0415

    value = read_environment().get(name, "").strip()
    if not value:
        raise click.UsageError(f"environment variable {name} is not set or empty")
    return value


# --- plan ---------------------------------------------------------------------------------------


@click.command()
@click.option("--certificate", required=True, metavar="NAME", help="Key Vault certificate name.")
@click.option(
    "--vault", metavar="URL", help="Vault URL (default: the only one in ROTATION_VAULTS)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@click.pass_context
def plan(ctx: click.Context, certificate: str, vault: str | None, as_json: bool) -> None:
    """Show what rotating certificate NAME would do right now, per APIM target. Writes nothing.

    Exit status: 0 when the plan was made; 1 when the candidate would be rejected or the plan
    could not be made (Key Vault or APIM unreachable, certificate not found); 2 on a usage or
    configuration error.
    """
    settings, service, _ = wire(dry_run=True, as_json=as_json)
    if vault is None:
        if len(settings.vaults) != 1:
            raise click.UsageError("several vaults are configured: choose one with --vault URL")
        vault = settings.vaults[0]
    try:
        body = service.plan(vault.rstrip("/"), certificate).as_dict()
    except RotationError as exc:
        click.echo(f"cannot plan {certificate}: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)
    if as_json:
        click.echo(json.dumps(body, separators=(",", ":")))
    else:
        _print_plan(body)
    ctx.exit(1 if body["decision"] in {Decision.REJECTED, Decision.FAILED} else 0)


def _print_plan(body: dict[str, Any]) -> None:
    """The plan as a header line and one table row per target, grouped by APIM service."""
    console = Console(highlight=False)
    head = f"{body['certificate']} in {body['vault']}: candidate {body.get('version') or '-'}"
    console.print(f"{head}, decision {body['decision']}", markup=False)
    for text in (body.get("message"), ", ".join(body.get("findings", []))):
        if text:
            console.print(f"  {text}", markup=False)
    table = Table("service / target", "from", "to", "action", title="planned changes")
    service = None
    for t in sorted(body.get("targets", []), key=lambda t: t["service"]):
        if t["service"] != service:
            service = t["service"]
            table.add_row(service, style="bold")
        target = f"  {t['kind']} {t['name']}"
        table.add_row(target, _tail(t["from"]), _tail(t["to"]), t["result"])
    console.print(table)


def _tail(reference: str | None) -> str:
    """A short form of a secret URL (its version, or ``(versionless)``) or an entity id."""
    if not reference:
        return "-"
    parts = reference.rstrip("/").split("/")
    if "secrets" in parts[:-1]:
        return "(versionless)" if parts[-2] == "secrets" else parts[-1][:12]
    return parts[-1]


# --- demo ---------------------------------------------------------------------------------------


@click.command()
@click.option(
    "--audit-log", type=click.Path(dir_okay=False, path_type=Path),
    default=Path("certrotate-demo-audit.jsonl"), show_default=True,
    help="Where to write the audit trail (JSON Lines; overwritten).",
)  # fmt: skip
@click.option(
    "--strategy", type=click.Choice(["pin", "blue-green"]), default="pin", show_default=True,
    help="How APIM references are moved.",
)  # fmt: skip
@click.pass_context
def demo(ctx: click.Context, audit_log: Path, strategy: str) -> None:
    """The whole story on an embedded local stack, in seconds.

    A new valid version is applied, a duplicate event is already current, a late event for the
    old version is superseded, and a version from an untrusted issuer is rejected. Exit status 1
    if any step's decision or APIM state is not the expected one (it doubles as a smoke test).
    """
    from rotation.entrypoints.demo import run_demo  # noqa: PLC0415 - imports the devstack only when asked

    try:
        ok = run_demo(audit_log=audit_log, strategy=strategy, console=Console(highlight=False))
    except (OSError, RotationError) as exc:
        click.echo(f"the demo could not run: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)
    ctx.exit(0 if ok else 1)


COMMANDS: list[click.Command] = [replay, plan, demo]
