"""`certrotate --help` is assembled lazily: it lists every command without importing any."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from rotation.entrypoints import cli as cli_package
from rotation.entrypoints.cli import COMMANDS, cli

_PROBE = """
import sys
from rotation.entrypoints.cli import cli
try:
    cli(["--help"])
except SystemExit:
    pass
heavy = ("azure", "cryptography", "rich", "httpx", "structlog", "devstack")
print(",".join(sorted({m.split(".")[0] for m in sys.modules if m.startswith(heavy)})))
print(",".join(sorted(m for m in sys.modules if m.startswith("rotation.entrypoints.cli."))))
"""


def test_help_imports_no_sdk_no_cryptography_and_no_command_module():
    """A fresh interpreter running `certrotate --help` loads none of the heavy libraries."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )

    *_, heavy, commands = done.stdout.splitlines()
    assert (heavy, commands) == ("", "")


def test_help_lists_every_command_with_its_own_short_help():
    """The table --help is drawn from holds each command's real short help, under its name."""
    for name, (module, short) in COMMANDS.items():
        command = cli.get_command(click.Context(cli), name)

        assert command is not None, name
        assert command.name == name
        assert command.get_short_help_str(limit=10_000) == short, name
        assert command.callback is not None
        assert command.callback.__module__ == f"{cli_package.__name__}.{module}"


def test_help_output_lists_the_commands_sorted():
    """`certrotate --help` shows every command in alphabetical order."""
    result = CliRunner().invoke(cli, ["--help"])

    listed = [
        line.split()[0]
        for line in result.output.split("Commands:")[1].splitlines()
        if line.startswith("  ")
    ]
    assert result.exit_code == 0
    assert listed == sorted(COMMANDS)


def test_unknown_command_is_a_usage_error():
    """A name that is not in the table is refused like click refuses any unknown command."""
    result = CliRunner().invoke(cli, ["rotate"])

    assert result.exit_code == 2
    assert "No such command 'rotate'" in result.output
