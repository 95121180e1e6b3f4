"""`certrotate replay`: events from files or an Event Grid dead-letter container, streamed.

Events go through the same rotation path the Functions trigger uses, one event in memory at a
time (only the decision counts are kept; the loop lives in ``rotation.entrypoints.replay``),
through ``RotationService.batch``: consecutive events of one certificate share its APIM listing
while nothing changed it. Exit codes: 0 success, 1 a problem found, 2 usage or configuration
error. Diagnostics go to stderr, so ``--json`` output on stdout stays machine-readable; the
audit JSON lines join them only with ``--verbose`` (``--audit-log FILE`` keeps them in a file).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from rotation.domain.errors import RotationError
from rotation.domain.model import Decision
from rotation.entrypoints.cli.to_topic import to_topic_options
from rotation.entrypoints.cli.wiring import (
    deadletter_source,
    failure_exit_code,
    settings_option,
    storage_connection,
    verbose_option,
    wire,
)
from rotation.entrypoints.replay import MALFORMED, event_stream, run_replay, summary

__all__ = ["replay"]


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
    "--connection", "connection_name", default="AzureWebJobsStorage", show_default=True,
    metavar="NAME",
    help="Storage connection of the dead-letter container, Functions style: NAME holds a "
    "connection string, or NAME__accountName / NAME__blobServiceUri (+ __credential, "
    "__clientId) name it identity-based.",
)  # fmt: skip
@click.option(
    "--connection-string-env",
    metavar="VAR",
    help="Environment variable holding a storage connection string (instead of --connection).",
)
@click.option(
    "--prefix", default="", metavar="P", help="Only dead-letter blobs whose names start with P."
)
@click.option(
    "--listing-max-age", type=click.FloatRange(min=0), default=30.0, show_default=True,
    metavar="SECONDS",
    help="How long consecutive events of one certificate may reuse its APIM listing (0: list "
    "afresh for every event; the Functions app's ROTATION_LISTING_CACHE_SECONDS).",
)  # fmt: skip
@to_topic_options
@click.option(
    "--audit-log", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help="Also append every audit record to FILE (JSON Lines).",
)  # fmt: skip
@verbose_option
@settings_option
@click.pass_context
def replay(
    ctx: click.Context, /, *, files: tuple[Path, ...], dry_run: bool, as_json: bool,
    deadletter_container: str | None, connection_name: str, connection_string_env: str | None,
    prefix: str,
    listing_max_age: float, to_topic: str | None, topic_key_env: str | None,
    audit_log: Path | None, verbose: bool,
) -> None:  # fmt: skip
    """Replay Key Vault events from FILES and/or an Event Grid dead-letter container.

    FILES may hold a JSON array or object, JSON Lines, either schema (Event Grid or CloudEvents),
    or dead-letter blobs saved as files. Events stream one at a time through the same rotation
    path as the Functions trigger (consecutive events of one certificate reuse its APIM listing
    for up to --listing-max-age seconds while no run changed APIM; writes stay
    compare-and-swaps). A malformed event
    is reported on stderr (file, index, field) and audited, and the replay goes on; so does an
    event whose handling fails. Failed and rejected events get one line on stderr; the audit
    records themselves go to the configured sinks (the durable table), to --audit-log FILE, and
    on stderr as JSON lines only with --verbose.

    With --to-topic ENDPOINT the events are re-driven instead: published, in the schema they
    arrived in, to an Event Grid topic whose subscription delivers them to the deployed function
    (malformed events and events for vaults outside ROTATION_VAULTS are never sent); exit 0 when
    all were published, 1 when any was refused or malformed, 2 on usage or authentication errors.

    Exit status: 0 when no event failed (a rejection is a correct outcome); 1 when any event
    failed OR any input was malformed; 2 on a usage or configuration error, including a missing
    or refused Azure credential (the replay stops at the first such event).
    """
    if not files and not deadletter_container:
        raise click.UsageError("give at least one FILE or --deadletter-container NAME")
    deadletters = None
    if deadletter_container:
        connection = storage_connection(
            names=(connection_name,), connection_string_env=connection_string_env,
            feature="--deadletter-container", service="blob",
        )  # fmt: skip
        deadletters = deadletter_source(ctx, connection, deadletter_container)
    if to_topic:
        from rotation.entrypoints.cli.to_topic import run_to_topic  # noqa: PLC0415

        ctx.exit(
            run_to_topic(
                files=files, deadletters=deadletters,
                prefix=prefix, endpoint=to_topic, key_env=topic_key_env, dry_run=dry_run,
                as_json=as_json,
            )
        )  # fmt: skip
    if topic_key_env:
        raise click.UsageError("--topic-key-env needs --to-topic")
    tap = None
    if audit_log is not None:
        from rotation.adapters.auditlog import JsonLinesAuditSink  # noqa: PLC0415

        try:  # find out now, in one line, that it cannot be written
            audit_log.touch()
        except OSError as exc:
            click.echo(f"cannot write the audit log {audit_log}: {exc.strerror or exc}", err=True)
            ctx.exit(2)
        tap = JsonLinesAuditSink(audit_log)
    settings, service, audit = wire(
        ctx, dry_run=dry_run, as_json=as_json, tap=tap, audit_lines=verbose, verbose=verbose
    )
    items = event_stream(files, deadletters, prefix, settings.vaults)
    try:
        handler = service.batch(max_age_seconds=listing_max_age)
        counts = run_replay(handler, audit, items, as_json=as_json)
    except (RotationError, OSError) as exc:  # an input failed, or a credential / the settings
        click.echo(f"replay stopped: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(failure_exit_code(exc))
    Console(file=sys.stderr if as_json else None).print(summary(counts))
    ctx.exit(1 if counts[str(Decision.FAILED)] or counts[MALFORMED] else 0)
