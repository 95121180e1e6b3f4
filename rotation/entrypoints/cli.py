"""The ``certrotate`` command line (click).

Each command lives in its own module and exports ``COMMANDS``; this module only assembles the
group. Exit codes: 0 success, 1 the work found a problem (rejected, malformed, failed), 2 usage.
"""

from __future__ import annotations

import click

from rotation import __version__
from rotation.entrypoints import (
    cli_devstack,
    cli_events,
    cli_probe,
    cli_reconcile,
    cli_rotate,
    cli_validate,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="certrotate")
def cli() -> None:
    """Validated, audited rotation of APIM client certificates from Key Vault.

    Run `certrotate demo` to see the whole story on the embedded local stack.
    """


for _module in (cli_validate, cli_events, cli_rotate, cli_reconcile, cli_devstack, cli_probe):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli()
