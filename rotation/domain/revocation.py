"""Revocation checks against CRLs: given explicitly, or fetched from CRL distribution points.

Pure: the fetching is done by a ``CrlFetcher`` passed in (``rotation.adapters.crl`` has the
HTTP one). Every CRL is verified before it counts: issued by the certificate's issuer, signed
by the issuer's key, and not stale (``nextUpdate`` not before ``at``). Explicitly given CRLs are
checked in every mode; distribution points are fetched only in ``soft`` and ``hard`` mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Protocol, runtime_checkable

from cryptography import x509

from rotation.domain.errors import DependencyError
from rotation.domain.model import Finding, FindingCode, Severity
from rotation.domain.policy import RevocationMode, ValidationPolicy

__all__ = ["CrlFetcher", "revocation_findings"]

MAX_URLS_PER_CERTIFICATE = 4


@runtime_checkable
class CrlFetcher(Protocol):
    """Fetches a CRL from a distribution point URL (HTTP or HTTPS)."""

    def fetch(self, url: str, *, at: datetime) -> x509.CertificateRevocationList:
        """The CRL at ``url``; a cached copy is fine while its ``nextUpdate`` is after ``at``.

        Raises:
            DependencyError: unreachable, timed out, too large, not a CRL (message names the
                URL and the reason; ``TransientDependencyError`` where a retry may help).
        """
        ...


@dataclass(slots=True)
class _Status:
    checked: bool = False
    revoked_by: str | None = None
    problems: list[str] = field(default_factory=list)


def revocation_findings(
    path: Sequence[x509.Certificate],
    *,
    policy: ValidationPolicy,
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList] = (),
    fetcher: CrlFetcher | None = None,
) -> list[Finding]:
    """Findings for every certificate of ``path`` (leaf first, anchor last) but the anchor."""
    findings: list[Finding] = []
    if policy.revocation is RevocationMode.OFF and not crls:
        return findings
    for cert, issuer in pairwise(path):
        status = _check(cert, issuer, policy=policy, at=at, crls=crls, fetcher=fetcher)
        if status.revoked_by is not None:
            findings.append(
                Finding(
                    code=FindingCode.REVOCATION_REVOKED,
                    severity=Severity.ERROR,
                    message=f"serial {cert.serial_number:X} is revoked ({status.revoked_by})",
                    certificate=cert.subject.rfc4514_string(),
                )
            )
        elif not status.checked and (status.problems or policy.revocation is RevocationMode.HARD):
            reasons = "; ".join(status.problems) or "no CRL given and no HTTP distribution point"
            hard = policy.revocation is RevocationMode.HARD
            findings.append(
                Finding(
                    code=FindingCode.REVOCATION_UNAVAILABLE,
                    severity=Severity.ERROR if hard else Severity.WARNING,
                    message=f"revocation status unknown: {reasons}",
                    certificate=cert.subject.rfc4514_string(),
                )
            )
    return findings


def _check(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    policy: ValidationPolicy,
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList],
    fetcher: CrlFetcher | None,
) -> _Status:
    status = _Status()
    for crl in crls:
        if crl.issuer == issuer.subject:
            _apply(status, crl, cert, issuer, at=at, policy=policy, source="given CRL")
    if status.checked or policy.revocation is RevocationMode.OFF:
        return status
    for url in _crl_urls(cert, status):
        if fetcher is None:
            status.problems.append(f"{url}: no CRL fetcher configured")
            continue
        try:
            crl = fetcher.fetch(url, at=at)
        except DependencyError as exc:
            status.problems.append(str(exc))
            continue
        _apply(status, crl, cert, issuer, at=at, policy=policy, source=url)
        if status.checked:
            break
    return status


def _apply(
    status: _Status,
    crl: x509.CertificateRevocationList,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    at: datetime,
    policy: ValidationPolicy,
    source: str,
) -> None:
    problem = _crl_problem(crl, issuer, at=at, policy=policy)
    if problem:
        status.problems.append(f"{source}: {problem}")
        return
    status.checked = True
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        status.revoked_by = source


def _crl_problem(
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    *,
    at: datetime,
    policy: ValidationPolicy,
) -> str | None:
    if crl.issuer != issuer.subject:
        return f"issued by {crl.issuer.rfc4514_string()}, not by the certificate's issuer"
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        valid = False
    if not valid:
        return "signature does not verify against the issuing CA's key"
    if crl.last_update_utc > at + policy.clock_skew:
        return f"not valid before {crl.last_update_utc.isoformat()}"
    next_update = crl.next_update_utc
    if next_update is not None and next_update < at:
        return f"stale (nextUpdate {next_update.isoformat()})"
    return None


def _crl_urls(cert: x509.Certificate, status: _Status) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    urls: list[str] = []
    for point in points:
        for name in point.full_name or ():
            if not isinstance(name, x509.UniformResourceIdentifier):
                continue
            if name.value.lower().startswith(("http://", "https://")):
                urls.append(name.value)
            else:
                status.problems.append(
                    f"{name.value}: only HTTP(S) distribution points are fetched"
                )
    return urls[:MAX_URLS_PER_CERTIFICATE]
