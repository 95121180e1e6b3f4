"""Hostile certificates for tests: what ``cryptography``'s builder refuses to make.

``with_serial`` re-encodes a certificate with any serial (negative, zero, huge) and signs it
again with the issuer's key, so the result is a correctly signed certificate that only its
serial makes hostile. DER is edited with a minimal TLV reader (the builder has no such knob).
"""

from __future__ import annotations

import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from devstack.pki import Issued


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def _read(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the TLV at ``pos``."""
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first & 0x80:
        size = first & 0x7F
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    else:
        length = first
    return tag, pos, pos + length


def with_serial(cert: Issued, serial: int, *, issuer: Issued) -> Issued:
    """``cert`` with serial number ``serial``, signed again by ``issuer``'s key (SHA-256)."""
    der = cert.cert.public_bytes(Encoding.DER)
    _, body, _ = _read(der, 0)
    _, tbs_start, tbs_end = _read(der, body)
    pos = tbs_start
    version = b""
    if der[pos] == 0xA0:  # [0] version
        _, _, end = _read(der, pos)
        version, pos = der[pos:end], end
    _, _, serial_end = _read(der, pos)
    size = max(1, (serial.bit_length() + 8) // 8)
    new_serial = _tlv(0x02, serial.to_bytes(size, "big", signed=True))
    tbs = _tlv(0x30, version + new_serial + der[serial_end:tbs_end])
    algorithm_start = tbs_end
    _, _, algorithm_end = _read(der, algorithm_start)
    algorithm = der[algorithm_start:algorithm_end]
    key = issuer.key
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    else:  # pragma: no cover - the test PKI is RSA or EC
        raise TypeError("unsupported issuer key")
    out = _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))
    with warnings.catch_warnings():  # cryptography warns about a serial that is not positive
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return Issued(x509.load_der_x509_certificate(out), cert.key)
