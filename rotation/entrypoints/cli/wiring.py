"""What the commands that run the service share: ``Wiring`` (the service and audit-sink
factories, passed as click's context object) and ``wire`` (settings, logging, audit, service).

``certrotate`` runs with ``Wiring()``, whose factories are the composition root's
(``rotation.bootstrap``). Tests hand the command their own factories through click's context
object (``CliRunner().invoke(cli, args, obj=Wiring(...))``) instead of patching the root.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, cast

import click

from rotation.domain.errors import ConfigError, DependencyError

if TYPE_CHECKING:
    from rich.console import Console

    from rotation.config import Settings
    from rotation.ports import AuditSink
    from rotation.service import RotationService

__all__ = ["Wiring", "read_env", "stderr_stream", "wide_console", "wire"]


@dataclasses.dataclass
class Wiring:
    """The factories the commands build their collaborators with (None: the composition
    root's). ``build_service(settings, audit=sink)`` returns the ``RotationService``;
    ``build_audit_sink(settings)`` the configured audit sink."""

    build_service: Callable[..., RotationService] | None = None
    build_audit_sink: Callable[[Settings], AuditSink] | None = None


class _Stderr:
    """``sys.stderr`` looked up on every write (click's runner and rich's progress swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def stderr_stream() -> TextIO:
    """A text stream that always writes to the current ``sys.stderr``."""
    return cast("TextIO", _Stderr())


def wide_console() -> Console:
    """A rich console for tables on stdout; piped output is read by people and grep, not an
    80-column terminal, so it is not truncated."""
    from rich.console import Console  # noqa: PLC0415 - rich only when a command prints

    console = Console()
    return console if console.is_terminal else Console(width=240)


def read_env(name: str) -> str:
    """The value of environment variable ``name``, read through the one environment reader.

    Raises:
        click.UsageError: it is not set or empty.
    """
    from rotation.config import read_environment  # noqa: PLC0415

    value = read_environment().get(name, "").strip()
    if not value:
        raise click.UsageError(f"environment variable {name} is not set or empty")
    return value


def wire(
    ctx: click.Context, *, dry_run: bool, as_json: bool, tap: AuditSink | None = None
) -> tuple[Settings, RotationService, AuditSink]:
    """Settings from the environment, logging to stderr, the audit sink and the service, built
    with the ``Wiring`` in ``ctx`` (the composition root's factories by default).

    ``--dry-run`` forces dry run. ``tap`` also receives every record the service writes (after
    the configured sinks, and even when one of them fails). Any configuration problem is a usage
    error (exit 2). Pending metrics are flushed when the command ends (``flush_telemetry``).
    """
    from rotation import bootstrap  # noqa: PLC0415 - keeps `certrotate --help` fast
    from rotation.adapters.audit import CompositeAuditSink  # noqa: PLC0415
    from rotation.config import Settings, read_environment  # noqa: PLC0415
    from rotation.logconfig import configure_logging  # noqa: PLC0415

    wiring = ctx.find_object(Wiring) or Wiring()
    ctx.call_on_close(bootstrap.flush_telemetry)
    build_sink = wiring.build_audit_sink or bootstrap.build_audit_sink
    build_service: Callable[..., Any] = wiring.build_service or bootstrap.build_service
    try:
        settings = Settings.from_env(read_environment())
        if dry_run:
            settings = dataclasses.replace(settings, dry_run=True)
        configure_logging(
            json=True if as_json else None, level=settings.log_level, stream=stderr_stream()
        )
        audit = build_sink(settings)
        if tap is not None:
            audit = CompositeAuditSink(audit, tap)
        return settings, build_service(settings, audit=audit), audit
    except (ConfigError, DependencyError) as exc:
        raise click.UsageError(str(exc)) from exc
