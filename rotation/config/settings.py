"""Settings: the ``ROTATION_*`` app settings, validated once, all problems reported together.

This is the only module that reads the process environment (``read_environment``); everything
else is given a mapping. ``Settings.from_env(os.environ)`` is pure: it reads only the mapping it
is given (and checks that the trust-anchor bundle it names exists and holds a certificate), and
raises one ``ConfigError`` listing every missing or invalid setting at once. Secrets
(``audit_connection``, ``lock_connection``, ``devstack_token``) are excluded from ``repr``.

Storage connections are named the Functions way (``rotation.adapters.storage``): a connection
string in ``<NAME>`` or identity-based ``<NAME>__accountName`` / ``__blobServiceUri`` /
``__tableServiceUri``. A feature that is configured (``ROTATION_AUDIT_TABLE``,
``ROTATION_LOCK=blob``) but cannot get a connection is a configuration error, never silently
off. ``ROTATION_ARM_ENDPOINT`` names the cloud (``rotation.domain.clouds``): the ARM token scope,
the Key Vault host suffixes ``ROTATION_VAULTS`` may use, and the storage endpoint suffix.
``ROTATION_TRUST_ANCHORS`` is inline PEM, an absolute path, or a path relative to the app root
(the directory holding ``function_app.py``). The table of settings is in
``docs/settings.md``; the parsers of single values are in ``rotation.config.values``, the
canary's (``ROTATION_CANARY*``) in ``rotation.config.canary``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509

from rotation.adapters.storage import (
    StorageConnection,
    require_connection,
    resolve_first,
)
from rotation.config import values as parse
from rotation.config.canary import DEFAULT_TIMEOUT_SECONDS, canary_settings
from rotation.config.values import SettingsReader, normalize_vault_url
from rotation.domain.canary import CanaryMode
from rotation.domain.clouds import AZURE_PUBLIC, Cloud, cloud_for_arm_endpoint
from rotation.domain.errors import ConfigError
from rotation.domain.model import Strategy

__all__ = [
    "APP_ROOT",
    "MAX_ARM_CONCURRENCY",
    "Settings",
    "log_level_from_env",
    "normalize_vault_url",
    "read_environment",
    "vault_urls_from_env",
]


# The app root: the directory holding function_app.py (the deployed package's root, and the
# repository root in a checkout); relative ROTATION_TRUST_ANCHORS paths are resolved against it.
APP_ROOT = Path(__file__).resolve().parent.parent.parent


# ROTATION_ARM_CONCURRENCY's ceiling: ARM throttles reads per subscription and principal (a
# bucket that refills at a few dozen a second), so more in flight would only queue behind 429s.
MAX_ARM_CONCURRENCY = 32


def read_environment() -> Mapping[str, str]:
    """The process environment; entrypoints pass it to the parsers below."""
    return os.environ


def vault_urls_from_env(mapping: Mapping[str, str]) -> tuple[str, ...]:
    """The normalised ``ROTATION_VAULTS`` (empty when unset), for intake and the CLI.

    Raises:
        ConfigError: an entry is not a bare https URL.
    """
    problems: list[str] = []
    urls: list[str] = []
    for item in parse.csv_items(mapping.get("ROTATION_VAULTS", "")):
        try:
            urls.append(normalize_vault_url(item))
        except ValueError as exc:
            problems.append(f"ROTATION_VAULTS: {exc}")
    if problems:
        raise ConfigError(problems)
    return tuple(urls)


def log_level_from_env(mapping: Mapping[str, str]) -> str:
    """``ROTATION_LOG_LEVEL`` upper-cased, or ``INFO`` when unset or unknown (logging must start)."""
    level = mapping.get("ROTATION_LOG_LEVEL", "INFO").strip().upper()
    return level if level in parse.LOG_LEVELS else "INFO"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Validated certrotate settings (see ``docs/settings.md`` for every field)."""

    vaults: tuple[str, ...]
    apim_services: tuple[str, ...]
    trust_anchors: Path | None  # None when ROTATION_TRUST_ANCHORS is inline PEM
    strategy: Strategy = Strategy.PIN
    dry_run: bool = False
    min_valid_days: int = 14
    clock_skew_seconds: int = 300
    revocation: str = "soft"
    require_eku: bool = False
    pin_identity: bool = False
    retain_previous: int = 2
    max_attempts: int = 3
    near_expiry_days: int = 30
    alert_days: int = 30
    reconcile_schedule: str | None = None  # the timer binding reads the app setting itself
    audit_table: str | None = None
    audit_connection: StorageConnection | None = field(default=None, repr=False)
    audit_anchors: str | None = None  # container the reconcile sweep anchors chain heads in
    arm_endpoint: str = "https://management.azure.com"
    devstack_ca_bundle: Path | None = None
    devstack_token: str | None = field(default=None, repr=False)
    verify_challenge_resource: bool = True
    http_retries: int = 3
    crl_timeout_seconds: float = 5.0
    crl_max_bytes: int = 1048576
    azure_client_id: str | None = None
    log_level: str = "INFO"
    lock: str = "off"
    lock_connection: StorageConnection | None = field(default=None, repr=False)
    lock_container: str = "certrotate-locks"
    lock_wait_seconds: float = 20.0
    listing_cache_seconds: float = 30.0
    canary: CanaryMode = CanaryMode.WARN
    canary_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    canary_server_ca_path: Path | None = None
    canary_server_ca: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    trust_anchors_pem: bytes | None = field(default=None, repr=False)
    inbound_certificates: tuple[tuple[str, str], ...] = ()  # (vault URL, certificate name)
    inbound_overlap_days: int = 7
    arm_concurrency: int = 8  # ARM reads in flight at once when listing policy documents

    def trust_anchor_pem(self) -> bytes:
        """The trust-anchor bundle's PEM (inline, or read from ``trust_anchors``).

        Raises:
            OSError: the bundle file cannot be read.
        """
        if self.trust_anchors_pem is not None:
            return self.trust_anchors_pem
        if self.trust_anchors is None:
            raise FileNotFoundError("ROTATION_TRUST_ANCHORS is not set")
        return self.trust_anchors.read_bytes()

    @property
    def cloud(self) -> Cloud:
        """The cloud ``arm_endpoint`` names (ARM token scope, vault hosts, storage suffix)."""
        return cloud_for_arm_endpoint(self.arm_endpoint)

    @classmethod
    def from_env(cls, mapping: Mapping[str, str], *, app_root: Path | None = None) -> Settings:
        """Build settings from an environment-like mapping (pass ``os.environ`` in production).

        ``app_root`` resolves a relative ``ROTATION_TRUST_ANCHORS`` (default: the directory
        holding ``function_app.py``).

        Raises:
            ConfigError: listing every missing or invalid setting.
        """
        r = SettingsReader(mapping)
        arm_endpoint = r.get("ROTATION_ARM_ENDPOINT", AZURE_PUBLIC.arm_origin, parse.arm_endpoint)
        cloud = cloud_for_arm_endpoint(arm_endpoint)
        audit_table = r.get("ROTATION_AUDIT_TABLE", None, parse.table_name)
        audit_connection = _connection(
            r,
            ("ROTATION_AUDIT_CONNECTION", "AzureWebJobsStorage"),
            cloud,
            feature="ROTATION_AUDIT_TABLE" if audit_table else None,
            service="table",
        )
        lock, lock_connection = _lock_mode(r, cloud)
        canary, canary_problems = canary_settings(mapping)
        r.problems.extend(canary_problems)
        vaults: tuple[str, ...] = r.required("ROTATION_VAULTS", (), parse.vault_list_in(cloud))
        apim_services: tuple[str, ...] = r.required(
            "ROTATION_APIM_SERVICES", (), parse.apim_service_ids
        )
        anchors, anchors_pem = _trust_anchors(r, APP_ROOT if app_root is None else app_root)
        settings = cls(
            vaults=vaults,
            apim_services=apim_services,
            trust_anchors=anchors,
            trust_anchors_pem=anchors_pem,
            strategy=r.get("ROTATION_STRATEGY", Strategy.PIN, parse.strategy),
            dry_run=r.get("ROTATION_DRY_RUN", False, parse.boolean),
            min_valid_days=r.get("ROTATION_MIN_VALID_DAYS", 14, parse.int_at_least(0)),
            clock_skew_seconds=r.get("ROTATION_CLOCK_SKEW_SECONDS", 300, parse.int_at_least(0)),
            revocation=r.get("ROTATION_REVOCATION", "soft", parse.choice(parse.REVOCATION)),
            require_eku=r.get("ROTATION_REQUIRE_EKU", False, parse.boolean),
            pin_identity=r.get("ROTATION_PIN_IDENTITY", False, parse.boolean),
            retain_previous=r.get("ROTATION_RETAIN_PREVIOUS", 2, parse.int_at_least(1)),
            max_attempts=r.get("ROTATION_MAX_ATTEMPTS", 3, parse.int_at_least(1)),
            near_expiry_days=r.get("ROTATION_NEAR_EXPIRY_DAYS", 30, parse.int_at_least(1)),
            alert_days=r.get("ROTATION_ALERT_DAYS", 30, parse.int_at_least(1)),
            reconcile_schedule=r.get("ROTATION_RECONCILE_SCHEDULE", None, parse.ncrontab),
            audit_table=audit_table,
            audit_connection=audit_connection,
            arm_endpoint=arm_endpoint,
            audit_anchors=r.get("ROTATION_AUDIT_ANCHORS", None, parse.container_name),
            devstack_ca_bundle=r.get("ROTATION_DEVSTACK_CA_BUNDLE", None, parse.existing_file),
            devstack_token=r.raw("ROTATION_DEVSTACK_TOKEN"),
            verify_challenge_resource=r.get(
                "ROTATION_KEYVAULT_VERIFY_CHALLENGE_RESOURCE", True, parse.boolean
            ),
            http_retries=r.get("ROTATION_HTTP_RETRIES", 3, parse.int_at_least(0)),
            crl_timeout_seconds=r.get("ROTATION_CRL_TIMEOUT_SECONDS", 5.0, parse.positive_float),
            crl_max_bytes=r.get("ROTATION_CRL_MAX_BYTES", 1048576, parse.int_at_least(1)),
            azure_client_id=r.get("AZURE_CLIENT_ID", None, parse.verbatim),
            log_level=r.get("ROTATION_LOG_LEVEL", "INFO", parse.log_level),
            lock=lock,
            lock_connection=lock_connection,
            lock_container=r.get(
                "ROTATION_LOCK_CONTAINER", "certrotate-locks", parse.container_name
            ),
            lock_wait_seconds=r.get("ROTATION_LOCK_WAIT_SECONDS", 20.0, parse.lock_wait),
            listing_cache_seconds=r.get(
                "ROTATION_LISTING_CACHE_SECONDS", 30.0, parse.non_negative_float
            ),
            canary=canary.mode,
            canary_timeout_seconds=canary.timeout_seconds,
            canary_server_ca_path=canary.server_ca_path,
            canary_server_ca=canary.server_ca,
            inbound_certificates=r.get(
                "ROTATION_INBOUND_CERTIFICATES", (), parse.inbound_certificates(vaults)
            ),
            inbound_overlap_days=r.get("ROTATION_INBOUND_OVERLAP_DAYS", 7, parse.int_at_least(1)),
            arm_concurrency=r.get(
                "ROTATION_ARM_CONCURRENCY", 8, parse.int_between(1, MAX_ARM_CONCURRENCY)
            ),
        )
        if r.problems:
            raise ConfigError(r.problems)
        return settings


def _connection(
    r: SettingsReader,
    names: tuple[str, ...],
    cloud: Cloud,
    *,
    feature: str | None,
    service: Literal["blob", "table"],
) -> StorageConnection | None:
    """The first configured connection of ``names``; required (for ``service``) when a
    ``feature`` needs it. Problems join the reader's."""
    try:
        if feature is None:
            return resolve_first(names, r.mapping, endpoint_suffix=cloud.storage_suffix)
        return require_connection(
            names, r.mapping, feature=feature, service=service,
            endpoint_suffix=cloud.storage_suffix,
        )  # fmt: skip
    except ConfigError as exc:
        r.problems.extend(exc.problems)
        return None


def _lock_mode(r: SettingsReader, cloud: Cloud) -> tuple[str, StorageConnection | None]:
    """``ROTATION_LOCK`` (default ``blob`` when the lock connection has a blob endpoint) and its
    connection (``ROTATION_LOCK_CONNECTION``, else ``AzureWebJobsStorage``)."""
    names = ("ROTATION_LOCK_CONNECTION", "AzureWebJobsStorage")
    problems = len(r.problems)
    connection = _connection(r, names, cloud, feature=None, service="blob")
    has_blob = connection is not None and (
        not connection.identity_based or connection.blob_service_uri is not None
    )
    lock = r.get("ROTATION_LOCK", "blob" if has_blob else "off", parse.choice(parse.LOCKS))
    if lock == "blob" and len(r.problems) == problems:
        connection = _connection(r, names, cloud, feature="ROTATION_LOCK=blob", service="blob")
    return lock, connection


def _trust_anchors(r: SettingsReader, app_root: Path) -> tuple[Path | None, bytes | None]:
    """``ROTATION_TRUST_ANCHORS``: the bundle's path, and its PEM when given inline."""
    raw = r.raw("ROTATION_TRUST_ANCHORS")
    if raw is None:
        r.problems.append("ROTATION_TRUST_ANCHORS: required but not set")
        return Path(), None
    try:
        return parse.trust_anchors(raw, app_root=app_root)
    except ValueError as exc:
        r.problems.append(f"ROTATION_TRUST_ANCHORS: {exc}")
        return Path(), None
