"""Certificate bundles as Key Vault and APIM see them: parse PKCS#12/PEM, derive the wire fields.

Key Vault stores a certificate's secret as PKCS#12 (base64, empty password) or PEM (private key,
then the leaf, then the chain); ``x5t`` is the base64url SHA-1 without padding, and APIM shows the
same SHA-1 as upper-case hex.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

__all__ = [
    "PEM",
    "PKCS12",
    "BundleError",
    "ParsedBundle",
    "parse_bundle",
    "secret_value",
    "subject_string",
    "thumbprint_hex",
    "x5t",
]

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.DOTALL
)


class BundleError(ValueError):
    """The bytes are not a readable PKCS#12 or PEM certificate bundle (message names why)."""


@dataclass(frozen=True, slots=True)
class ParsedBundle:
    """A leaf, the rest of its chain (as given), and the private key if present."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes | None = field(repr=False)
    content_type: str


def parse_bundle(data: bytes, *, password: bytes | None = None) -> ParsedBundle:
    """Parse PEM (text starting ``-----BEGIN``) or PKCS#12 DER; base64 of either is accepted.

    Raises:
        BundleError: neither format could be read, or no certificate was found.
    """
    if not data.strip().startswith(b"-----BEGIN") and not _looks_like_der(data):
        try:
            data = base64.b64decode(data.strip(), validate=True)
        except ValueError:
            raise BundleError("neither PEM, PKCS#12 nor base64 of either") from None
    if data.strip().startswith(b"-----BEGIN"):
        return _parse_pem(data, password)
    try:
        loaded = pkcs12.load_pkcs12(data, password)
    except ValueError:
        raise BundleError("not a readable PKCS#12 (bad data or wrong password)") from None
    if loaded.cert is None:
        raise BundleError("the PKCS#12 holds no certificate")
    chain = tuple(c.certificate for c in loaded.additional_certs)
    return ParsedBundle(loaded.cert.certificate, chain, loaded.key, PKCS12)


def _looks_like_der(data: bytes) -> bool:
    return data[:1] == b"\x30"


def _parse_pem(data: bytes, password: bytes | None) -> ParsedBundle:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise BundleError("the PEM holds no readable certificate") from None
    key = None
    match = _KEY_BLOCK.search(data)
    if match is not None:
        try:
            key = serialization.load_pem_private_key(match.group(0), password)
        except (ValueError, TypeError):
            raise BundleError("the PEM private key cannot be read") from None
    leaf = certs[0]
    if key is not None:
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for cert in certs:
            spki = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if spki == public:
                leaf = cert
                break
    chain = tuple(c for c in certs if c is not leaf)
    return ParsedBundle(leaf, chain, key, PEM)


def secret_value(bundle: ParsedBundle, content_type: str) -> str:
    """The secret's ``value`` for ``content_type``: base64 PFX (empty password) or PEM text."""
    if content_type == PKCS12:
        pfx = pkcs12.serialize_key_and_certificates(
            None,
            bundle.key,  # type: ignore[arg-type]
            bundle.leaf,
            list(bundle.chain) or None,
            serialization.NoEncryption(),
        )
        return base64.b64encode(pfx).decode()
    parts: list[bytes] = []
    if bundle.key is not None:
        parts.append(
            bundle.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    parts.extend(c.public_bytes(serialization.Encoding.PEM) for c in (bundle.leaf, *bundle.chain))
    return b"".join(parts).decode()


def x5t(cert: x509.Certificate) -> str:
    """Base64url SHA-1 of the DER, without padding (Key Vault's ``x5t``)."""
    return base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).decode().rstrip("=")


def thumbprint_hex(cert: x509.Certificate) -> str:
    """Upper-case hex SHA-1 (APIM's ``thumbprint``)."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def subject_string(cert: x509.Certificate) -> str:
    """The subject most-specific first, ``CN=…, O=…``, as APIM displays it."""
    return ", ".join(rdn.rfc4514_string() for rdn in reversed(cert.subject.rdns))
