"""The README's command table lists every command and every option each command has."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from rotation.entrypoints.cli import COMMANDS, cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _row(command: str) -> str:
    rows = [
        line
        for line in README.splitlines()
        if re.match(rf"\| `certrotate {re.escape(command)}[ `]", line)
    ]
    assert len(rows) == 1, f"README has {len(rows)} rows for certrotate {command}"
    return rows[0].split(" | ", 1)[0]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_in_the_commands_row(name):
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    options = {
        opt
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    }

    row = _row(name)

    assert {opt for opt in options if not re.search(rf"{re.escape(opt)}\b", row)} == set()
