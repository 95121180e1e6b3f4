"""Mint test and demo PKIs with ``cryptography``: roots, intermediates, leaves, CRLs, bundles.

Everything takes explicit times (no hidden "now") so tests can pin one second either side of a
boundary. Keys default to small-but-valid sizes for speed (RSA 2048, EC P-256); key generation is
the slow part, so callers that need many certificates should reuse keys via ``key=``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "Issued",
    "PrivateKey",
    "make_crl",
    "make_key",
    "mint_certificate",
    "mint_chain",
    "resign_weak",
    "to_pem_bundle",
    "to_pkcs12",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def make_key(kind: str = "rsa", size: int = 2048) -> PrivateKey:
    """A new private key: ``rsa`` (``size`` bits), ``ec`` (``size`` = 256/384/521), ``ed25519``."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if kind == "ec":
        curve = {
            256: ec.SECP256R1(),
            384: ec.SECP384R1(),
            521: ec.SECP521R1(),
            192: ec.SECP192R1(),
        }
        return ec.generate_private_key(curve[size])
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def pem(self) -> bytes:
        """The certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certrotate test"),
        ]
    )


def mint_certificate(
    common_name: str,
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    ca: bool = False,
    path_length: int | None = None,
    not_before: dt.datetime = EPOCH,
    not_after: dt.datetime | None = None,
    eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    san: tuple[str, ...] | None = None,
    crl_urls: tuple[str, ...] = (),
    hash_algorithm: hashes.HashAlgorithm | None = None,
    serial: int | None = None,
    key_usage: bool = True,
) -> Issued:
    """Mint one certificate. ``issuer=None`` makes it self-signed.

    Leaves get ``eku`` (default clientAuth; ``None`` omits the extension) and optional ``san``.
    CAs get basicConstraints CA:TRUE and keyCertSign/cRLSign. Subject/authority key identifiers
    are always set so path building works with renewed intermediates.
    """
    key = key or make_key()
    not_after = not_after or not_before + dt.timedelta(days=365)
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    if key_usage:
        if ca:
            usage = x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            )  # fmt: skip
        else:
            usage = x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey), data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False,
                decipher_only=False,
            )  # fmt: skip
        builder = builder.add_extension(usage, critical=True)
    if not ca and eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False
        )
    if crl_urls:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(u)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                    for u in crl_urls
                ]
            ),
            critical=False,
        )
    algorithm: hashes.HashAlgorithm | None
    if isinstance(signer_key, ed25519.Ed25519PrivateKey):
        algorithm = None
    else:
        algorithm = hash_algorithm or hashes.SHA256()
    cert = builder.sign(signer_key, algorithm)  # type: ignore[arg-type]
    return Issued(cert, key)


def mint_chain(
    *,
    depth: int = 3,
    kind: str = "rsa",
    size: int = 2048,
    not_before: dt.datetime = EPOCH,
    leaf_days: int = 365,
    leaf_name: str = "client.certrotate.test",
) -> list[Issued]:
    """A chain ``[leaf, intermediate..., root]`` of ``depth`` certificates (depth ≥ 2)."""
    root = mint_certificate(
        "certrotate Test Root CA",
        key=make_key(kind, size),
        ca=True,
        not_before=not_before - dt.timedelta(days=30),
        not_after=not_before + dt.timedelta(days=3650),
    )
    chain = [root]
    for i in range(depth - 2):
        chain.append(
            mint_certificate(
                f"certrotate Test Intermediate CA {i + 1}",
                issuer=chain[-1],
                key=make_key(kind, size),
                ca=True,
                not_before=not_before - dt.timedelta(days=10),
                not_after=not_before + dt.timedelta(days=1825),
            )
        )
    leaf = mint_certificate(
        leaf_name,
        issuer=chain[-1],
        key=make_key(kind, size),
        not_before=not_before,
        not_after=not_before + dt.timedelta(days=leaf_days),
    )
    return [leaf, *reversed(chain)]


def make_crl(
    issuer: Issued,
    *,
    revoked_serials: tuple[int, ...] = (),
    last_update: dt.datetime = EPOCH,
    next_update: dt.datetime | None = None,
    signer: PrivateKey | None = None,
) -> x509.CertificateRevocationList:
    """A CRL from ``issuer`` listing ``revoked_serials``; ``signer`` forges a bad signature."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update)
        .next_update(next_update or last_update + dt.timedelta(days=7))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(last_update)
            .build()
        )
    key = signer or issuer.key
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def to_pkcs12(
    leaf: Issued, chain: list[Issued] | tuple[Issued, ...] = (), password: bytes | None = None
) -> bytes:
    """A PKCS#12 (as Key Vault stores it: empty password unless given) with key, leaf and chain."""
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        b"certrotate",
        leaf.key,
        leaf.cert,
        [c.cert for c in chain] or None,
        encryption,
    )


def to_pem_bundle(
    leaf: Issued, chain: list[Issued] | tuple[Issued, ...] = (), *, with_key: bool = True
) -> bytes:
    """A PEM bundle as Key Vault's ``application/x-pem-file``: private key, leaf, then chain."""
    parts = [leaf.key_pem] if with_key else []
    parts.append(leaf.pem)
    parts.extend(c.pem for c in chain)
    return b"".join(parts)


_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
_WEAK_WITH_RSA = {
    "sha1": (bytes.fromhex("06092a864886f70d010105"), hashes.SHA1()),
    "md5": (bytes.fromhex("06092a864886f70d010104"), hashes.MD5()),
}


def resign_weak(issued: Issued, issuer: Issued, algorithm: str = "sha1") -> Issued:
    """Re-sign an RSA/SHA-256-signed certificate with SHA-1 or MD5 (``cryptography`` refuses to).

    The signature OID is swapped in place (same length) and the TBS is signed again by
    ``issuer``'s RSA key, so the result is a genuinely weak-but-valid signature.
    """
    from cryptography.hazmat.primitives.asymmetric import padding  # noqa: PLC0415

    oid, digest = _WEAK_WITH_RSA[algorithm]
    der = issued.cert.public_bytes(serialization.Encoding.DER)
    tbs = issued.cert.tbs_certificate_bytes
    weak_tbs = tbs.replace(_SHA256_WITH_RSA, oid, 1)
    signature = issuer.key.sign(weak_tbs, padding.PKCS1v15(), digest)  # type: ignore[call-arg, arg-type]
    head = der[: der.index(tbs)] + weak_tbs
    tail = der[der.index(tbs) + len(tbs) :].replace(_SHA256_WITH_RSA, oid, 1)
    if len(signature) != len(issued.cert.signature):
        raise ValueError("re-signing changed the signature length")
    weak = head + tail[: -len(signature)] + signature
    return Issued(x509.load_der_x509_certificate(weak), issued.key)
