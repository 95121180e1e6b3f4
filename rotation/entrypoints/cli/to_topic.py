"""``certrotate replay --to-topic``: the command body of a re-drive through Event Grid.

``run_to_topic`` is what the ``replay`` command calls when ``--to-topic ENDPOINT`` is given
(the options are declared on ``replay``): it reads the same sources as ``replay`` (FILES and/or
``--deadletter-container``), hands them to ``rotation.entrypoints.redrive.redrive`` with a publisher from
``rotation.adapters.eventgrid``, shows a progress bar on a terminal, prints one line per refused
or malformed event on stderr and a summary (a table, or one JSON object with ``--json``), and
returns the exit code. Only ``ROTATION_VAULTS`` is needed from the settings: a re-drive rotates
nothing here, the deployed function does.

Authentication: the access key from the environment variable named by ``--topic-key-env``, or
else ``DefaultAzureCredential`` (``AZURE_CLIENT_ID`` selects a user-assigned identity; the
devstack's ``ROTATION_DEVSTACK_TOKEN`` and ``ROTATION_DEVSTACK_CA_BUNDLE`` point it at the local
topic stand-in).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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

from rotation.domain.errors import ConfigError, DependencyError

if TYPE_CHECKING:  # the re-drive (and azure.eventgrid) is imported only when --to-topic runs
    from rotation.adapters.blobs import DeadLetterBlobSource
    from rotation.entrypoints.redrive import RawItem, RedriveSummary

__all__ = ["run_to_topic", "summary_table", "to_topic_options"]

F = TypeVar("F", bound=Callable[..., Any])


def to_topic_options(command: F) -> F:
    """``--to-topic ENDPOINT`` and ``--topic-key-env VAR``, for the ``replay`` command."""
    command = click.option(
        "--to-topic", metavar="ENDPOINT",
        help="Re-drive: publish the events to this Event Grid topic endpoint (in their own "
        "schema) instead of rotating here; the deployed function handles them.",
    )(command)  # fmt: skip
    return click.option(
        "--topic-key-env", metavar="VAR",
        help="With --to-topic: environment variable holding the topic's access key (default: "
        "DefaultAzureCredential, which needs the EventGrid Data Sender role).",
    )(command)  # fmt: skip


def _sources(
    files: tuple[Path, ...], deadletters: DeadLetterBlobSource | None, prefix: str
) -> Iterator[RawItem]:
    from rotation.entrypoints.redrive import iter_raw_deadletter, iter_raw_files  # noqa: PLC0415

    yield from iter_raw_files(files)
    if deadletters is not None:
        yield from iter_raw_deadletter(deadletters, prefix)


def summary_table(summary: RedriveSummary) -> Table:
    """The counts as a table (``would publish`` on a dry run)."""
    title = "re-drive summary (dry run: nothing sent)" if summary.dry_run else "re-drive summary"
    table = Table("outcome", "events", title=title)
    table.add_row("would publish" if summary.dry_run else "published", str(summary.published))
    table.add_row("refused", str(len(summary.refused)))
    table.add_row("malformed (never sent)", str(len(summary.malformed)))
    total = summary.published + len(summary.refused) + len(summary.malformed)
    table.add_row("total", str(total), style="bold")
    return table


def run_to_topic(
    *,
    files: tuple[Path, ...],
    deadletters: DeadLetterBlobSource | None,
    prefix: str,
    endpoint: str,
    key_env: str | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Re-drive the events to the topic at ``endpoint``; return the exit code (0, 1 or 2).

    Raises:
        click.UsageError: a setting or option is missing or invalid (exit 2).
    """
    from rotation.adapters.credentials import build_credential  # noqa: PLC0415
    from rotation.adapters.eventgrid import open_publisher  # noqa: PLC0415
    from rotation.config import read_environment, vault_urls_from_env  # noqa: PLC0415

    env = read_environment()
    try:
        vaults = vault_urls_from_env(env)
        credential = None
        if key_env is None:
            credential = build_credential(
                devstack_token=env.get("ROTATION_DEVSTACK_TOKEN") or None,
                client_id=env.get("AZURE_CLIENT_ID") or None,
            )
        publisher = open_publisher(
            endpoint, env=env, key_env=key_env, credential=credential,
            ca_bundle=env.get("ROTATION_DEVSTACK_CA_BUNDLE") or None,
        )  # fmt: skip
    except (ConfigError, DependencyError) as exc:
        raise click.UsageError(str(exc)) from exc
    if not vaults:
        publisher.close()
        raise click.UsageError(
            "ROTATION_VAULTS is not set: only allow-listed vaults are re-driven"
        )
    err = Console(file=sys.stderr, soft_wrap=True, highlight=False)
    columns = (
        SpinnerColumn(),
        TextColumn("re-driving"),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    show = not as_json and sys.stderr.isatty()
    from rotation.entrypoints.redrive import redrive  # noqa: PLC0415

    try:
        with Progress(*columns, console=err, transient=True, disable=not show) as progress:
            task = progress.add_task("redrive", total=None)
            summary = redrive(
                _sources(files, deadletters, prefix), publisher,
                allowed_vault_urls=vaults, dry_run=dry_run,
                progress=lambda n: progress.advance(task, n),
            )  # fmt: skip
    finally:
        publisher.close()
    for problem in summary.malformed:
        err.print(f"malformed (not sent): {problem.reason}", markup=False)
    for problem in summary.refused:
        err.print(f"refused at {problem.location}: {problem.reason}", markup=False)
    for why, text in (("stopped", summary.stopped), ("authentication failed", summary.aborted)):
        if text:
            err.print(f"re-drive {why}: {text}", markup=False)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), separators=(",", ":")))
    else:
        Console().print(summary_table(summary))
    return summary.exit_code
