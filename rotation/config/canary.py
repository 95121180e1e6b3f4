"""The canary's settings: ``ROTATION_CANARY``, ``ROTATION_CANARY_TIMEOUT``, ``ROTATION_CANARY_SERVER_CA``.

``canary_settings(mapping)`` reads them from an environment-like mapping (it never reads the
process environment) and returns the values together with every problem, each naming its
setting, so the configuration can report them all at once (a configuration error, exit 2):

| setting | values | default |
| --- | --- | --- |
| ``ROTATION_CANARY`` | ``off`` / ``warn`` / ``enforce`` (any case) | ``warn`` |
| ``ROTATION_CANARY_TIMEOUT`` | seconds per probe, > 0 and below Event Grid's 30 s | ``5`` |
| ``ROTATION_CANARY_SERVER_CA`` | a PEM file of extra CAs for backend server certificates | none |
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from rotation.domain.canary import CanaryMode

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_TIMEOUT_SECONDS",
    "CanarySettings",
    "canary_settings",
]

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_TIMEOUT_SECONDS = 30.0  # Event Grid's delivery timeout: the probes run inside one delivery


@dataclass(frozen=True, slots=True, kw_only=True)
class CanarySettings:
    """The canary's mode, per-probe timeout and extra server CAs (with where they came from)."""

    mode: CanaryMode = CanaryMode.WARN
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    server_ca_path: Path | None = None
    server_ca: tuple[x509.Certificate, ...] = field(default=(), repr=False)


def _raw(mapping: Mapping[str, str], name: str) -> str | None:
    value = mapping.get(name)
    return value.strip() if value is not None and value.strip() else None


def _mode(raw: str) -> CanaryMode:
    try:
        return CanaryMode(raw.lower())
    except ValueError:
        raise ValueError(f"{raw!r} is not one of off, warn, enforce") from None


def _timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{raw!r} must be a number of seconds > 0")
    if value >= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"{raw!r} must be below Event Grid's {MAX_TIMEOUT_SECONDS:g} s delivery timeout")  # fmt: skip
    return value


def _server_ca(raw: str) -> tuple[Path, tuple[x509.Certificate, ...]]:
    path = Path(raw)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {raw!r} ({exc.strerror or type(exc).__name__})") from None
    try:
        certificates = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        certificates = ()
    if not certificates:
        raise ValueError(f"{raw!r} holds no PEM certificate")
    return path, certificates


def canary_settings(mapping: Mapping[str, str]) -> tuple[CanarySettings, list[str]]:
    """The canary settings in ``mapping``, and the list of problems (empty when all is well).

    A setting with a problem keeps its default in the returned settings; callers refuse to
    start when the list is not empty.
    """
    problems: list[str] = []
    mode, timeout = CanaryMode.WARN, DEFAULT_TIMEOUT_SECONDS
    path: Path | None = None
    cas: tuple[x509.Certificate, ...] = ()
    if (raw := _raw(mapping, "ROTATION_CANARY")) is not None:
        try:
            mode = _mode(raw)
        except ValueError as exc:
            problems.append(f"ROTATION_CANARY: {exc}")
    if (raw := _raw(mapping, "ROTATION_CANARY_TIMEOUT")) is not None:
        try:
            timeout = _timeout(raw)
        except ValueError as exc:
            problems.append(f"ROTATION_CANARY_TIMEOUT: {exc}")
    if (raw := _raw(mapping, "ROTATION_CANARY_SERVER_CA")) is not None:
        try:
            path, cas = _server_ca(raw)
        except ValueError as exc:
            problems.append(f"ROTATION_CANARY_SERVER_CA: {exc}")
    settings = CanarySettings(
        mode=mode, timeout_seconds=timeout, server_ca_path=path, server_ca=cas
    )
    return settings, problems
