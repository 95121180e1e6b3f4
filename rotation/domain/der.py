"""A minimal DER reader that bounds the work a PKCS#12 (or encrypted key) can demand.

Parsing a PKCS#12 runs its key derivations (the MAC and each PBE) with iteration counts the file
itself chooses; a hostile file could ask for billions. Those counts that sit in the clear are
read here, before anything is decrypted, and refused above ``MAX_KDF_ITERATIONS``. Counts inside
an encrypted bag only appear after the outer layer is decrypted (bounded by this check first).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rotation.domain.errors import BundleFormatError

__all__ = ["MAX_KDF_ITERATIONS", "check_kdf_iterations"]

MAX_KDF_ITERATIONS = 1_000_000  # OpenSSL uses 2048, Windows 2000, OWASP's PBKDF2 advice 600,000

# DER OIDs whose parameters carry an iteration count in the clear, with the number of bytes to
# skip after the match: PBKDF2, and the pkcs-12 PBE family (1.2.840.113549.1.12.1.x).
_KDF_OIDS = (
    (bytes.fromhex("06092a864886f70d01050c"), 0),
    (bytes.fromhex("060a2a864886f70d010c01"), 1),
)


def check_kdf_iterations(der: bytes) -> None:
    """Refuse key-derivation iteration counts that would make parsing take minutes.

    Raises:
        BundleFormatError: an iteration count above ``MAX_KDF_ITERATIONS``.
    """
    for count in _iteration_counts(der):
        if count > MAX_KDF_ITERATIONS:
            raise BundleFormatError(
                f"key-derivation iteration count {count} exceeds {MAX_KDF_ITERATIONS}"
            )


def _iteration_counts(der: bytes) -> Iterator[int]:
    starts = [m.end() + skip for oid, skip in _KDF_OIDS for m in re.finditer(re.escape(oid), der)]
    pfx = _children(der, 0)  # PFX: version, authSafe, macData?
    if len(pfx) == 3 and der[pfx[2][0]] == 0x30:  # noqa: PLR2004
        starts.append(pfx[2][0])
    for start in starts:
        # params ::= SEQUENCE { [DigestInfo,] salt OCTET STRING, iterations INTEGER, ... }
        items = [i for i in _children(der, start) if der[i[0]] in {0x04, 0x02}]
        if len(items) >= 2 and der[items[0][0]] == 0x04 and der[items[1][0]] == 0x02:  # noqa: PLR2004
            value_start, end = items[1][1], items[1][2]
            yield int.from_bytes(der[value_start:end], "big") if end - value_start <= 8 else 2**64  # noqa: PLR2004


def _children(der: bytes, pos: int) -> list[tuple[int, int, int]]:
    """(tag offset, value start, value end) of the children of the SEQUENCE at ``pos``."""
    try:
        _, start, end = _tlv(der, pos)
        out: list[tuple[int, int, int]] = []
        while start < end and len(out) < 8:  # noqa: PLR2004
            item = _tlv(der, start)
            out.append((start, item[1], item[2]))
            start = item[2]
    except IndexError:
        return []
    return out


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:  # noqa: PLR2004
            raise IndexError("unsupported DER length")
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    if pos + length > len(der):
        raise IndexError("DER length past the end")
    return tag, pos, pos + length
