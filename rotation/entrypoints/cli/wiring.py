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
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

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
    "deadletter_source",
    "read_env",
    "stderr_stream",
    "storage_connection",
    "wide_console",
    "wire",
]


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
    error (exit 2).
    """
    from rotation import bootstrap  # noqa: PLC0415 - keeps `certrotate --help` fast
    from rotation.adapters.audit import CompositeAuditSink  # noqa: PLC0415
    from rotation.config import Settings, read_environment  # noqa: PLC0415
    from rotation.logconfig import configure_logging  # noqa: PLC0415

    wiring = ctx.find_object(Wiring) or Wiring()
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
    from rotation.config import read_environment  # noqa: PLC0415
    from rotation.domain.clouds import AZURE_PUBLIC, cloud_for_arm_endpoint  # noqa: PLC0415

    env = read_environment()
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
