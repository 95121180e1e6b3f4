"""`certrotate plan`: what a rotation of one certificate would do right now, per APIM target.

Reads only (``RotationService.plan``); nothing is written or recorded. Exit codes: 0 the plan
was made, 1 the candidate would be rejected or the plan could not be made, 2 usage or
configuration error.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from rotation.domain.errors import CertificateNotFoundError, ConfigError, RotationError
from rotation.domain.model import Decision
from rotation.entrypoints.cli.wiring import (
    failure_exit_code,
    settings_option,
    verbose_option,
    wire,
)

__all__ = ["plan"]

_SHA1_HEX = 40  # a policy target's from/to: comma-separated SHA-1 thumbprints

_WOULD = {  # what the plan says, conditionally: nothing has happened
    Decision.APPLIED: "a rotation would apply it (decision applied)",
    Decision.ALREADY_CURRENT: "every binding already presents it (decision already_current)",
    Decision.SUPERSEDED: "the bindings use a newer version (decision superseded)",
    Decision.REJECTED: "a rotation would reject it (decision rejected)",
    Decision.DEFERRED: "a rotation would defer it (decision deferred)",
    Decision.IGNORED: "a rotation would do nothing (decision ignored)",
    Decision.FAILED: "a rotation would fail (decision failed)",
}


@click.command()
@click.option("--certificate", required=True, metavar="NAME", help="Key Vault certificate name.")
@click.option(
    "--vault", metavar="URL", help="Vault URL (default: the only one in ROTATION_VAULTS)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@verbose_option
@settings_option
@click.pass_context
def plan(
    ctx: click.Context, certificate: str, vault: str | None, as_json: bool, verbose: bool
) -> None:
    """Show what rotating certificate NAME would do right now, per APIM target. Writes nothing.

    Exit status: 0 when the plan was made; 1 when the candidate would be rejected or the plan
    could not be made (Key Vault or APIM unreachable, certificate not found); 2 on a usage or
    configuration error (a mistyped APIM service id, a missing or refused Azure credential).
    """
    settings, service, _ = wire(ctx, dry_run=True, as_json=as_json, verbose=verbose)
    if vault is None:
        if len(settings.vaults) != 1:
            raise click.UsageError("several vaults are configured: choose one with --vault URL")
        vault = settings.vaults[0]
    try:
        body = service.plan(vault.rstrip("/"), certificate).as_dict()
    except ConfigError as exc:  # e.g. a mistyped APIM service id: fix the settings
        click.echo(f"cannot plan {certificate}: {'; '.join(exc.problems)}", err=True)
        ctx.exit(2)
    except CertificateNotFoundError as exc:
        click.echo(f"cannot plan {certificate}: {exc}", err=True)
        ctx.exit(1)
    except RotationError as exc:  # a refused or missing credential: exit 2
        click.echo(f"cannot plan {certificate}: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(failure_exit_code(exc))
    if as_json:
        click.echo(json.dumps(body, separators=(",", ":")))
    else:
        _print_plan(body)
    ctx.exit(1 if body["decision"] in {Decision.REJECTED, Decision.FAILED} else 0)


def _print_plan(body: dict[str, Any]) -> None:
    """The plan as a header line and one table row per target, grouped by APIM service."""
    console = Console(highlight=False)
    head = f"{body['certificate']} in {body['vault']}: candidate {body.get('version') or '-'}"
    console.print(f"{head}: {_WOULD[body['decision']]}", markup=False)
    for text in (body.get("message"), ", ".join(body.get("findings", []))):
        if text:
            console.print(f"  {text}", markup=False)
    table = Table("service / target", "from", "to", "would", title="what a rotation would do")
    service = None
    for t in sorted(body.get("targets", []), key=lambda t: t["service"]):
        if t["service"] != service:
            service = t["service"]
            table.add_row(service, style="bold")
        target = f"  {t['kind']} {t['name']}"
        table.add_row(target, _tail(t["from"]), _tail(t["to"]), t["result"])
    console.print(table)


def _tail(reference: str | None) -> str:
    """A short form of a secret URL (its version, or ``(versionless)``), an entity id, or a
    policy target's thumbprints (the first 12 digits of each)."""
    if not reference:
        return "-"
    if "/" not in reference and all(len(t) == _SHA1_HEX for t in reference.split(",")):
        return ",".join(t[:12] for t in reference.split(","))
    parts = reference.rstrip("/").split("/")
    if "secrets" in parts[:-1]:
        return "(versionless)" if parts[-2] == "secrets" else parts[-1][:12]
    return parts[-1]
