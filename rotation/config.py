"""Settings: the ``ROTATION_*`` app settings, validated once, all problems reported together.

This is the only module that reads the process environment (``read_environment``); everything
else is given a mapping. ``Settings.from_env(os.environ)`` is pure: it reads only the mapping it
is given (and checks that the trust-anchor bundle it names exists and holds a certificate), and
raises one ``ConfigError`` listing every missing or invalid setting at once. Secrets
(``audit_connection``, ``lock_connection``, ``devstack_token``) are excluded from ``repr``. The table of settings is in
``docs/settings.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from rotation.domain.errors import ConfigError
from rotation.domain.model import Strategy

__all__ = [
    "DEFAULT_RECONCILE_SCHEDULE",
    "Settings",
    "log_level_from_env",
    "normalize_vault_url",
    "read_environment",
    "vault_urls_from_env",
]

DEFAULT_RECONCILE_SCHEDULE = "0 */30 * * * *"
_APIM_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ApiManagement/service/[^/]+$",
    re.IGNORECASE,
)
_NCRONTAB_FIELDS = 6
_NCRONTAB_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_REVOCATION = ("off", "soft", "hard")
_LOCKS = ("blob", "off")
_EVENT_GRID_TIMEOUT_SECONDS = 30.0
_T = TypeVar("_T")


def read_environment() -> Mapping[str, str]:
    """The process environment; entrypoints pass it to the parsers below."""
    return os.environ


def normalize_vault_url(value: str) -> str:
    """``https://host[:port]`` with a lower-case host and no trailing slash.

    Raises:
        ValueError: not an https URL with a host and no path, query or fragment.
    """
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not a URL") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"{text!r} must be an https URL with a host")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r} must be a bare vault URL (no path, query or credentials)")
    return f"https://{parts.hostname.lower()}" + (f":{port}" if port else "")


def _csv(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def vault_urls_from_env(mapping: Mapping[str, str]) -> tuple[str, ...]:
    """The normalised ``ROTATION_VAULTS`` (empty when unset), for intake and the CLI.

    Raises:
        ConfigError: an entry is not a bare https URL.
    """
    problems: list[str] = []
    urls: list[str] = []
    for item in _csv(mapping.get("ROTATION_VAULTS", "")):
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
    return level if level in _LOG_LEVELS else "INFO"


class _Reader:
    """Reads one setting at a time, collecting problems instead of raising on the first."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = mapping
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.mapping.get(name)
        return value.strip() if value is not None and value.strip() else None

    def get(self, name: str, default: _T, convert: Callable[[str], _T]) -> _T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except ValueError as exc:
            self.problems.append(f"{name}: {exc}")
            return default

    def required(self, name: str, default: _T, convert: Callable[[str], _T]) -> _T:
        if self.raw(name) is None:
            self.problems.append(f"{name}: required but not set")
            return default
        return self.get(name, default, convert)


def _bool(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a boolean (true/false/1/0/yes/no)")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def convert(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
        if value < minimum:
            raise ValueError(f"{value} is below the minimum {minimum}")
        return value

    return convert


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{raw!r} must be a finite number > 0")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw.lower() not in {c.lower() for c in choices}:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return next(c for c in choices if c.lower() == raw.lower())

    return convert


def _vaults(raw: str) -> tuple[str, ...]:
    urls = tuple(normalize_vault_url(item) for item in _csv(raw))
    if not urls:
        raise ValueError("lists no vault URL")
    return urls


def _apim_services(raw: str) -> tuple[str, ...]:
    ids = tuple(_csv(raw))
    bad = [i for i in ids if not _APIM_ID.match(i)]
    if bad or not ids:
        raise ValueError(
            "each entry must be /subscriptions/{s}/resourceGroups/{rg}/providers/"
            f"Microsoft.ApiManagement/service/{{name}} ({len(bad)} entry(ies) are not)"
        )
    return ids


def _trust_anchors(raw: str) -> Path:
    # Imported here, not at module level: function_app's cold start must not pay for it.
    from cryptography import x509  # noqa: PLC0415

    path = Path(raw)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {raw!r} ({exc.strerror or type(exc).__name__})") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise ValueError(f"{raw!r} holds no PEM certificate")
    return path


def _existing_file(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"{raw!r} is not a readable file")
    return path


def _https_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme.lower() != "https" or not parts.netloc:
        raise ValueError(f"{raw!r} must be an https URL")
    return raw.rstrip("/")


def _ncrontab(raw: str) -> str:
    fields = raw.split()
    if len(fields) != _NCRONTAB_FIELDS or not all(_NCRONTAB_FIELD.match(f) for f in fields):
        raise ValueError(
            f"{raw!r} is not a 6-field NCRONTAB expression ({{s}} {{m}} {{h}} {{d}} {{M}} {{dow}})"
        )
    return " ".join(fields)


def _identity(raw: str) -> str:
    return raw


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
    reconcile_schedule: str = DEFAULT_RECONCILE_SCHEDULE
    audit_table: str | None = None
    audit_connection: str | None = field(default=None, repr=False)
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

    @classmethod
    def from_env(cls, mapping: Mapping[str, str]) -> Settings:
        """Build settings from an environment-like mapping (pass ``os.environ`` in production).

        Raises:
            ConfigError: listing every missing or invalid setting.
        """
        r = _Reader(mapping)
        lock, lock_connection = _lock_mode(r)
        settings = cls(
            vaults=r.required("ROTATION_VAULTS", (), _vaults),
            apim_services=r.required("ROTATION_APIM_SERVICES", (), _apim_services),
            trust_anchors=r.required("ROTATION_TRUST_ANCHORS", Path(), _trust_anchors),
            strategy=r.get("ROTATION_STRATEGY", Strategy.PIN, _strategy),
            dry_run=r.get("ROTATION_DRY_RUN", False, _bool),
            min_valid_days=r.get("ROTATION_MIN_VALID_DAYS", 14, _int_at_least(0)),
            clock_skew_seconds=r.get("ROTATION_CLOCK_SKEW_SECONDS", 300, _int_at_least(0)),
            revocation=r.get("ROTATION_REVOCATION", "soft", _choice(_REVOCATION)),
            require_eku=r.get("ROTATION_REQUIRE_EKU", False, _bool),
            pin_identity=r.get("ROTATION_PIN_IDENTITY", False, _bool),
            retain_previous=r.get("ROTATION_RETAIN_PREVIOUS", 2, _int_at_least(1)),
            max_attempts=r.get("ROTATION_MAX_ATTEMPTS", 3, _int_at_least(1)),
            near_expiry_days=r.get("ROTATION_NEAR_EXPIRY_DAYS", 30, _int_at_least(1)),
            reconcile_schedule=r.get(
                "ROTATION_RECONCILE_SCHEDULE", DEFAULT_RECONCILE_SCHEDULE, _ncrontab
            ),
            audit_table=r.get("ROTATION_AUDIT_TABLE", None, _table_name),
            audit_connection=r.raw("ROTATION_AUDIT_CONNECTION") or r.raw("AzureWebJobsStorage"),
            arm_endpoint=r.get(
                "ROTATION_ARM_ENDPOINT", "https://management.azure.com", _https_url
            ),
            devstack_ca_bundle=r.get("ROTATION_DEVSTACK_CA_BUNDLE", None, _existing_file),
            devstack_token=r.raw("ROTATION_DEVSTACK_TOKEN"),
            verify_challenge_resource=r.get(
                "ROTATION_KEYVAULT_VERIFY_CHALLENGE_RESOURCE", True, _bool
            ),
            http_retries=r.get("ROTATION_HTTP_RETRIES", 3, _int_at_least(0)),
            crl_timeout_seconds=r.get("ROTATION_CRL_TIMEOUT_SECONDS", 5.0, _positive_float),
            crl_max_bytes=r.get("ROTATION_CRL_MAX_BYTES", 1048576, _int_at_least(1)),
            azure_client_id=r.get("AZURE_CLIENT_ID", None, _identity),
            log_level=r.get("ROTATION_LOG_LEVEL", "INFO", _log_level),
            lock=lock,
            lock_connection=lock_connection,
            lock_container=r.get("ROTATION_LOCK_CONTAINER", "certrotate-locks", _container_name),
            lock_wait_seconds=r.get("ROTATION_LOCK_WAIT_SECONDS", 20.0, _lock_wait),
        )
        if r.problems:
            raise ConfigError(r.problems)
        return settings


def _strategy(raw: str) -> Strategy:
    try:
        return Strategy(raw.lower())
    except ValueError:
        raise ValueError(f"{raw!r} is not one of pin, blue-green") from None


def _log_level(raw: str) -> str:
    return _choice(_LOG_LEVELS)(raw).upper()


def _table_name(raw: str) -> str:
    # Azure Tables: 3-63 alphanumeric characters, starting with a letter.
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", raw):
        raise ValueError(
            f"{raw!r} is not a table name (3-63 letters/digits, starting with a letter)"
        )
    return raw


def _lock_mode(r: _Reader) -> tuple[str, str | None]:
    """``ROTATION_LOCK`` (default ``blob`` when a storage connection is available) and its
    connection (``ROTATION_LOCK_CONNECTION``, else ``AzureWebJobsStorage``)."""
    connection = r.raw("ROTATION_LOCK_CONNECTION") or r.raw("AzureWebJobsStorage")
    lock = r.get("ROTATION_LOCK", "blob" if connection else "off", _choice(_LOCKS))
    if lock == "blob" and connection is None:
        r.problems.append(
            "ROTATION_LOCK: 'blob' needs ROTATION_LOCK_CONNECTION (or AzureWebJobsStorage)"
        )
    return lock, connection


def _container_name(raw: str) -> str:
    # Blob containers: 3-63 lower-case letters, digits and single hyphens, no hyphen at the ends.
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}", raw):
        raise ValueError(
            f"{raw!r} is not a container name (3-63 lower-case letters, digits, single hyphens)"
        )
    return raw


def _lock_wait(raw: str) -> float:
    value = _positive_float(raw)
    if value >= _EVENT_GRID_TIMEOUT_SECONDS:
        raise ValueError(f"{raw!r} must be below Event Grid's 30 s delivery timeout")
    return value
