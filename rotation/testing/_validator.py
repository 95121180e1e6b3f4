"""``FakeValidator`` and ``summarize_certificate``: validation without the policy engine."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from rotation.domain.model import (
    Finding,
    FindingCode,
    SecretMaterial,
    Severity,
    ValidationReport,
)
from rotation.testing._certs import PKCS12, summarize_certificate


class FakeValidator:
    """Parses the bundle for its leaf; ``findings`` maps a leaf SHA-1 to the findings to report.

    Reports ``format.unreadable`` for an unparseable bundle and ``key.missing`` when
    ``require_key`` and the bundle has no private key. ``calls`` records (thumbprint, at,
    expected_identity) for each call.
    """

    def __init__(
        self,
        findings: Mapping[str, tuple[Finding, ...]] | None = None,
        *,
        require_key: bool = True,
    ) -> None:
        self.findings = dict(findings or {})
        self.require_key = require_key
        self.calls: list[tuple[str | None, datetime, tuple[str, str] | None]] = []

    def validate(
        self,
        material: SecretMaterial,
        *,
        at: datetime,
        expected_identity: tuple[str, str] | None = None,
    ) -> ValidationReport:
        """The configured findings for the bundle's leaf."""
        leaf, has_key = _parse(material)
        summary = summarize_certificate(leaf) if leaf is not None else None
        self.calls.append((summary.thumbprint_sha1 if summary else None, at, expected_identity))
        if summary is None:
            bad = Finding(
                code=FindingCode.FORMAT_UNREADABLE,
                severity=Severity.ERROR,
                message="unreadable bundle",
            )
            return ValidationReport(findings=(bad,), leaf=None, chain=())
        found = list(self.findings.get(summary.thumbprint_sha1, ()))
        if self.require_key and not has_key:
            found.append(
                Finding(
                    code=FindingCode.KEY_MISSING, severity=Severity.ERROR, message="no private key"
                )
            )
        if expected_identity and expected_identity != (summary.subject, summary.issuer):
            found.append(
                Finding(
                    code=FindingCode.IDENTITY_CHANGED,
                    severity=Severity.ERROR,
                    message="identity changed",
                )
            )
        return ValidationReport(findings=tuple(found), leaf=summary, chain=(summary,))


def _parse(material: SecretMaterial) -> tuple[x509.Certificate | None, bool]:
    if material.content_type == PKCS12:
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(material.value, None)
        except ValueError:
            return None, False
        return cert, key is not None
    try:
        certs = x509.load_pem_x509_certificates(material.value)
    except ValueError:
        return None, False
    return certs[0], b"PRIVATE KEY-----" in material.value
