"""What the commands that run the service share: ``Wiring`` (the service and audit-sink
factories, passed as click's context object), ``wire`` (settings, logging, audit, service) and
``settings_option`` (``--settings local.settings.json``, whose ``Values`` override the
environment; ``command_environment`` is what the command then reads).

``certrotate`` runs with ``Wiring()``, whose factories are the composition root's
(``rotation.bootstrap``). Tests hand the command their own factories through click's context
object (``CliRunner().invoke(cli, args, obj=Wiring(...))``) instead of patching the root.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, TypeVar, cast

import click

from rotation.domain.errors import ConfigError, DependencyError

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from rich.console import Console

    from rotation.adapters.blobs import DeadLetterBlobSource
    from rotation.adapters.storage import StorageConnection
    from rotation.config import Settings
    from rotation.ports import AuditSink
    from rotation.service import RotationService

__all__ = [
    "Wiring",
    "audit_table_client",
    "command_environment",
    "deadletter_source",
    "failure_exit_code",
    "read_env",
    "settings_option",
    "stderr_stream",
    "storage_connection",
    "verbose_option",
    "wide_console",
    "wire",
]

_SETTINGS_FILE = "certrotate.settings_file"
_VERBOSE_MARK = "_certrotate_verbose"
_F = TypeVar("_F", bound=Callable[..., Any])


def _remember_settings_file(
    ctx: click.Context, _param: click.Parameter, value: Path | None
) -> None:
    if value is not None:
        ctx.meta[_SETTINGS_FILE] = value


def settings_option(command: _F) -> _F:
    """``--settings FILE``: read app settings from a local.settings.json's ``Values`` as well
    (they override the environment), so the Functions emulator and the CLI share one file."""
    return click.option(
        "--settings",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        metavar="FILE",
        expose_value=False,
        is_eager=True,
        callback=_remember_settings_file,
        help="Read app settings from this local.settings.json's Values (they override the "
        "environment).",
    )(command)


def verbose_option(command: _F) -> _F:
    """``--verbose/-v``: also show the Azure SDK's credential diagnostics (and, for replay, every
    audit record) on stderr."""
    return click.option(
        "--verbose", "-v", is_flag=True,
        help="Also print diagnostics on stderr: the Azure SDK's credential report, and (replay) "
        "every audit record as a JSON line.",
    )(command)  # fmt: skip


def failure_exit_code(exc: BaseException) -> int:
    """2 for what the operator must fix in the configuration (settings, a missing or refused
    credential), else 1."""
    from rotation.domain.errors import (  # noqa: PLC0415
        AuthorizationError,
        BackendUpdateError,
        ConfigError,
    )

    if isinstance(exc, AuthorizationError | ConfigError):
        return 2
    if isinstance(exc, BackendUpdateError):  # a sweep: every part failed for that reason
        parts = [r for r in exc.results if isinstance(r, BaseException)]
        if parts and all(failure_exit_code(r) == 2 for r in parts):  # noqa: PLR2004
            return 2
    return 1


def _credential_diagnostics(*, verbose: bool) -> None:
    """The Azure identity library's report (which credentials it tried, and why each failed) on
    stderr with ``--verbose``, else nothing: the command's own one line says what to do."""
    identity = logging.getLogger("azure.identity")
    for old in [h for h in identity.handlers if getattr(h, _VERBOSE_MARK, False)]:
        identity.removeHandler(old)
    if not verbose:
        identity.setLevel(logging.ERROR)
        return
    handler = logging.StreamHandler(stderr_stream())
    setattr(handler, _VERBOSE_MARK, True)
    identity.addHandler(handler)
    identity.setLevel(logging.WARNING)


def command_environment() -> Mapping[str, str]:
    """The environment, overlaid with the ``Values`` of ``--settings FILE`` when given.

    Raises:
        click.UsageError: the settings file cannot be used (the message names the file and why).
    """
    from rotation.config import read_environment  # noqa: PLC0415
    from rotation.config.localsettings import read_local_settings  # noqa: PLC0415
    from rotation.domain.errors import ConfigError  # noqa: PLC0415

    env = dict(read_environment())
    ctx = click.get_current_context(silent=True)
    path = ctx.meta.get(_SETTINGS_FILE) if ctx is not None else None
    if path is not None:
        try:
            env |= read_local_settings(path)
        except ConfigError as exc:
            raise click.UsageError("; ".join(exc.problems)) from None
    return env


@dataclasses.dataclass
class Wiring:
    """The factories the commands build their collaborators with (None: the composition
    root's). ``build_service(settings, audit=sink)`` returns the ``RotationService``;
    ``build_audit_sink(settings)`` the configured audit sink. ``storage_credential`` and
    ``storage_verify`` replace an identity-based storage connection's own credential and the
    system CA store (tests against an HTTPS Azurite)."""

    build_service: Callable[..., RotationService] | None = None
    build_audit_sink: Callable[[Settings], AuditSink] | None = None
    storage_credential: Any = None
    storage_verify: str | bool = True


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
    """The value of environment variable ``name`` (or of ``--settings FILE``'s ``Values``).

    Raises:
        click.UsageError: it is not set or empty.
    """
    value = command_environment().get(name, "").strip()
    if not value:
        raise click.UsageError(f"environment variable {name} is not set or empty")
    return value


def wire(
    ctx: click.Context,
    *,
    dry_run: bool,
    as_json: bool,
    tap: AuditSink | None = None,
    audit_lines: bool = True,
    verbose: bool = False,
) -> tuple[Settings, RotationService, AuditSink]:
    """Settings from the environment (and ``--settings FILE``), logging to stderr, the audit sink and the service, built
    with the ``Wiring`` in ``ctx`` (the composition root's factories by default).

    ``--dry-run`` forces dry run. ``tap`` also receives every record the service writes (after
    the configured sinks, and even when one of them fails). Any configuration problem is a usage
    error (exit 2). Pending metrics are flushed when the command ends (``flush_telemetry``).
    ``audit_lines=False`` keeps the audit JSON lines off stderr (the sinks still get every record).
    Without ``verbose`` the Azure SDK's credential diagnostics (``DefaultAzureCredential``'s
    multi-line report) stay off stderr: the command reports a failed credential in one line.
    """
    from rotation.entrypoints.cli import startup  # noqa: PLC0415 - the package, loaded

    with startup():
        from rotation import bootstrap  # noqa: PLC0415 - keeps `certrotate --help` fast
        from rotation.adapters.audit import CompositeAuditSink  # noqa: PLC0415
        from rotation.config import Settings  # noqa: PLC0415
        from rotation.logconfig import configure_logging  # noqa: PLC0415

        wiring = ctx.find_object(Wiring) or Wiring()
        ctx.call_on_close(bootstrap.flush_telemetry)
        _credential_diagnostics(verbose=verbose)
        build_sink = wiring.build_audit_sink or bootstrap.build_audit_sink
        build_service: Callable[..., Any] = wiring.build_service or bootstrap.build_service
        try:
            settings = Settings.from_env(command_environment())
            if dry_run:
                settings = dataclasses.replace(settings, dry_run=True)
            configure_logging(
                json=True if as_json else None, level=settings.log_level,
                stream=stderr_stream(), audit_lines=audit_lines,
            )  # fmt: skip
            audit = build_sink(settings)
            if tap is not None:
                audit = CompositeAuditSink(audit, tap)
            return settings, build_service(settings, audit=audit), audit
        except (ConfigError, DependencyError) as exc:
            raise click.UsageError(str(exc)) from exc


def storage_connection(
    *,
    names: tuple[str, ...],
    connection_string_env: str | None,
    feature: str,
    service: Literal["blob", "table"],
) -> StorageConnection:
    """The storage connection a command option asks for: the connection string in
    ``connection_string_env`` when given, else the first configured connection NAME of ``names``
    (Functions style: ``NAME`` or ``NAME__accountName`` / ``__blobServiceUri`` /
    ``__tableServiceUri``, account names completed with the cloud of ``ROTATION_ARM_ENDPOINT``).

    Raises:
        click.UsageError: none is set, or it cannot be used for ``service`` (exit 2; no secret).
    """
    from rotation.adapters.storage import require_connection  # noqa: PLC0415 - on use
    from rotation.domain.clouds import AZURE_PUBLIC, cloud_for_arm_endpoint  # noqa: PLC0415

    env = command_environment()
    try:
        if connection_string_env:
            value = read_env(connection_string_env)
            return require_connection(
                (connection_string_env,), {connection_string_env: value},
                feature=feature, service=service,
            )  # fmt: skip
        try:
            cloud = cloud_for_arm_endpoint(env.get("ROTATION_ARM_ENDPOINT") or "")
        except ValueError:
            cloud = AZURE_PUBLIC
        return require_connection(
            names, env, feature=feature, service=service, endpoint_suffix=cloud.storage_suffix
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def deadletter_source(
    ctx: click.Context, connection: StorageConnection, container: str
) -> DeadLetterBlobSource:
    """The dead-letter container over ``connection``, proven reachable first (one HEAD, no
    retries: a refused or missing credential is a usage error, exit 2, naming the connection).

    Raises:
        click.UsageError: the connection cannot be used (its secret never shown).
    """
    from rotation.adapters.blobs import DeadLetterBlobSource  # noqa: PLC0415 - SDK on use
    from rotation.adapters.storage import check_blob, container_client  # noqa: PLC0415

    wiring = ctx.find_object(Wiring) or Wiring()
    options = {"credential": wiring.storage_credential, "connection_verify": wiring.storage_verify}
    try:
        check_blob(container_client(connection, container, retry_total=0, **options), connection)
        return DeadLetterBlobSource(container_client(connection, container, **options))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def audit_table_client(
    ctx: click.Context, connection: StorageConnection, table: str
) -> TableClient:
    """The audit table over ``connection``, proven reachable first (as ``deadletter_source``).

    Raises:
        click.UsageError: the connection cannot be used (its secret never shown).
    """
    from rotation.adapters.storage import check_table  # noqa: PLC0415 - SDK on use
    from rotation.adapters.tables import open_connection_table  # noqa: PLC0415

    wiring = ctx.find_object(Wiring) or Wiring()
    options = {"credential": wiring.storage_credential, "connection_verify": wiring.storage_verify}
    try:
        check_table(open_connection_table(connection, table, retries=0, **options), connection)
        return open_connection_table(connection, table, **options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
