"""Parse certificate bundles the way Key Vault stores them: PKCS#12, PEM, or a bare DER certificate.

``parse_bundle`` returns a ``Bundle``: the leaf, the other certificates, and the private key if
any. The leaf is the certificate matching the private key, else the one that issues no other
certificate in the bundle. Work on hostile input is bounded *before* parsing: the input size,
the number of certificates and the PKCS#12 key-derivation iteration counts that can be read
in the clear are capped. Errors are ``BundleFormatError`` with a message naming what is wrong
and never any part of the secret.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    load_der_private_key,
    load_pem_private_key,
    pkcs12,
)
from cryptography.utils import CryptographyDeprecationWarning

from rotation.domain.der import check_kdf_iterations
from rotation.domain.errors import BundleFormatError

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_CERTIFICATES",
    "Bundle",
    "extend_bundle",
    "parse_bundle",
    "parse_certificates",
    "parse_private_key",
]

MAX_BUNDLE_BYTES = 1024 * 1024
MAX_CERTIFICATES = 64

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_KEY = re.compile(
    rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A parsed bundle. ``others`` holds the remaining certificates, duplicates removed."""

    leaf: x509.Certificate
    others: tuple[x509.Certificate, ...] = ()
    private_key: PrivateKeyTypes | None = field(default=None, repr=False)

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """Every certificate, leaf first."""
        return (self.leaf, *self.others)


@contextlib.contextmanager
def _lenient() -> Iterator[None]:
    """Load certificates whose serial is not positive without cryptography's warning.

    cryptography still parses them (with a deprecation warning); validation reports them as a
    ``format.unreadable`` finding, so the warning would only be noise (or, where warnings are
    errors, a crash instead of a finding).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Parsed a serial number", CryptographyDeprecationWarning)
        yield


def parse_bundle(data: bytes, *, password: bytes | None = None) -> Bundle:
    """Parse a PKCS#12 (DER or base64), a PEM bundle or a DER certificate.

    Raises:
        BundleFormatError: too large, too many certificates, not a known format, wrong
            password, an encrypted key without a password, or no certificate at all.
    """
    data = _bounded(data)
    if b"-----BEGIN" in data:
        certs, key = _parse_pem(data, password)
    elif data[:1] == b"\x30":
        certs, key = _parse_der(data, password)
    else:
        certs, key = _parse_der(_unbase64(data), password)
    return _assemble(certs, key)


def parse_certificates(data: bytes) -> tuple[x509.Certificate, ...]:
    """Parse trust anchors, extra chain certificates or a single certificate (PEM or DER).

    Raises:
        BundleFormatError: too large, too many certificates or no certificate.
    """
    data = _bounded(data)
    if b"-----BEGIN" in data:
        return tuple(_readable(_dedupe(_load_pem_certificates(data))))
    try:
        with _lenient():
            return tuple(_readable([x509.load_der_x509_certificate(data)]))
    except ValueError:
        raise BundleFormatError("not a PEM or DER certificate") from None


def parse_private_key(data: bytes, *, password: bytes | None = None) -> PrivateKeyTypes:
    """Parse a private key alone (PEM, or DER PKCS#8/traditional).

    Raises:
        BundleFormatError: not a key, encrypted without a password, or wrong password.
    """
    data = _bounded(data)
    if b"-----BEGIN" in data:
        _, key = _parse_pem(data, password, certificates=False)
        if key is None:
            raise BundleFormatError("the key file holds no PRIVATE KEY block")
        return key
    try:
        key = load_der_private_key(data, password, unsafe_skip_rsa_key_validation=True)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise BundleFormatError("the key file is not a readable private key") from None
    _check_rsa(key)
    return key


def extend_bundle(
    bundle: Bundle,
    *,
    certificates: Sequence[x509.Certificate] = (),
    private_key: PrivateKeyTypes | None = None,
) -> Bundle:
    """Add chain certificates and/or a separate private key, and pick the leaf again.

    Raises:
        BundleFormatError: more than ``MAX_CERTIFICATES`` certificates in all.
    """
    certs = [*bundle.certificates, *certificates]
    if len(certs) > MAX_CERTIFICATES:
        raise BundleFormatError(
            f"bundle holds {len(certs)} certificates (limit {MAX_CERTIFICATES})"
        )
    return _assemble(certs, private_key if private_key is not None else bundle.private_key)


def _bounded(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("bundle data must be bytes")
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleFormatError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    data = bytes(data)
    if not data.strip():
        raise BundleFormatError("bundle is empty")
    # DER is binary: a whitespace byte at either end is data (a signature or MAC byte), so
    # only text forms (PEM, base64) are stripped.
    return data if data[:1] == b"\x30" else data.strip()


def _unbase64(data: bytes) -> bytes:
    try:
        decoded = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BundleFormatError("not PEM, DER, PKCS#12 or base64-encoded PKCS#12") from None
    if decoded[:1] != b"\x30":
        raise BundleFormatError("not PEM, DER, PKCS#12 or base64-encoded PKCS#12")
    return decoded


def _load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    count = data.count(_PEM_CERT)
    if count > MAX_CERTIFICATES:
        raise BundleFormatError(f"bundle holds {count} certificates (limit {MAX_CERTIFICATES})")
    if count == 0:
        raise BundleFormatError("PEM bundle holds no CERTIFICATE block")
    try:
        with _lenient():
            return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise BundleFormatError("PEM bundle holds a malformed CERTIFICATE block") from None


def _parse_pem(
    data: bytes, password: bytes | None, *, certificates: bool = True
) -> tuple[list[x509.Certificate], PrivateKeyTypes | None]:
    certs = _load_pem_certificates(data) if certificates else []
    blocks = [m.group(0) for m in _PEM_KEY.finditer(data)]
    if len(blocks) > 1:
        raise BundleFormatError(f"PEM bundle holds {len(blocks)} private keys (expected one)")
    if not blocks:
        return certs, None
    if blocks[0].startswith(b"-----BEGIN ENCRYPTED"):  # PKCS#8: PBKDF2 with a chosen count
        check_kdf_iterations(_pem_body(blocks[0]))
    return certs, _load_pem_key(blocks[0], password)


def _load_pem_key(block: bytes, password: bytes | None) -> PrivateKeyTypes:
    try:
        key = load_pem_private_key(block, password, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        if password is None:
            raise BundleFormatError("the private key is encrypted and no password was given") from None  # fmt: skip
        # The password was for another part (a PKCS#12); this key is not encrypted.
        return _load_pem_key(block, None)
    except (ValueError, UnsupportedAlgorithm):
        raise BundleFormatError(
            "the private key cannot be read (corrupt or wrong password)"
        ) from None
    _check_rsa(key)
    return key


def _check_rsa(key: PrivateKeyTypes) -> None:
    """The cheap part of OpenSSL's RSA key check (skipped on load: it costs ~40 ms a key)."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        if numbers.p * numbers.q != numbers.public_numbers.n:
            raise BundleFormatError("the RSA private key is inconsistent (corrupt)")


def _pem_body(block: bytes) -> bytes:
    lines = [ln for ln in block.splitlines() if ln and not ln.startswith(b"-----")]
    try:
        return base64.b64decode(b"".join(lines))
    except (binascii.Error, ValueError):
        raise BundleFormatError("the private key block is not valid base64") from None


def _parse_der(
    data: bytes, password: bytes | None
) -> tuple[list[x509.Certificate], PrivateKeyTypes | None]:
    try:
        with _lenient():
            return [x509.load_der_x509_certificate(data)], None
    except ValueError:
        pass
    check_kdf_iterations(data)
    try:
        with _lenient():
            p12 = pkcs12.load_pkcs12(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BundleFormatError(
            "not a readable PKCS#12 or DER certificate (corrupt, or wrong password)"
        ) from None
    certs = [c.certificate for c in ([p12.cert] if p12.cert else []) + list(p12.additional_certs)]
    if len(certs) > MAX_CERTIFICATES:
        raise BundleFormatError(
            f"bundle holds {len(certs)} certificates (limit {MAX_CERTIFICATES})"
        )
    return certs, p12.key


def _dedupe(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[x509.Certificate] = set()
    return [c for c in certs if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]


def _readable(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """Parse extensions now (they are lazy) so a malformed one is a format error, not a crash."""
    for index, cert in enumerate(certs, 1):
        try:
            _ = cert.extensions
        except ValueError:
            raise BundleFormatError(f"certificate {index} has malformed extensions") from None
    return certs


def _assemble(certs: Sequence[x509.Certificate], key: PrivateKeyTypes | None) -> Bundle:
    certs = _readable(_dedupe(certs))
    if not certs:
        raise BundleFormatError("bundle holds no certificate")
    leaf = _pick_leaf(certs, key)
    return Bundle(leaf, tuple(c for c in certs if c is not leaf), key)


def _pick_leaf(certs: Sequence[x509.Certificate], key: PrivateKeyTypes | None) -> x509.Certificate:
    if key is not None:
        public = key.public_key()
        for cert in certs:
            try:
                if cert.public_key() == public:
                    return cert
            except (ValueError, UnsupportedAlgorithm):
                continue
    issuers = {c.issuer for c in certs if c.issuer != c.subject}
    childless = [c for c in certs if c.subject not in issuers]
    for cert in childless or certs:
        if not _is_ca(cert):
            return cert
    return (childless or list(certs))[0]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False
