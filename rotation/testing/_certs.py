"""Certificate helpers the fakes share: the PKCS#12 content type and ``summarize_certificate``."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rotation.domain.model import (
    CertificateSummary,
)

PKCS12 = "application/x-pkcs12"


def summarize_certificate(cert: x509.Certificate) -> CertificateSummary:
    """The ``CertificateSummary`` of a certificate (thumbprints upper-case hex)."""
    key = cert.public_key()
    size = key.key_size if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else None
    kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "EC" if size else type(key).__name__
    return CertificateSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "X"),
        thumbprint_sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - APIM's id
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=kind,
        key_size=size,
    )
