"""Composition root: the one place SDK clients, credentials and the service are built.

Entrypoints call ``get_handler()``; tests replace it with ``monkeypatch`` or call
``build_service(settings, ...)`` (or ``build_handler``) with explicit settings and fakes. Nothing here runs at import
time (the adapters and their SDKs are imported inside the builders), so a wrong setting can never
stop the Functions host from indexing the app, and ``--help`` stays fast.

Wiring (``build_service``):

- credential: ``build_credential(devstack_token=..., client_id=AZURE_CLIENT_ID)``: a static token
  for the local stack, else ``DefaultAzureCredential`` (built only when an adapter needs it);
- ``KeyVaultCertificateSource`` and ``ArmApimGateway`` with ``connection_verify`` = the devstack CA
  bundle when set (else system trust), ``retry_total`` = ``http_retries``, the ARM endpoint, the
  ARM token scope of its cloud (``settings.cloud``) and ``verify_challenge_resource`` from the
  settings;
- ``PolicyValidator`` over the trust-anchor bundle with a ``ValidationPolicy`` from the settings
  and ``require_key=True`` (rotations always need the private key);
- audit: ``StructlogAuditSink`` (stdout JSON), plus ``TableAuditSink`` when ``audit_table`` is
  set, over its named storage connection (a connection string or identity-based, resolved by
  the settings), fanned out by ``CompositeAuditSink``;
- lock: ``BlobLeaseLock`` (a blob lease per certificate in ``lock_container``, waiting at most
  ``lock_wait_seconds``) when ``ROTATION_LOCK=blob``, else none; an identity-based storage
  connection gets its token from its own credential (``__credential``/``__clientId``), and the
  devstack CA bundle, when set, is trusted for storage too;
- canary: ``TlsCanary`` over a ``TlsProber`` (``ROTATION_CANARY_TIMEOUT``, the extra server CAs
  of ``ROTATION_CANARY_SERVER_CA``) unless ``ROTATION_CANARY=off``;
- history (``follow``'s last validated version): the durable table when configured, else the
  audit sink itself when it can be read back (a JSON Lines file, memory), else none;
- telemetry: ``get_telemetry()``, built once per process from the environment alone (not the
  settings, so even a configuration error is counted): ``OtelTelemetry`` over the Azure Monitor
  distro or an OTLP exporter when configured, else ``NullTelemetry``
  (``rotation.adapters.telemetry.configure_telemetry``; docs/operations.md);
- ``RotationService`` with every knob mapped from the settings, ``SystemClock``
  (``rotation.adapters.clock``), and the correlation id the entrypoint bound with
  ``rotation.logconfig.bind_correlation``;
- the Functions app's handler (``get_handler``, one per worker process): that service behind
  ``RotationService.batch`` (``build_handler``), so invocations share a certificate's APIM
  listing for ``ROTATION_LISTING_CACHE_SECONDS`` (default 30; 0: the service itself, listing
  afresh for every event).
"""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rotation.adapters.clock import SystemClock
from rotation.domain.errors import BundleFormatError, ConfigError

if TYPE_CHECKING:  # imported lazily at run time: cold start, and no SDK import on --help
    from collections.abc import Callable

    from rotation.config import Settings
    from rotation.ports import (
        ApimGateway,
        AuditSink,
        BackendCanary,
        CertificateSource,
        Clock,
        EventHandler,
        InboundPolicies,
        RotationLock,
        Telemetry,
        ValidationHistory,
        Validator,
    )
    from rotation.service import RotationService

__all__ = [
    "build_anchoring",
    "build_audit_sink",
    "build_canary",
    "build_handler",
    "build_history",
    "build_lock",
    "build_service",
    "build_validator",
    "flush_telemetry",
    "get_handler",
    "get_telemetry",
]


@functools.cache
def get_handler() -> EventHandler:
    """The Functions app's handler, wired to real adapters from the settings (built once per
    worker process, lazily: ``build_handler``).

    Raises:
        ConfigError: the settings are invalid (every problem listed).
    """
    from rotation.config import Settings, read_environment  # noqa: PLC0415 - lazy by design

    return build_handler(Settings.from_env(read_environment()))


def build_handler(settings: Settings, **collaborators: Any) -> EventHandler:
    """The ``EventHandler`` of a long-lived worker: ``build_service(settings, **collaborators)``
    behind ``RotationService.batch`` with ``max_age_seconds=settings.listing_cache_seconds``
    (``ROTATION_LISTING_CACHE_SECONDS``), so invocations for one certificate within that age
    share its APIM listing, as a replay's events do; the service itself when it is 0.

    Raises:
        ConfigError: as ``build_service``.
    """
    service = build_service(settings, **collaborators)
    if settings.listing_cache_seconds == 0:
        return service
    return service.batch(max_age_seconds=settings.listing_cache_seconds)


def build_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    credential: Any = None,
    source: CertificateSource | None = None,
    gateway: ApimGateway | None = None,
    validator: Validator | None = None,
    audit: AuditSink | None = None,
    lock: RotationLock | None = None,
    canary: BackendCanary | None = None,
    history: ValidationHistory | None = None,
    telemetry: Telemetry | None = None,
    inbound: InboundPolicies | None = None,
) -> RotationService:
    """A ``RotationService`` for ``settings``; any collaborator given is used as is
    (``lock=NullLock()`` turns the lock off whatever the settings say). ``inbound`` reads and
    writes the policy documents of ``ROTATION_INBOUND_CERTIFICATES`` (default: ARM, built only
    when inbound certificates are configured).

    Raises:
        ConfigError: the trust-anchor bundle cannot be read or parsed.
        ConfigError: a storage connection cannot be used.
    """
    from rotation.ports import ValidationHistory  # noqa: PLC0415
    from rotation.service import RotationService  # noqa: PLC0415

    wants_inbound = bool(settings.inbound_certificates) and inbound is None
    if source is None or gateway is None or wants_inbound:
        credential = credential or _credential(settings)
    sink = audit or build_audit_sink(settings)
    history = history or build_history(settings)
    if history is None and isinstance(sink, ValidationHistory):
        history = sink
    return RotationService(
        source or _source(settings, credential),
        gateway or _gateway(settings, credential),
        validator or build_validator(settings),
        sink,
        clock or SystemClock(),
        vaults=settings.vaults,
        apim_services=settings.apim_services,
        strategy=settings.strategy,
        dry_run=settings.dry_run,
        retain_previous=settings.retain_previous,
        max_attempts=settings.max_attempts,
        near_expiry_days=settings.near_expiry_days,
        clock_skew=timedelta(seconds=settings.clock_skew_seconds),
        pin_identity=settings.pin_identity,
        correlation=_bound_correlation_id,
        lock=lock or build_lock(settings),
        telemetry=telemetry or get_telemetry(),
        canary=canary or build_canary(settings),
        canary_mode=settings.canary,
        history=history,
        inbound=inbound or (_inbound(settings, credential) if wants_inbound else None),
        inbound_certificates=settings.inbound_certificates,
        inbound_overlap_days=settings.inbound_overlap_days,
    )


def build_canary(settings: Settings) -> BackendCanary | None:
    """``TlsCanary`` over a ``TlsProber`` with the canary's timeout and extra server CAs;
    None when ``ROTATION_CANARY=off`` (nothing is probed, pyOpenSSL is not imported)."""
    from rotation.domain.canary import CanaryMode  # noqa: PLC0415

    if settings.canary is CanaryMode.OFF:
        return None
    from rotation.adapters.canary import TlsCanary, TlsProber  # noqa: PLC0415

    prober = TlsProber(
        timeout=settings.canary_timeout_seconds, server_ca=settings.canary_server_ca
    )
    return TlsCanary(prober)


def build_history(
    settings: Settings, *, storage_credential: Any = None
) -> ValidationHistory | None:
    """The durable table's reader when ``audit_table`` and a connection are set, else None.

    ``storage_credential`` replaces an identity-based connection's own credential (tests).

    Raises:
        ConfigError: the storage connection cannot be used for table storage.
    """
    if not (settings.audit_table and settings.audit_connection):
        return None
    from rotation.adapters.tables import TableValidationHistory  # noqa: PLC0415

    return TableValidationHistory.from_connection(
        settings.audit_connection,
        settings.audit_table,
        credential=storage_credential,
        connection_verify=_verify(settings),
    )


@functools.cache
def get_telemetry() -> Telemetry:
    """The process's ``Telemetry`` (built once, on first use, from the environment: importing
    ``function_app`` sets nothing up)."""
    from rotation.adapters.telemetry import configure_telemetry  # noqa: PLC0415
    from rotation.config import read_environment  # noqa: PLC0415

    return configure_telemetry(read_environment())


def flush_telemetry() -> None:
    """Export pending metrics before a short-lived process exits (nothing when telemetry was
    never set up)."""
    if get_telemetry.cache_info().currsize:
        get_telemetry().flush()


def build_validator(settings: Settings) -> Validator:
    """``PolicyValidator`` over the configured trust anchors (private key always required).

    Raises:
        ConfigError: the trust-anchor bundle cannot be read or parsed.
    """
    from rotation.domain.bundle import parse_certificates  # noqa: PLC0415
    from rotation.domain.policy import RevocationMode, ValidationPolicy  # noqa: PLC0415
    from rotation.domain.validation import PolicyValidator  # noqa: PLC0415

    try:
        anchors = parse_certificates(settings.trust_anchor_pem())
    except (OSError, BundleFormatError) as exc:
        raise ConfigError([f"ROTATION_TRUST_ANCHORS: {exc}"]) from exc
    policy = ValidationPolicy(
        min_remaining_days=settings.min_valid_days,
        clock_skew_seconds=settings.clock_skew_seconds,
        require_eku=settings.require_eku,
        revocation=RevocationMode(settings.revocation),
        require_key=True,
        pin_identity=settings.pin_identity,
    )
    if policy.revocation is RevocationMode.OFF:
        return PolicyValidator(anchors, policy)
    from rotation.adapters.crl import HttpCrlFetcher  # noqa: PLC0415

    fetcher = HttpCrlFetcher(
        timeout=settings.crl_timeout_seconds, max_bytes=settings.crl_max_bytes
    )
    return PolicyValidator(anchors, policy, crl_fetcher=fetcher)


def build_audit_sink(settings: Settings, *, storage_credential: Any = None) -> AuditSink:
    """stdout JSON lines, plus the durable table when ``audit_table`` and a connection are set.

    ``storage_credential`` replaces an identity-based connection's own credential (tests).

    Raises:
        ConfigError: the storage connection cannot be used for table storage.
    """
    from rotation.adapters.audit import CompositeAuditSink, StructlogAuditSink  # noqa: PLC0415

    stdout = StructlogAuditSink()
    if not (settings.audit_table and settings.audit_connection):
        return stdout
    from rotation.adapters.tables import TableAuditSink  # noqa: PLC0415

    table = TableAuditSink.from_connection(
        settings.audit_connection,
        settings.audit_table,
        credential=storage_credential,
        connection_verify=_verify(settings),
    )
    return CompositeAuditSink(stdout, table)


def build_anchoring(
    settings: Settings, *, storage_credential: Any = None
) -> Callable[[], int] | None:
    """What the reconcile sweep runs to anchor every audit chain head (``ROTATION_AUDIT_ANCHORS``
    with the audit table), else None. ``storage_credential`` as for ``build_audit_sink``.

    Raises:
        ConfigError: the storage connection cannot be used.
    """
    connection = settings.audit_connection
    if not (settings.audit_anchors and settings.audit_table and connection):
        return None
    from rotation.adapters.anchors import AnchorLog, anchor_chains  # noqa: PLC0415
    from rotation.adapters.storage import container_client  # noqa: PLC0415
    from rotation.adapters.tables import open_connection_table  # noqa: PLC0415

    table = open_connection_table(
        connection, settings.audit_table, credential=storage_credential,
        connection_verify=_verify(settings),
    )  # fmt: skip
    container = container_client(
        connection, settings.audit_anchors, credential=storage_credential,
        connection_verify=_verify(settings),
    )  # fmt: skip
    return functools.partial(anchor_chains, table, AnchorLog(container), SystemClock())


def build_lock(settings: Settings, *, storage_credential: Any = None) -> RotationLock | None:
    """The ``BlobLeaseLock`` when ``ROTATION_LOCK=blob`` (no call is made until a rotation), else
    None. ``storage_credential`` replaces an identity-based connection's own credential (tests).

    Raises:
        ConfigError: the lock connection cannot be used for blob storage (no secret shown).
    """
    if settings.lock != "blob" or not settings.lock_connection:
        return None
    from rotation.adapters.locks import BlobLeaseLock  # noqa: PLC0415

    return BlobLeaseLock.from_connection(
        settings.lock_connection,
        settings.lock_container,
        wait_seconds=settings.lock_wait_seconds,
        retries=settings.http_retries,
        credential=storage_credential,
        connection_verify=_verify(settings),
    )


def _credential(settings: Settings) -> Any:
    from rotation.adapters.credentials import build_credential  # noqa: PLC0415

    return build_credential(
        devstack_token=settings.devstack_token, client_id=settings.azure_client_id
    )


def _verify(settings: Settings) -> str | bool:
    return str(settings.devstack_ca_bundle) if settings.devstack_ca_bundle else True


def _source(settings: Settings, credential: Any) -> CertificateSource:
    from rotation.adapters.keyvault import KeyVaultCertificateSource  # noqa: PLC0415

    return KeyVaultCertificateSource(
        credential,
        connection_verify=_verify(settings),
        verify_challenge_resource=settings.verify_challenge_resource,
        retry_total=settings.http_retries,
    )


def _gateway(settings: Settings, credential: Any) -> ApimGateway:
    from rotation.adapters.apim import ArmApimGateway  # noqa: PLC0415

    return ArmApimGateway(
        credential,
        base_url=settings.arm_endpoint,
        credential_scope=settings.cloud.arm_scope,
        connection_verify=_verify(settings),
        retry_total=settings.http_retries,
    )


def _inbound(settings: Settings, credential: Any) -> InboundPolicies:
    # Written alongside (issue 15); until it lands, the import is the only unresolved name.
    from rotation.adapters.policies import (  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415
        ArmInboundPolicies,
    )

    return ArmInboundPolicies(  # type: ignore[no-any-return, unused-ignore]
        credential,
        concurrency=settings.arm_concurrency,
        base_url=settings.arm_endpoint,
        credential_scope=settings.cloud.arm_scope,
        connection_verify=_verify(settings),
        retry_total=settings.http_retries,
    )


def _bound_correlation_id() -> str:
    """The correlation id the entrypoint bound to the log context, else a fresh uuid4."""
    import structlog  # noqa: PLC0415

    bound = structlog.contextvars.get_contextvars().get("correlation_id")
    return str(bound) if bound else str(uuid.uuid4())
