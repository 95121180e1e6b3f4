"""Settings: the ``ROTATION_*`` app settings, validated once, all problems reported together.

This is the only module that reads the process environment (``read_environment``); everything
else is given a mapping. ``Settings.from_env(os.environ)`` is pure: it reads only the mapping it
is given (and checks that the trust-anchor bundle it names exists and holds a certificate), and
raises one ``ConfigError`` listing every missing or invalid setting at once. Secrets
(``audit_connection``, ``lock_connection``, ``devstack_token``) are excluded from ``repr``. The table of settings is in
``docs/settings.md``; the parsers of single values are in ``rotation.config.values``, the
canary's (``ROTATION_CANARY*``) in ``rotation.config.canary``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from rotation.config import values as parse
from rotation.config.canary import DEFAULT_TIMEOUT_SECONDS, canary_settings
from rotation.config.values import SettingsReader, normalize_vault_url
from rotation.domain.canary import CanaryMode
from rotation.domain.errors import ConfigError
from rotation.domain.model import Strategy

__all__ = [
    "Settings",
    "log_level_from_env",
    "normalize_vault_url",
    "read_environment",
    "vault_urls_from_env",
]


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
    trust_anchors: Path
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
    audit_connection: str | None = field(default=None, repr=False)
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
    lock_connection: str | None = field(default=None, repr=False)
    lock_container: str = "certrotate-locks"
    lock_wait_seconds: float = 20.0
    canary: CanaryMode = CanaryMode.WARN
    canary_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    canary_server_ca_path: Path | None = None
    canary_server_ca: tuple[x509.Certificate, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, mapping: Mapping[str, str]) -> Settings:
        """Build settings from an environment-like mapping (pass ``os.environ`` in production).

        Raises:
            ConfigError: listing every missing or invalid setting.
        """
        r = SettingsReader(mapping)
        lock, lock_connection = _lock_mode(r)
        canary, canary_problems = canary_settings(mapping)
        r.problems.extend(canary_problems)
        settings = cls(
            vaults=r.required("ROTATION_VAULTS", (), parse.vault_list),
            apim_services=r.required("ROTATION_APIM_SERVICES", (), parse.apim_service_ids),
            trust_anchors=r.required("ROTATION_TRUST_ANCHORS", Path(), parse.trust_anchor_bundle),
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
            audit_table=r.get("ROTATION_AUDIT_TABLE", None, parse.table_name),
            audit_connection=r.raw("ROTATION_AUDIT_CONNECTION") or r.raw("AzureWebJobsStorage"),
            audit_anchors=r.get("ROTATION_AUDIT_ANCHORS", None, parse.container_name),
            arm_endpoint=r.get(
                "ROTATION_ARM_ENDPOINT", "https://management.azure.com", parse.https_url
            ),
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
            canary=canary.mode,
            canary_timeout_seconds=canary.timeout_seconds,
            canary_server_ca_path=canary.server_ca_path,
            canary_server_ca=canary.server_ca,
        )
        if r.problems:
            raise ConfigError(r.problems)
        return settings


def _lock_mode(r: SettingsReader) -> tuple[str, str | None]:
    """``ROTATION_LOCK`` (default ``blob`` when a storage connection is available) and its
    connection (``ROTATION_LOCK_CONNECTION``, else ``AzureWebJobsStorage``)."""
    connection = r.raw("ROTATION_LOCK_CONNECTION") or r.raw("AzureWebJobsStorage")
    lock = r.get("ROTATION_LOCK", "blob" if connection else "off", parse.choice(parse.LOCKS))
    if lock == "blob" and connection is None:
        r.problems.append(
            "ROTATION_LOCK: 'blob' needs ROTATION_LOCK_CONNECTION (or AzureWebJobsStorage)"
        )
    return lock, connection
