"""`certrotate demo`: the whole story on the embedded local stack (the logic lives in
``rotation.entrypoints.demo``, which imports the devstack only when the command runs)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from rotation.domain.errors import RotationError

__all__ = ["demo"]


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
    if any step's decision or APIM state is not the expected one (it doubles as a smoke test);
    2 if the audit log cannot be written.
    """
    from rotation import bootstrap  # noqa: PLC0415
    from rotation.entrypoints.demo import run_demo  # noqa: PLC0415 - the devstack only when asked

    ctx.call_on_close(bootstrap.flush_telemetry)  # metrics, when an exporter is configured

    try:  # the log is overwritten anyway: find out now that it cannot be, in one line
        audit_log.write_text("", encoding="utf-8")
    except OSError as exc:
        click.echo(f"cannot write the audit log {audit_log}: {exc.strerror or exc}", err=True)
        ctx.exit(2)
    try:
        ok = run_demo(audit_log=audit_log, strategy=strategy, console=Console(highlight=False))
    except (OSError, RotationError) as exc:
        click.echo(f"the demo could not run: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)
    ctx.exit(0 if ok else 1)
