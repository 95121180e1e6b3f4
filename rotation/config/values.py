"""Parsers for single ``ROTATION_*`` setting values, and the reader that collects their problems.

Each parser takes the stripped raw text of one setting and returns its typed value, or raises
``ValueError`` with a message naming what is wrong (never the value of a secret setting: those
are not parsed). ``SettingsReader`` applies them one setting at a time and collects every
problem, so ``rotation.config.Settings.from_env`` can report them all at once. Nothing here
reads the process environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

from rotation.domain.clouds import Cloud, cloud_for_arm_endpoint
from rotation.domain.model import Strategy

__all__ = [
    "LOCKS",
    "LOG_LEVELS",
    "REVOCATION",
    "SettingsReader",
    "apim_service_ids",
    "arm_endpoint",
    "boolean",
    "choice",
    "container_name",
    "csv_items",
    "existing_file",
    "https_url",
    "inbound_certificates",
    "int_at_least",
    "int_between",
    "lock_wait",
    "log_level",
    "ncrontab",
    "non_negative_float",
    "normalize_vault_url",
    "positive_float",
    "strategy",
    "table_name",
    "trust_anchor_bundle",
    "trust_anchors",
    "vault_list",
    "vault_list_in",
    "verbatim",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
REVOCATION = ("off", "soft", "hard")
LOCKS = ("blob", "off")
_APIM_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ApiManagement/service/[^/]+$",
    re.IGNORECASE,
)
_CERTIFICATE_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_CERTIFICATE_PATH = re.compile(r"^/certificates/([^/]+)/?$", re.IGNORECASE)
_VERSIONED_PATH = re.compile(r"^/certificates/[^/]+/[^/]+/?$", re.IGNORECASE)
_NCRONTAB_FIELDS = 6
_NCRONTAB_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_EVENT_GRID_TIMEOUT_SECONDS = 30.0
_T = TypeVar("_T")


class SettingsReader:
    """Reads one setting at a time, collecting problems instead of raising on the first."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = mapping
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        """The stripped value of ``name``, or None when unset or blank."""
        value = self.mapping.get(name)
        return value.strip() if value is not None and value.strip() else None

    def get(self, name: str, default: _T, convert: Callable[[str], _T]) -> _T:
        """``convert`` the value of ``name``; ``default`` when unset or invalid (noted)."""
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except ValueError as exc:
            self.problems.append(f"{name}: {exc}")
            return default

    def required(self, name: str, default: _T, convert: Callable[[str], _T]) -> _T:
        """Like ``get``, but an unset ``name`` is a problem too."""
        if self.raw(name) is None:
            self.problems.append(f"{name}: required but not set")
            return default
        return self.get(name, default, convert)


def normalize_vault_url(value: str) -> str:
    """``https://host[:port]`` with a lower-case host and no trailing slash.

    Raises:
        ValueError: not an https URL with a host and no path, query or fragment.
    """
    text = value.strip()
    parts, origin = _https_origin(text, "an https URL with a host")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r} must be a bare vault URL (no path, query or credentials)")
    return origin


def _https_origin(text: str, what: str) -> tuple[SplitResult, str]:
    """``text`` split, and its origin ``https://host[:port]`` (lower-case host).

    Raises:
        ValueError: not a URL, or not https with a host (``what`` says what it must be).
    """
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not a URL") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"{text!r} must be {what}")
    return parts, f"https://{parts.hostname.lower()}" + (f":{port}" if port else "")


def csv_items(raw: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated list."""
    return [item.strip() for item in raw.split(",") if item.strip()]


def boolean(raw: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case)."""
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a boolean (true/false/1/0/yes/no)")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """A parser of integers no smaller than ``minimum``."""

    def convert(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
        if value < minimum:
            raise ValueError(f"{value} is below the minimum {minimum}")
        return value

    return convert


def int_between(minimum: int, maximum: int) -> Callable[[str], int]:
    """A parser of integers from ``minimum`` to ``maximum`` (both included)."""
    at_least = int_at_least(minimum)

    def convert(raw: str) -> int:
        value = at_least(raw)
        if value > maximum:
            raise ValueError(f"{value} is above the maximum {maximum}")
        return value

    return convert


def positive_float(raw: str) -> float:
    """A finite number greater than zero."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{raw!r} must be a finite number > 0")
    return value


def non_negative_float(raw: str) -> float:
    """A finite number greater than or equal to zero."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{raw!r} must be a finite number >= 0")
    return value


def choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    """A parser of one of ``choices`` (any case), returned as spelled in ``choices``."""

    def convert(raw: str) -> str:
        if raw.lower() not in {c.lower() for c in choices}:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return next(c for c in choices if c.lower() == raw.lower())

    return convert


def vault_list(raw: str) -> tuple[str, ...]:
    """A non-empty comma-separated list of bare vault URLs, normalised."""
    urls = tuple(normalize_vault_url(item) for item in csv_items(raw))
    if not urls:
        raise ValueError("lists no vault URL")
    return urls


def vault_list_in(cloud: Cloud) -> Callable[[str], tuple[str, ...]]:
    """A parser of ``vault_list`` refusing Key Vault hosts of a cloud other than ``cloud`` (a
    host of no known cloud, e.g. a local stand-in, is allowed: it is named explicitly)."""

    def convert(raw: str) -> tuple[str, ...]:
        urls = vault_list(raw)
        bad = [u for u in urls if cloud.foreign_vault_host(urlsplit(u).hostname or "")]
        if bad:
            suffixes = " or ".join(f"*.{s}" for s in cloud.vault_suffixes)
            raise ValueError(
                f"{', '.join(bad)} is not a Key Vault host of {cloud.name} ({suffixes}, as "
                "ROTATION_ARM_ENDPOINT selects)"
            )
        return urls

    return convert


def apim_service_ids(raw: str) -> tuple[str, ...]:
    """A non-empty comma-separated list of APIM service resource ids."""
    ids = tuple(csv_items(raw))
    bad = [i for i in ids if not _APIM_ID.match(i)]
    if bad or not ids:
        raise ValueError(
            "each entry must be /subscriptions/{s}/resourceGroups/{rg}/providers/"
            f"Microsoft.ApiManagement/service/{{name}} ({len(bad)} entry(ies) are not)"
        )
    return ids


def trust_anchor_bundle(raw: str) -> Path:
    """The path of a readable PEM file holding at least one certificate."""
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


PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


def trust_anchors(raw: str, *, app_root: Path) -> tuple[Path | None, bytes | None]:
    """``ROTATION_TRUST_ANCHORS``: inline PEM, or a bundle path (relative to ``app_root``).

    Returns ``(None, pem)`` for inline PEM (a value starting with ``-----BEGIN CERTIFICATE-----``;
    ``\\n`` escapes are accepted, as a one-line app setting needs them), else
    ``(resolved path, None)``. A relative path is looked up in ``app_root`` first, then (for a
    CLI run from a checkout of the trust bundle) in the current directory.

    Raises:
        ValueError: no readable PEM certificate (an inline value is never echoed).
    """
    from cryptography import x509  # noqa: PLC0415 - cold start

    if raw.startswith(PEM_CERTIFICATE):
        pem = raw.replace("\\n", "\n").strip().encode("ascii", errors="replace")
        try:
            certificates = x509.load_pem_x509_certificates(pem)
        except ValueError:
            certificates = []
        if not certificates:
            raise ValueError("the inline PEM holds no readable certificate")
        return None, pem
    path = Path(raw)
    if not path.is_absolute() and (app_root / path).is_file():
        path = app_root / path
    elif not path.is_absolute() and not path.is_file():
        path = app_root / path  # named in the error: the app root is where it belongs
    return trust_anchor_bundle(str(path)), None


def arm_endpoint(raw: str) -> str:
    """An https ARM endpoint (its cloud follows from it; see ``rotation.domain.clouds``)."""
    url = https_url(raw)
    cloud_for_arm_endpoint(url)
    return url


def existing_file(raw: str) -> Path:
    """The path of an existing file."""
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"{raw!r} is not a readable file")
    return path


def https_url(raw: str) -> str:
    """An https URL with a host, without its trailing slash."""
    parts = urlsplit(raw)
    if parts.scheme.lower() != "https" or not parts.netloc:
        raise ValueError(f"{raw!r} must be an https URL")
    return raw.rstrip("/")


def ncrontab(raw: str) -> str:
    """A 6-field NCRONTAB expression (the Functions timer syntax), single-spaced."""
    fields = raw.split()
    if len(fields) != _NCRONTAB_FIELDS or not all(_NCRONTAB_FIELD.match(f) for f in fields):
        raise ValueError(
            f"{raw!r} is not a 6-field NCRONTAB expression ({{s}} {{m}} {{h}} {{d}} {{M}} {{dow}})"
        )
    return " ".join(fields)


def verbatim(raw: str) -> str:
    """The value as given (stripped)."""
    return raw


def strategy(raw: str) -> Strategy:
    """``pin``, ``blue-green`` or ``follow`` (any case)."""
    try:
        return Strategy(raw.lower())
    except ValueError:
        raise ValueError(f"{raw!r} is not one of pin, blue-green, follow") from None


def log_level(raw: str) -> str:
    """One of the logging levels, upper-cased."""
    return choice(LOG_LEVELS)(raw).upper()


def table_name(raw: str) -> str:
    """An Azure Tables table name."""
    # Azure Tables: 3-63 alphanumeric characters, starting with a letter.
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", raw):
        raise ValueError(
            f"{raw!r} is not a table name (3-63 letters/digits, starting with a letter)"
        )
    return raw


def container_name(raw: str) -> str:
    """An Azure Blob container name."""
    # Blob containers: 3-63 lower-case letters, digits and single hyphens, no hyphen at the ends.
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}", raw):
        raise ValueError(
            f"{raw!r} is not a container name (3-63 lower-case letters, digits, single hyphens)"
        )
    return raw


def lock_wait(raw: str) -> float:
    """Seconds to wait for the lock: positive and below Event Grid's delivery timeout."""
    value = positive_float(raw)
    if value >= _EVENT_GRID_TIMEOUT_SECONDS:
        raise ValueError(f"{raw!r} must be below Event Grid's 30 s delivery timeout")
    return value


def inbound_certificates(vaults: tuple[str, ...]) -> Callable[[str], tuple[tuple[str, str], ...]]:
    """A parser of comma-separated versionless Key Vault certificate URLs
    (``https://{vault}/certificates/{name}``) whose vaults are among ``vaults`` (normalised
    ``ROTATION_VAULTS``); returns (vault URL, name) pairs, duplicates dropped."""
    allowed = set(vaults)

    def convert(raw: str) -> tuple[tuple[str, str], ...]:
        found: dict[tuple[str, str], tuple[str, str]] = {}
        for item in csv_items(raw):
            vault, name = _certificate_url(item)
            if vault not in allowed:
                raise ValueError(f"{item!r}: vault {vault} is not in ROTATION_VAULTS")
            found.setdefault((vault, name.lower()), (vault, name))
        if not found:
            raise ValueError("lists no certificate URL")
        return tuple(found.values())

    return convert


def _certificate_url(item: str) -> tuple[str, str]:
    """(vault URL, name) of ``https://{vault}/certificates/{name}``."""
    parts, vault = _https_origin(item, "an https Key Vault URL")
    if parts.query or parts.fragment or parts.username:
        raise ValueError(f"{item!r} must have no query, fragment or credentials")
    if _VERSIONED_PATH.match(parts.path):
        raise ValueError(
            f"{item!r} names a version: give the versionless URL "
            "https://{vault}/certificates/{name} (callers present every new version)"
        )
    path = _CERTIFICATE_PATH.match(parts.path)
    if path is None:
        raise ValueError(f"{item!r} is not https://{{vault}}/certificates/{{name}}")
    if not _CERTIFICATE_NAME.match(path.group(1)):
        raise ValueError(f"{item!r}: a certificate name is 1-127 letters, digits and dashes")
    return vault, path.group(1)
