"""The validation policy: every knob of docs/architecture.md ("Validation and finding codes") with its documented default.

A ``ValidationPolicy`` is an immutable value; build a variant with ``dataclasses.replace``.
Defaults suit private-CA client certificates presented by APIM to its backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

__all__ = ["DEFAULT_POLICY", "RevocationMode", "ValidationPolicy"]


class RevocationMode(StrEnum):
    """How revocation is checked. Explicitly given CRLs are checked in every mode.

    ``off``: no fetching. ``soft``: fetch CRLs from the distribution points; a CRL that cannot
    be fetched or verified is a warning. ``hard``: the same, but that is an error, and so is a
    certificate with no CRL source at all.
    """

    OFF = "off"
    SOFT = "soft"
    HARD = "hard"


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationPolicy:
    """What a certificate must satisfy to be presented by APIM.

    Attributes:
        min_remaining_days: the leaf must stay valid at least this long after ``at`` (14).
        clock_skew_seconds: a leaf whose ``not_before`` is at most this far in the future is
            accepted (300), so a freshly issued certificate is not rejected for clock drift.
        min_rsa_bits: smallest RSA modulus accepted (2048).
        max_rsa_bits: largest RSA modulus accepted (16384); bounds the work on hostile input.
        allowed_ec_curves: accepted EC curves by name (P-256, P-384, P-521).
        allow_ed25519: Ed25519 keys are accepted (True).
        require_eku: an absent extendedKeyUsage is a finding (False: absent is acceptable;
            a present EKU must always include clientAuth).
        revocation: ``off`` | ``soft`` | ``hard`` (soft).
        require_key: a bundle without a private key is rejected (True); when False it is a
            warning only (``certrotate validate`` sets it from ``--require-key``).
        pin_identity: subject and issuer must equal those of the version in use (False).
        max_chain_depth: longest path, leaf and anchor included, the verifier builds (8).
    """

    min_remaining_days: int = 14
    clock_skew_seconds: int = 300
    min_rsa_bits: int = 2048
    max_rsa_bits: int = 16384
    allowed_ec_curves: frozenset[str] = frozenset({"secp256r1", "secp384r1", "secp521r1"})
    allow_ed25519: bool = True
    require_eku: bool = False
    revocation: RevocationMode = RevocationMode.SOFT
    require_key: bool = True
    pin_identity: bool = False
    max_chain_depth: int = 8

    def __post_init__(self) -> None:
        """Reject nonsensical knobs early.

        Raises:
            ValueError: a negative duration, an inverted RSA range or a depth below 2.
        """
        if self.min_remaining_days < 0 or self.clock_skew_seconds < 0:
            raise ValueError("min_remaining_days and clock_skew_seconds must be >= 0")
        if not 0 < self.min_rsa_bits <= self.max_rsa_bits:
            raise ValueError("need 0 < min_rsa_bits <= max_rsa_bits")
        if self.max_chain_depth < 2:  # noqa: PLR2004 - a leaf and an anchor
            raise ValueError("max_chain_depth must be >= 2")
        object.__setattr__(self, "revocation", RevocationMode(self.revocation))

    @property
    def clock_skew(self) -> timedelta:
        """``clock_skew_seconds`` as a timedelta."""
        return timedelta(seconds=self.clock_skew_seconds)

    @property
    def min_remaining(self) -> timedelta:
        """``min_remaining_days`` as a timedelta."""
        return timedelta(days=self.min_remaining_days)


DEFAULT_POLICY = ValidationPolicy()
