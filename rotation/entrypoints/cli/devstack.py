"""`certrotate devstack`: run the local Key Vault and APIM (ARM) stand-ins in the foreground.

Unless ``--no-seed``, an empty stack is seeded with the sample scene of ``devstack.seed`` (a
persistent state is never re-seeded), so ``set -a; . DIR/env`` is all ``plan`` and ``replay``
need. This and the demo are the only places in ``rotation`` that import ``devstack``; the import
is deferred to the command so the CLI (and the Functions app) never load it otherwise.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from devstack.nginx import Nginx
    from devstack.seed import SeededScene
    from devstack.stack import Devstack

__all__ = ["COMMANDS", "devstack"]


@click.command()
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for state.sqlite, ca.pem, devstack.json and env.",
)
@click.option("--ephemeral", is_flag=True, help="Keep state in memory only (nothing persists).")
@click.option(
    "--port-kv", type=click.IntRange(0, 65535), default=0, help="Key Vault port (0: free)."
)
@click.option("--port-arm", type=click.IntRange(0, 65535), default=0, help="ARM port (0: free).")
@click.option(
    "--no-seed", is_flag=True, help="Start empty: no sample certificates, bindings or events."
)
@click.option(
    "--no-nginx",
    is_flag=True,
    help="Do not serve the sample backends with nginx (made-up URLs, ROTATION_CANARY=off).",
)
def devstack(  # click passes every option by keyword
    *,
    state_dir: Path,
    ephemeral: bool,
    port_kv: int,
    port_arm: int,
    no_seed: bool,
    no_nginx: bool,
) -> None:
    """Run the Key Vault and APIM (ARM) stand-ins until Ctrl-C / SIGTERM.

    Seeds an empty stack with a sample scene (certificate partner-mtls, bindings in both APIM
    services, DIR/trust-anchors.pem, events in DIR/events/) unless --no-seed. When nginx is
    installed (and not --no-nginx), it serves the sample backends on loopback (DIR/nginx/) and
    DIR/env sets ROTATION_CANARY=enforce. Writes DIR/devstack.json and DIR/env;
    `set -a; . DIR/env` points certrotate at the stack.
    """
    from devstack.backend import serve_scene  # noqa: PLC0415 - only this command needs it
    from devstack.stack import Devstack  # noqa: PLC0415

    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if not ephemeral:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(
                f"cannot create the state directory {state_dir}: {exc.strerror or exc}"
            ) from None
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with (
            Devstack.start(
                state_dir, ephemeral=ephemeral, port_kv=port_kv, port_arm=port_arm
            ) as stack,
            serve_scene(
                stack, now=datetime.now(UTC), seed=not no_seed, nginx=not no_nginx
            ) as served,
        ):
            for note in served.notes:
                click.echo(note, err=True)
            stack.write_files(state_dir)
            _announce(stack, state_dir, served.scene, served.nginx)
            stop.wait()
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise click.ClickException(f"cannot start the devstack in {state_dir}: {reason}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("devstack stopped.")


def _announce(
    stack: Devstack, state_dir: Path, scene: SeededScene | None, nginx: Nginx | None
) -> None:
    """Where the stack listens, what was seeded and how to try it (no token, no key)."""
    from devstack.seed import CERTIFICATE, try_it  # noqa: PLC0415

    click.echo(f"Key Vault  {stack.vault_url}  (vault {stack.vault_name})")
    click.echo(f"ARM/APIM   {stack.arm_endpoint}  services: {', '.join(stack.apim_services)}")
    click.echo(f"CA bundle  {stack.ca_bundle}")
    if nginx is not None:
        click.echo(
            f"Backends   nginx {nginx.backend_url('')} (files in {nginx.prefix}), "
            f"ROTATION_CANARY={stack.canary_mode}"
        )
    click.echo(f"Wrote {state_dir / 'devstack.json'} and {state_dir / 'env'}")
    if scene is None:
        click.echo(f"Use it:    set -a; . {state_dir / 'env'}; set +a")
        _warn_moved_vault(stack)
    else:
        click.echo(
            f"Seeded     {CERTIFICATE} v1 bound in every service; v2 imported, not applied; "
            "v3 (untrusted root) imported disabled"
        )
        click.echo(
            f"           trust anchors {state_dir / 'trust-anchors.pem'}, events in {state_dir / 'events'}/"
        )
        click.echo("Try it:")
        for line in try_it(state_dir, scene):
            click.echo(f"  {line}")
    click.echo("devstack listening; Ctrl-C to stop.")


def _warn_moved_vault(stack: Devstack) -> None:
    """A saved state whose bindings name the vault on another port no longer matches."""
    from devstack.seed import referenced_vaults  # noqa: PLC0415

    moved = sorted(referenced_vaults(stack) - {stack.vault_url})
    if moved:
        click.echo(
            f"Note:      saved APIM entities reference {', '.join(moved)}, not {stack.vault_url}; "
            "restart with that --port-kv (and --port-arm) so they match ROTATION_VAULTS again.",
            err=True,
        )


COMMANDS: list[click.Command] = [devstack]
