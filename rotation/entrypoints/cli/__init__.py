"""The ``certrotate`` command line (click).

One module per command in this package (``replay``, ``plan``, ``demo``, ``events``, ``audit``,
``reconcile``, ``devstack``, ``status``, ``validate``), plus ``wiring`` (what the commands that run the
service share). Commands are registered lazily: ``certrotate --help`` lists them from the table
below and imports none of them (so neither the Azure SDKs nor cryptography); a command's module
is imported when that command runs or shows its own help. Exit codes: 0 success, 1 the work
found a problem (rejected, malformed, failed), 2 usage.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Iterator

import click

from rotation import __version__

__all__ = ["COMMANDS", "LazyGroup", "cli", "main", "owns_process", "startup"]

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module in this package, the command's short help, shown by `certrotate --help`)
    "audit": (
        "audit",
        "Read the durable audit trail and verify every record (all audit fields, nothing secret).",
    ),
    "demo": ("demo", "The whole story on an embedded local stack, in seconds."),
    "devstack": (
        "devstack",
        "Run the Key Vault and APIM (ARM) stand-ins until Ctrl-C / SIGTERM.",
    ),
    "events": (
        "events",
        "Parse event FILES (JSON arrays, objects, JSON Lines, dead-letter blobs) and print them.",
    ),
    "plan": ("plan", "Show what rotating certificate NAME would do right now, per APIM target."),
    "probe": (
        "probe",
        "Present BUNDLE to the https backend URL as APIM would, then GET URL's path.",
    ),
    "reconcile": (
        "reconcile",
        (
            "Run the reconcile sweep now: converge every certificate an APIM entity references in "
            "a configured vault (catches missed events) and record near-expiry alerts; with "
            "ROTATION_AUDIT_ANCHORS set, anchor the audit chains."
        ),
    ),
    "replay": (
        "replay",
        "Replay Key Vault events from FILES and/or an Event Grid dead-letter container.",
    ),
    "status": (
        "status",
        (
            "Show every APIM binding's certificate and every inbound identity: version, expiry, "
            "in sync."
        ),
    ),
    "validate": (
        "validate",
        "Validate BUNDLE (PKCS#12, PEM or DER) for use as an APIM client certificate.",
    ),
}
"""Every command, its module and its short help (a test keeps the help equal to the command's)."""


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; ``--help`` lists them from
    ``COMMANDS`` without importing them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted (the order of ``COMMANDS``)."""
        del ctx
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the command's module and return the command (None: no such command)."""
        del ctx
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        with startup():
            module = importlib.import_module(f"{__name__}.{entry[0]}")
        command = getattr(module, cmd_name)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
            raise TypeError(f"{module.__name__}.{cmd_name} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section of ``--help`` as click writes it, from ``COMMANDS`` (nothing is
        imported)."""
        del ctx
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [  # click shortens a stand-in command's help exactly as the real one's
            (name, click.Command(name, help=short).get_short_help_str(limit))
            for name, (_, short) in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="certrotate")
def cli() -> None:
    """Validated, audited rotation of APIM client certificates from Key Vault.

    Run `certrotate demo` to see the whole story on the embedded local stack.
    """


class _Process:
    """Set by ``main``: the command runs in a process of its own."""

    owned = False


def owns_process() -> bool:
    """Whether the command runs in a ``certrotate`` process of its own (``main``), rather than
    inside a caller's (a test's ``CliRunner``): only then may it tune the process-wide garbage
    collector (``startup``)."""
    return _Process.owned


@contextlib.contextmanager
def startup() -> Iterator[None]:
    """A start-up step of a ``certrotate`` process of its own (``owns_process``): importing the
    command's module, and ``wiring.wire`` importing the SDKs and building the clients. No garbage
    collection runs inside (the step allocates tens of thousands of objects that live until
    exit, next to no garbage; the collections they would trigger cost about 70 ms of a replay
    on a small VM), and what it allocated is frozen after it (``gc.freeze``), so the run's own
    collections skip it. Inside a caller's process (tests) the collector is left alone."""
    if not (_Process.owned and gc.isenabled()):
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def main() -> None:
    """Console-script entry point: one command, in a process of its own.

    When the command is done the process's objects are frozen (``gc.freeze``) before the
    interpreter exits: its finalization would otherwise run full collections over everything
    the command imported (about 90,000 objects: 0.2 s of a 0.7 s replay on a small VM) only to
    free memory the operating system takes back anyway. Python does not promise to finalize
    what is alive at exit; everything certrotate writes is flushed and closed by then (``with``
    blocks, logging's and OpenTelemetry's own exit handlers, which still run).
    """
    _Process.owned = True
    try:
        cli()
    finally:
        gc.freeze()
