"""Per-certificate checks of the validation policy (docs/architecture.md, "Validation and finding codes"), signatures and summaries.

Each function looks at one certificate (or the bundle's key) and returns ``Finding``s; the
path-level checks and the report live in ``rotation.domain.validation``.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from datetime import datetime
from typing import cast

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID

from rotation.domain.model import CertificateSummary, Finding, FindingCode, Severity
from rotation.domain.policy import ValidationPolicy

__all__ = [
    "identity_findings",
    "is_weak_signature",
    "key_findings",
    "key_problem",
    "leaf_findings",
    "name_of",
    "serial_of",
    "summarize",
    "weak_signature_finding",
]

_WEAK_HASHES = (hashes.SHA1, hashes.MD5)
_WEAK_SIGNATURE_OIDS = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_MD5,
        SignatureAlgorithmOID.RSA_WITH_SHA1,
        SignatureAlgorithmOID._RSA_WITH_SHA1,  # noqa: SLF001 - the old OIW OID, still seen
        SignatureAlgorithmOID.ECDSA_WITH_SHA1,
        SignatureAlgorithmOID.DSA_WITH_SHA1,
    }
)


def name_of(cert: x509.Certificate) -> str:
    """The certificate's subject as an RFC 4514 string (what findings and summaries show)."""
    return cert.subject.rfc4514_string()


def serial_of(cert: x509.Certificate) -> int:
    """The serial number, also when it is not positive (cryptography then warns on every read;
    validation reports such a serial as a finding instead)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Parsed a serial number", CryptographyDeprecationWarning)
        return cert.serial_number


def summarize(cert: x509.Certificate, *, issuer: str | None = None) -> CertificateSummary:
    """A ``CertificateSummary``: names, serial, upper-case thumbprints (SHA-1 is what APIM
    shows), dates and key. ``issuer`` is the issuer's name when already known (a speed-up)."""
    key_type, key_size = _describe_key(cert)
    der = cert.public_bytes(Encoding.DER)
    return CertificateSummary(
        subject=name_of(cert),
        issuer=issuer or cert.issuer.rfc4514_string(),
        serial=f"{serial_of(cert):X}",
        thumbprint_sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        thumbprint_sha256=hashlib.sha256(der).hexdigest().upper(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_size=key_size,
    )


_KINDS = (
    ("RSA", rsa.RSAPublicKey),
    ("EC", ec.EllipticCurvePublicKey),
    ("Ed25519", ed25519.Ed25519PublicKey),
    ("Ed448", ed448.Ed448PublicKey),
    ("DSA", dsa.DSAPublicKey),
)


@functools.cache
def _kind_of(key_class: type) -> str:
    # isinstance() against cryptography's ABCs costs microseconds; the answer per class does not.
    return next((n for n, base in _KINDS if issubclass(key_class, base)), key_class.__name__)


def _describe_key(cert: x509.Certificate) -> tuple[str, int | None]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unsupported", None
    kind = _kind_of(type(key))
    if kind in {"RSA", "DSA"}:
        return kind, cast("rsa.RSAPublicKey", key).key_size
    if kind == "EC":
        return kind, cast("ec.EllipticCurvePublicKey", key).curve.key_size
    return kind, None


def key_problem(cert: x509.Certificate, policy: ValidationPolicy) -> str | None:
    """Why the certificate's public key is outside the policy, or ``None`` if it is fine."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "the public key is malformed or of an unsupported type"
    kind = _kind_of(type(key))
    if kind == "RSA":
        size = cast("rsa.RSAPublicKey", key).key_size
        if not policy.min_rsa_bits <= size <= policy.max_rsa_bits:
            return f"RSA {size}-bit key is outside the allowed {policy.min_rsa_bits}..{policy.max_rsa_bits} bits"  # fmt: skip
    elif kind == "EC":
        curve = cast("ec.EllipticCurvePublicKey", key).curve.name
        if curve not in policy.allowed_ec_curves:
            return f"EC curve {curve} is not allowed (allowed: {', '.join(sorted(policy.allowed_ec_curves))})"  # fmt: skip
    elif kind != "Ed25519" or not policy.allow_ed25519:
        return f"{kind} keys are not allowed by the policy"
    return None


def is_weak_signature(cert: x509.Certificate) -> bool:
    """True when the certificate is signed with SHA-1 or MD5."""
    oid = cert.signature_algorithm_oid
    if oid in _WEAK_SIGNATURE_OIDS:
        return True
    if oid != SignatureAlgorithmOID.RSASSA_PSS:  # the hash of every other OID is in the OID
        return False
    try:
        return isinstance(cert.signature_hash_algorithm, _WEAK_HASHES)
    except UnsupportedAlgorithm:
        return False


def leaf_findings(leaf: x509.Certificate, policy: ValidationPolicy, at: datetime) -> list[Finding]:
    """Dates (with skew and minimum lifetime), EKU, CA flag, key strength and signature hash."""
    problems = _leaf_problems(leaf, policy, at)
    name = name_of(leaf) if problems else None
    return [_finding(code, message, name) for code, message in problems]


def _leaf_problems(
    leaf: x509.Certificate, policy: ValidationPolicy, at: datetime
) -> list[tuple[FindingCode, str]]:
    problems: list[tuple[FindingCode, str]] = []
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if not_before > at + policy.clock_skew:
        problems.append((FindingCode.VALIDITY_NOT_YET_VALID, f"not valid before {_iso(not_before)} (at {_iso(at)}, skew {policy.clock_skew_seconds}s)"))  # fmt: skip
    if not_after < at:
        problems.append((FindingCode.VALIDITY_EXPIRED, f"expired at {_iso(not_after)} (at {_iso(at)})"))  # fmt: skip
    elif not_after - at < policy.min_remaining:
        problems.append((FindingCode.VALIDITY_TOO_SHORT, f"expires at {_iso(not_after)}, sooner than the minimum of {policy.min_remaining_days} days"))  # fmt: skip
    extensions = {e.oid: e.value for e in leaf.extensions}  # one pass, no isinstance per lookup
    eku = cast("x509.ExtendedKeyUsage | None", extensions.get(ExtensionOID.EXTENDED_KEY_USAGE))
    if eku is None and policy.require_eku:
        problems.append((FindingCode.USAGE_CLIENT_AUTH_MISSING, "no extendedKeyUsage and the policy requires clientAuth"))  # fmt: skip
    elif eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        problems.append((FindingCode.USAGE_CLIENT_AUTH_MISSING, "extendedKeyUsage does not include clientAuth"))  # fmt: skip
    constraints = cast("x509.BasicConstraints | None", extensions.get(ExtensionOID.BASIC_CONSTRAINTS))  # fmt: skip
    if constraints is not None and constraints.ca:
        problems.append((FindingCode.USAGE_LEAF_IS_CA, "the leaf has basicConstraints CA:TRUE"))
    reason = key_problem(leaf, policy)
    if reason:
        problems.append((FindingCode.KEY_WEAK, reason))
    if is_weak_signature(leaf):
        problems.append((FindingCode.SIGNATURE_WEAK_ALGORITHM, _weak_message(leaf)))
    return problems


def key_findings(
    leaf: x509.Certificate, private_key: PrivateKeyTypes | None, policy: ValidationPolicy
) -> list[Finding]:
    """``key.missing`` (error only when the policy requires a key) or ``key.mismatch``."""
    if private_key is None:
        severity = Severity.ERROR if policy.require_key else Severity.WARNING
        return [_finding(FindingCode.KEY_MISSING, "the bundle has no private key (APIM could not present it)", name_of(leaf), severity)]  # fmt: skip
    if not _key_matches(leaf, private_key):
        return [_finding(FindingCode.KEY_MISMATCH, "the private key does not belong to the leaf", name_of(leaf))]  # fmt: skip
    return []


def _key_matches(leaf: x509.Certificate, private_key: PrivateKeyTypes) -> bool:
    try:
        return bool(leaf.public_key() == private_key.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return False


def _weak_message(cert: x509.Certificate) -> str:
    return f"signed with {cert.signature_hash_algorithm.name.upper()}"  # type: ignore[union-attr]


def weak_signature_finding(cert: x509.Certificate) -> Finding:
    """A ``signature.weak_algorithm`` finding for ``cert``."""
    return _finding(FindingCode.SIGNATURE_WEAK_ALGORITHM, _weak_message(cert), name_of(cert))


def identity_findings(
    leaf: x509.Certificate, policy: ValidationPolicy, expected: tuple[str, str] | None
) -> list[Finding]:
    """``identity.changed`` when the policy pins identity and (subject, issuer) differ."""
    if not policy.pin_identity or expected is None:
        return []
    actual = (name_of(leaf), leaf.issuer.rfc4514_string())
    if actual == tuple(expected):
        return []
    message = (
        f"subject/issuer {actual[0]!r} / {actual[1]!r} differ from the version in use "
        f"({expected[0]!r} / {expected[1]!r})"
    )
    return [_finding(FindingCode.IDENTITY_CHANGED, message, name_of(leaf))]


def _finding(
    code: FindingCode, message: str, certificate: str | None, severity: Severity = Severity.ERROR
) -> Finding:
    return Finding(code=code, severity=severity, message=message, certificate=certificate)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
