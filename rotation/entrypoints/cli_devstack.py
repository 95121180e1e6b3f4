"""`certrotate devstack`: run the local Key Vault and APIM (ARM) stand-ins in the foreground.

This and the demo are the only places in ``rotation`` that import ``devstack``; the import is
deferred to the command so the CLI (and the Functions app) never load it otherwise.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

__all__ = ["COMMANDS", "devstack"]


@click.command()
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for state.json, ca.pem, devstack.json and env.",
)
@click.option("--ephemeral", is_flag=True, help="Keep state in memory only (nothing persists).")
@click.option(
    "--port-kv", type=click.IntRange(0, 65535), default=0, help="Key Vault port (0: free)."
)
@click.option("--port-arm", type=click.IntRange(0, 65535), default=0, help="ARM port (0: free).")
def devstack(state_dir: Path, ephemeral: bool, port_kv: int, port_arm: int) -> None:
    """Run the Key Vault and APIM (ARM) stand-ins until Ctrl-C / SIGTERM.

    Writes DIR/devstack.json and DIR/env; `set -a; . DIR/env` points certrotate at the stack.
    """
    from devstack.stack import Devstack  # noqa: PLC0415 - only this command needs it

    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Devstack.start(
            state_dir, ephemeral=ephemeral, port_kv=port_kv, port_arm=port_arm
        ) as stack:
            stack.write_files(state_dir)
            click.echo(f"Key Vault  {stack.vault_url}  (vault {stack.vault_name})")
            click.echo(
                f"ARM/APIM   {stack.arm_endpoint}  services: {', '.join(stack.apim_services)}"
            )
            click.echo(f"CA bundle  {stack.ca_bundle}")
            click.echo(f"Wrote {state_dir / 'devstack.json'} and {state_dir / 'env'}")
            click.echo(f"Use it:    set -a; . {state_dir / 'env'}; set +a")
            click.echo("devstack listening; Ctrl-C to stop.")
            stop.wait()
    except OSError as exc:
        raise click.ClickException(f"cannot start the devstack: {exc.strerror or exc}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("devstack stopped.")


COMMANDS: list[click.Command] = [devstack]
