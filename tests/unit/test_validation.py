"""Tests for rotation.domain.validation: every validation check and finding code, boundaries, the report."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.pki import (
    EPOCH,
    Issued,
    make_key,
    mint_certificate,
    resign_weak,
    to_pem_bundle,
    to_pkcs12,
)
from rotation.domain import pkix
from rotation.domain.bundle import Bundle, parse_bundle
from rotation.domain.model import FindingCode, SecretMaterial, Severity, ValidationReport
from rotation.domain.policy import DEFAULT_POLICY, RevocationMode, ValidationPolicy
from rotation.domain.validation import PolicyValidator, validate_bundle
from rotation.ports import Validator
from tests.unit.conftest import AT, Pki

C = FindingCode
# Revocation is the subject of tests/unit/test_crl.py; here it is off, so that the soft mode's
# "no CRL" warnings do not hide what each test looks at.
DEFAULT_POLICY = replace(DEFAULT_POLICY, revocation=RevocationMode.OFF)
SECOND = dt.timedelta(seconds=1)


def check(
    leaf: Issued,
    chain: list[Issued] | tuple[Issued, ...] = (),
    *,
    anchors: tuple[x509.Certificate, ...],
    with_key: bool = True,
    at: dt.datetime = AT,
    **policy: Any,
) -> ValidationReport:
    """Validate ``leaf`` + ``chain`` (already parsed) under DEFAULT_POLICY with overrides."""
    bundle = Bundle(leaf.cert, tuple(c.cert for c in chain), leaf.key if with_key else None)
    return validate_bundle(
        bundle, trust_anchors=anchors, policy=replace(DEFAULT_POLICY, **policy), at=at
    )


def codes(report: ValidationReport) -> set[str]:
    """The finding codes of a report, as a set of strings."""
    return set(report.codes)


class TestAcceptance:
    """A well-formed client certificate passes, whatever shape its bundle takes."""

    def test_accepts_rsa_depth_3_from_pkcs12(self, pki: Pki):
        """An RSA leaf + intermediate from a PKCS#12 chains to the root with no finding."""
        bundle = parse_bundle(to_pkcs12(pki.leaf, [pki.inter]))

        report = validate_bundle(bundle, trust_anchors=pki.anchors, policy=DEFAULT_POLICY, at=AT)

        assert report.findings == ()
        assert report.accepted
        assert [c.subject for c in report.chain] == [
            pki.leaf.cert.subject.rfc4514_string(),
            pki.inter.cert.subject.rfc4514_string(),
            pki.root.cert.subject.rfc4514_string(),
        ]

    def test_leaf_summary_has_upper_case_thumbprints_dates_and_key(self, pki: Pki):
        """The leaf summary carries what APIM shows: SHA-1 (and SHA-256) upper-case hex."""
        report = check(pki.leaf, [pki.inter], anchors=pki.anchors)

        leaf = report.leaf
        assert leaf is not None
        assert leaf.thumbprint_sha1 == pki.leaf.cert.fingerprint(hashes.SHA1()).hex().upper()
        assert leaf.thumbprint_sha256 == pki.leaf.cert.fingerprint(hashes.SHA256()).hex().upper()
        assert leaf.serial == f"{pki.leaf.cert.serial_number:X}"
        assert leaf.issuer == pki.inter.cert.subject.rfc4514_string()
        assert (leaf.not_before, leaf.not_after) == (EPOCH, EPOCH + dt.timedelta(days=365))
        assert (leaf.key_type, leaf.key_size) == ("RSA", 2048)
        assert report.chain[0] == leaf

    def test_accepts_ec_chain(self, pki: Pki):
        """An EC P-256 chain validates and the key is described as EC 256."""
        report = check(pki.ec_leaf, [pki.ec_inter], anchors=pki.anchors)

        assert report.findings == ()
        assert report.leaf is not None
        assert (report.leaf.key_type, report.leaf.key_size) == ("EC", 256)

    @pytest.mark.parametrize("depth", [2, 4, 5])
    def test_accepts_depths(self, pki: Pki, depth: int):
        """Chains of depth 2 (leaf under the root) up to 5 validate, leaf first, anchor last."""
        leaf, *chain = pki.deep_chain(depth)

        report = check(leaf, chain[:-1], anchors=pki.anchors)

        assert report.findings == ()
        assert len(report.chain) == depth
        assert report.chain[-1].subject == pki.root.cert.subject.rfc4514_string()

    def test_accepts_pem_out_of_order_with_duplicates(self, pki: Pki):
        """Root first, intermediate twice, key last: the leaf is still found and the chain built."""
        pem = pki.root.pem + pki.inter.pem + pki.leaf.pem + pki.inter.pem + pki.leaf.key_pem
        bundle = parse_bundle(pem)

        report = validate_bundle(bundle, trust_anchors=pki.anchors, policy=DEFAULT_POLICY, at=AT)

        assert report.findings == ()
        assert len(report.chain) == 3

    def test_accepts_renewed_intermediate_beside_expired_old_one(self, pki: Pki):
        """An old (expired, other key) and a renewed intermediate of the same name: the path uses the renewed one."""
        name = pki.inter.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        old = mint_certificate(
            str(name), issuer=pki.root, key=pki.spare_rsa, ca=True,
            not_before=EPOCH - dt.timedelta(days=400), not_after=EPOCH - dt.timedelta(days=5),
        )  # fmt: skip

        report = check(pki.leaf, [old, pki.inter], anchors=pki.anchors)

        assert report.findings == ()
        assert report.chain[1].thumbprint_sha1 == pki.inter.cert.fingerprint(hashes.SHA1()).hex().upper()  # fmt: skip

    def test_leaf_without_san_and_without_eku_is_accepted_by_default(self, pki: Pki):
        """Private-CA client certificates need neither a SAN nor an EKU (the default policy)."""
        leaf = mint_certificate("no-eku", issuer=pki.inter, key=pki.leaf.key, eku=None)

        report = check(leaf, [pki.inter], anchors=pki.anchors)

        assert report.findings == ()

    def test_leaf_with_san_is_accepted(self, pki: Pki):
        """A SAN, when present, does not get in the way."""
        leaf = mint_certificate(
            "san", issuer=pki.inter, key=pki.leaf.key, san=("gw.example.test",)
        )

        assert check(leaf, [pki.inter], anchors=pki.anchors).findings == ()

    def test_ed25519_leaf_is_accepted(self, pki: Pki):
        """Ed25519 leaf keys are allowed by default and described without a size."""
        leaf = mint_certificate("ed", issuer=pki.inter, key=make_key("ed25519"))

        report = check(leaf, [pki.inter], anchors=pki.anchors)

        assert report.findings == ()
        assert report.leaf is not None
        assert (report.leaf.key_type, report.leaf.key_size) == ("Ed25519", None)


class TestValidity:
    """Leaf dates: one second either side of every boundary, with and without skew."""

    def test_not_before_with_skew_boundary(self, pki: Pki):
        """not_before may be up to the skew (300 s) after ``at``; one second more is not_yet_valid."""
        start = pki.leaf.cert.not_valid_before_utc
        skew = dt.timedelta(seconds=DEFAULT_POLICY.clock_skew_seconds)

        inside = check(pki.leaf, [pki.inter], anchors=pki.anchors, at=start - skew)
        outside = check(pki.leaf, [pki.inter], anchors=pki.anchors, at=start - skew - SECOND)

        assert inside.findings == ()
        assert inside.chain
        assert codes(outside) == {C.VALIDITY_NOT_YET_VALID}

    def test_not_before_without_skew(self, pki: Pki):
        """With no skew, the leaf is valid from not_before exactly, not one second earlier."""
        start = pki.leaf.cert.not_valid_before_utc

        at_start = check(
            pki.leaf, [pki.inter], anchors=pki.anchors, at=start, clock_skew_seconds=0
        )
        before = check(pki.leaf, [pki.inter], anchors=pki.anchors, at=start - SECOND, clock_skew_seconds=0)  # fmt: skip

        assert at_start.findings == ()
        assert codes(before) == {C.VALIDITY_NOT_YET_VALID}

    def test_not_after_boundary(self, pki: Pki):
        """Valid at not_after itself; one second later it is validity.expired, not chain.untrusted."""
        end = pki.leaf.cert.not_valid_after_utc

        at_end = check(pki.leaf, [pki.inter], anchors=pki.anchors, at=end, min_remaining_days=0)
        after = check(pki.leaf, [pki.inter], anchors=pki.anchors, at=end + SECOND, min_remaining_days=0)  # fmt: skip

        assert at_end.findings == ()
        assert codes(after) == {C.VALIDITY_EXPIRED}
        assert len(after.chain) == 3  # the path itself is fine and reported

    def test_expired_leaf_under_default_policy_is_only_expired(self, pki: Pki):
        """An expired leaf is not also reported as too short or untrusted."""
        report = check(
            pki.leaf, [pki.inter], anchors=pki.anchors, at=EPOCH + dt.timedelta(days=400)
        )

        assert codes(report) == {C.VALIDITY_EXPIRED}
        assert not report.accepted

    def test_minimum_remaining_lifetime_boundary(self, pki: Pki):
        """Exactly 14 days left is enough; one second less is validity.too_short."""
        end = pki.leaf.cert.not_valid_after_utc
        limit = end - dt.timedelta(days=14)

        enough = check(pki.leaf, [pki.inter], anchors=pki.anchors, at=limit)
        short = check(pki.leaf, [pki.inter], anchors=pki.anchors, at=limit + SECOND)

        assert enough.findings == ()
        assert codes(short) == {C.VALIDITY_TOO_SHORT}
        assert short.findings[0].severity is Severity.ERROR

    def test_expired_intermediate_is_issuer_expired(self, pki: Pki):
        """An intermediate past its not_after (leaf still valid) is chain.issuer_expired on that CA."""
        inter = mint_certificate(
            "short CA", issuer=pki.root, key=pki.spare_rsa, ca=True,
            not_before=EPOCH - dt.timedelta(days=10), not_after=EPOCH + dt.timedelta(days=30),
        )  # fmt: skip
        leaf = mint_certificate("under-short", issuer=inter, key=pki.leaf.key)

        report = check(leaf, [inter], anchors=pki.anchors)

        assert codes(report) == {C.CHAIN_ISSUER_EXPIRED}
        assert report.findings[0].certificate == inter.cert.subject.rfc4514_string()

    def test_expired_anchor_is_issuer_expired(self, pki: Pki):
        """A trust anchor outside its validity window is chain.issuer_expired too."""
        root = mint_certificate(
            "old root", key=pki.spare_rsa2, ca=True,
            not_before=EPOCH - dt.timedelta(days=100), not_after=EPOCH + dt.timedelta(days=20),
        )  # fmt: skip
        leaf = mint_certificate("under-old-root", issuer=root, key=pki.leaf.key)

        report = check(leaf, anchors=(root.cert,))

        assert codes(report) == {C.CHAIN_ISSUER_EXPIRED}

    def test_expired_leaf_and_expired_intermediate_are_both_reported(self, pki: Pki):
        """Both dates are reported at once when both are wrong."""
        inter = mint_certificate(
            "short CA 2", issuer=pki.root, key=pki.spare_rsa, ca=True,
            not_before=EPOCH - dt.timedelta(days=10), not_after=EPOCH + dt.timedelta(days=30),
        )  # fmt: skip
        leaf = mint_certificate(
            "short-leaf", issuer=inter, key=pki.leaf.key, not_after=EPOCH + dt.timedelta(days=20)
        )

        report = check(leaf, [inter], anchors=pki.anchors, at=EPOCH + dt.timedelta(days=40))

        assert codes(report) == {C.VALIDITY_EXPIRED, C.CHAIN_ISSUER_EXPIRED}


class TestUsage:
    """EKU and basicConstraints of the leaf."""

    def test_eku_without_client_auth(self, pki: Pki):
        """An EKU listing only serverAuth is usage.client_auth_missing (not chain.untrusted)."""
        leaf = mint_certificate(
            "server-only",
            issuer=pki.inter,
            key=pki.leaf.key,
            eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
        )

        report = check(leaf, [pki.inter], anchors=pki.anchors)

        assert codes(report) == {C.USAGE_CLIENT_AUTH_MISSING}
        assert len(report.chain) == 3

    def test_absent_eku_rejected_when_required(self, pki: Pki):
        """With require_eku, a leaf without EKU is usage.client_auth_missing."""
        leaf = mint_certificate("no-eku-2", issuer=pki.inter, key=pki.leaf.key, eku=None)

        report = check(leaf, [pki.inter], anchors=pki.anchors, require_eku=True)

        assert codes(report) == {C.USAGE_CLIENT_AUTH_MISSING}

    def test_leaf_is_ca(self, pki: Pki):
        """A leaf with CA:TRUE is usage.leaf_is_ca (not chain.untrusted)."""
        leaf = mint_certificate("ca-leaf", issuer=pki.inter, key=pki.leaf.key, ca=True)

        assert codes(check(leaf, [pki.inter], anchors=pki.anchors)) == {C.USAGE_LEAF_IS_CA}


class TestKeys:
    """Key strength of the leaf and its issuers; presence and match of the private key."""

    def test_rsa_1024_leaf_is_weak(self, pki: Pki):
        """RSA below 2048 bits is key.weak."""
        leaf = mint_certificate("weak", issuer=pki.inter, key=pki.rsa1024)

        report = check(leaf, [pki.inter], anchors=pki.anchors)

        assert codes(report) == {C.KEY_WEAK}
        assert "1024" in report.findings[0].message

    def test_ec_p192_leaf_is_weak(self, pki: Pki):
        """An EC curve outside P-256/P-384/P-521 is key.weak."""
        leaf = mint_certificate("p192", issuer=pki.inter, key=make_key("ec", 192))

        assert codes(check(leaf, [pki.inter], anchors=pki.anchors)) == {C.KEY_WEAK}

    def test_ed25519_can_be_disallowed(self, pki: Pki):
        """With allow_ed25519=False an Ed25519 leaf is key.weak."""
        leaf = mint_certificate("ed-2", issuer=pki.inter, key=make_key("ed25519"))

        report = check(leaf, [pki.inter], anchors=pki.anchors, allow_ed25519=False)

        assert codes(report) == {C.KEY_WEAK}

    def test_absurd_rsa_key_size_is_weak_and_fast(self, pki: Pki):
        """A hand-crafted 65536-bit RSA public key is key.weak, validated in bounded time."""
        modulus = (1 << 65535) | (0xC0FFEE << 200) | 1
        huge = rsa.RSAPublicNumbers(65537, modulus).public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "huge")]))
            .issuer_name(pki.inter.cert.subject)
            .public_key(huge)
            .serial_number(7)
            .not_valid_before(EPOCH)
            .not_valid_after(EPOCH + dt.timedelta(days=365))
            .sign(pki.inter.key, hashes.SHA256())
        )

        report = check(
            Issued(cert, pki.leaf.key), [pki.inter], anchors=pki.anchors, with_key=False
        )

        assert C.KEY_WEAK in codes(report)
        assert "65536" in next(f.message for f in report.findings if f.code == C.KEY_WEAK)

    def test_weak_intermediate_key_is_weak(self, pki: Pki):
        """An intermediate with an RSA 1024 key is key.weak on that CA (the verifier refuses it)."""
        inter = mint_certificate("weak CA", issuer=pki.root, key=pki.rsa1024, ca=True)
        leaf = mint_certificate("under-weak", issuer=inter, key=pki.leaf.key)

        report = check(leaf, [inter], anchors=pki.anchors)

        assert codes(report) == {C.KEY_WEAK}
        assert report.findings[0].certificate == inter.cert.subject.rfc4514_string()

    def test_missing_key_is_a_warning_unless_required(self, pki: Pki):
        """No private key: key.missing, a warning without require_key and an error with it."""
        lenient = check(
            pki.leaf, [pki.inter], anchors=pki.anchors, with_key=False, require_key=False
        )
        strict = check(
            pki.leaf, [pki.inter], anchors=pki.anchors, with_key=False, require_key=True
        )

        assert [(f.code, f.severity) for f in lenient.findings] == [(C.KEY_MISSING, Severity.WARNING)]  # fmt: skip
        assert lenient.accepted
        assert [(f.code, f.severity) for f in strict.findings] == [(C.KEY_MISSING, Severity.ERROR)]
        assert not strict.accepted

    def test_key_of_another_certificate_is_mismatch(self, pki: Pki):
        """A private key that belongs to no certificate of the bundle is key.mismatch."""
        bundle = parse_bundle(pki.leaf.pem + pki.inter.pem + Issued(pki.leaf.cert, pki.spare_rsa).key_pem)  # fmt: skip

        report = validate_bundle(bundle, trust_anchors=pki.anchors, policy=DEFAULT_POLICY, at=AT)

        assert codes(report) == {C.KEY_MISMATCH}
        assert report.leaf is not None
        assert report.leaf.subject == pki.leaf.cert.subject.rfc4514_string()


class TestSignatures:
    """Bad and weak signatures in the path."""

    def test_forged_leaf_is_bad_signature(self, pki: Pki):
        """A leaf naming the intermediate but signed by another key is chain.bad_signature."""
        forged = mint_certificate("forged", issuer=Issued(pki.inter.cert, pki.spare_rsa), key=pki.leaf.key)  # fmt: skip

        report = check(forged, [pki.inter], anchors=pki.anchors)

        assert codes(report) == {C.CHAIN_BAD_SIGNATURE}
        assert report.chain == ()

    def test_forged_intermediate_is_bad_signature(self, pki: Pki):
        """An intermediate naming the root but not signed by it is chain.bad_signature on that CA."""
        fake = mint_certificate("fake CA", issuer=Issued(pki.root.cert, pki.spare_rsa), key=pki.spare_rsa2, ca=True)  # fmt: skip
        leaf = mint_certificate("under-fake", issuer=fake, key=pki.leaf.key)

        report = check(leaf, [fake], anchors=pki.anchors)

        assert codes(report) == {C.CHAIN_BAD_SIGNATURE}
        assert report.findings[0].certificate == fake.cert.subject.rfc4514_string()

    @pytest.mark.parametrize("algorithm", ["sha1", "md5"])
    def test_weak_leaf_signature(self, pki: Pki, algorithm: str):
        """A leaf signed with SHA-1 or MD5 is signature.weak_algorithm (not chain.untrusted)."""
        leaf = resign_weak(mint_certificate(f"{algorithm}-leaf", issuer=pki.inter, key=pki.leaf.key), pki.inter, algorithm)  # fmt: skip

        report = check(leaf, [pki.inter], anchors=pki.anchors)

        assert codes(report) == {C.SIGNATURE_WEAK_ALGORITHM}
        assert algorithm.upper() in report.findings[0].message
        assert len(report.chain) == 3

    def test_weak_intermediate_signature(self, pki: Pki):
        """An intermediate signed with SHA-1 is signature.weak_algorithm on that CA."""
        inter = resign_weak(mint_certificate("sha1 CA", issuer=pki.root, key=pki.spare_rsa, ca=True), pki.root)  # fmt: skip
        leaf = mint_certificate("under-sha1", issuer=inter, key=pki.leaf.key)

        report = check(leaf, [inter], anchors=pki.anchors)

        assert codes(report) == {C.SIGNATURE_WEAK_ALGORITHM}
        assert report.findings[0].certificate == inter.cert.subject.rfc4514_string()


class TestTrust:
    """No path to a trust anchor, and CA constraints the verifier keeps."""

    def test_no_anchors_means_untrusted(self, pki: Pki):
        """Without trust anchors every chain is chain.untrusted, and the message says why."""
        report = check(pki.leaf, [pki.inter], anchors=())

        assert codes(report) == {C.CHAIN_UNTRUSTED}
        assert "no trust anchors" in report.findings[0].message

    def test_unknown_root(self, pki: Pki):
        """A chain to a root that is not an anchor is chain.untrusted naming the missing issuer."""
        report = check(pki.leaf, [pki.inter], anchors=(pki.other_root.cert,))

        assert codes(report) == {C.CHAIN_UNTRUSTED}
        assert "Test Root CA" in report.findings[0].message
        assert "neither in the bundle nor a trust anchor" in report.findings[0].message

    def test_untrusted_root_shipped_in_the_bundle(self, pki: Pki):
        """A bundle that carries its own (untrusted) root: the message names that root as the
        end of the chain, not as a missing issuer."""
        report = check(pki.leaf, [pki.inter, pki.root], anchors=(pki.other_root.cert,))

        assert codes(report) == {C.CHAIN_UNTRUSTED}
        message = report.findings[0].message
        assert "ends at the self-signed" in message
        assert "Test Root CA" in message
        assert "neither in the bundle" not in message

    def test_missing_intermediate(self, pki: Pki):
        """Leaf without its intermediate is chain.untrusted naming the intermediate."""
        report = check(pki.leaf, anchors=pki.anchors)

        assert codes(report) == {C.CHAIN_UNTRUSTED}
        assert "Intermediate CA 1" in report.findings[0].message

    def test_self_signed_leaf(self, pki: Pki):
        """A self-signed leaf that is not an anchor is chain.untrusted."""
        leaf = mint_certificate("selfie", key=pki.leaf.key)

        report = check(leaf, anchors=pki.anchors)

        assert codes(report) == {C.CHAIN_UNTRUSTED}
        assert "self-signed" in report.findings[0].message

    def test_ca_without_key_usage_is_accepted(self, pki: Pki):
        """RFC 5280 (and OpenSSL): a CA certificate without a keyUsage extension may sign."""
        inter = mint_certificate("no-ku CA", issuer=pki.root, key=pki.spare_rsa, ca=True, key_usage=False)  # fmt: skip
        leaf = mint_certificate("under-no-ku", issuer=inter, key=pki.leaf.key)

        assert check(leaf, [inter], anchors=pki.anchors).findings == ()

    def test_issuer_that_is_not_a_ca_is_refused(self, pki: Pki):
        """The CA extension policy is kept: an issuer without CA:TRUE is untrusted."""
        inter = mint_certificate("not a CA", issuer=pki.root, key=pki.spare_rsa, ca=False)
        leaf = mint_certificate("under-non-ca", issuer=inter, key=pki.leaf.key)

        assert codes(check(leaf, [inter], anchors=pki.anchors)) == {C.CHAIN_UNTRUSTED}


class TestIdentity:
    """The identity rule: subject/issuer must equal the version in use when pinned."""

    def test_changed_identity_when_pinned(self, pki: Pki):
        """A different subject is identity.changed when the policy pins identity."""
        bundle = Bundle(pki.leaf.cert, (pki.inter.cert,), pki.leaf.key)
        policy = replace(DEFAULT_POLICY, pin_identity=True)
        expected = ("CN=someone else", pki.inter.cert.subject.rfc4514_string())

        report = validate_bundle(bundle, trust_anchors=pki.anchors, policy=policy, at=AT, expected_identity=expected)  # fmt: skip

        assert codes(report) == {C.IDENTITY_CHANGED}

    def test_same_identity_when_pinned(self, pki: Pki):
        """The same subject and issuer (as the summary spells them) pass the pinned rule."""
        bundle = Bundle(pki.leaf.cert, (pki.inter.cert,), pki.leaf.key)
        policy = replace(DEFAULT_POLICY, pin_identity=True)
        first = validate_bundle(bundle, trust_anchors=pki.anchors, policy=policy, at=AT)
        assert first.leaf is not None

        report = validate_bundle(bundle, trust_anchors=pki.anchors, policy=policy, at=AT, expected_identity=(first.leaf.subject, first.leaf.issuer))  # fmt: skip

        assert report.findings == ()

    def test_identity_not_checked_unless_pinned(self, pki: Pki):
        """Without pin_identity a different subject is not a finding."""
        bundle = Bundle(pki.leaf.cert, (pki.inter.cert,), pki.leaf.key)

        report = validate_bundle(bundle, trust_anchors=pki.anchors, policy=DEFAULT_POLICY, at=AT, expected_identity=("CN=x", "CN=y"))  # fmt: skip

        assert report.findings == ()


class TestSeveralFindings:
    """Findings accumulate; every finding names its certificate and severity."""

    def test_several_findings_at_once(self, pki: Pki):
        """Expired + no clientAuth + CA leaf + weak key + no key: all reported together."""
        leaf = mint_certificate(
            "everything-wrong", issuer=pki.inter, key=pki.rsa1024,
            eku=(ExtendedKeyUsageOID.SERVER_AUTH,), not_after=EPOCH + dt.timedelta(days=30),
        )  # fmt: skip

        report = check(leaf, [pki.inter], anchors=pki.anchors, with_key=False)

        assert codes(report) == {C.VALIDITY_EXPIRED, C.USAGE_CLIENT_AUTH_MISSING, C.KEY_WEAK, C.KEY_MISSING}  # fmt: skip
        assert all(f.certificate for f in report.findings)

    def test_rejects_naive_time(self, pki: Pki):
        """``at`` must be timezone-aware: a naive time is a programming error."""
        with pytest.raises(ValueError, match="timezone"):
            check(pki.leaf, [pki.inter], anchors=pki.anchors, at=dt.datetime(2026, 3, 1))

    def test_policy_rejects_nonsense(self):
        """A policy with an inverted RSA range or negative lifetime cannot be built."""
        with pytest.raises(ValueError, match="rsa"):
            ValidationPolicy(min_rsa_bits=4096, max_rsa_bits=2048)
        with pytest.raises(ValueError, match="must be >= 0"):
            ValidationPolicy(min_remaining_days=-1)


class TestPolicyValidator:
    """The Validator port: parse Key Vault material, never raise for a bad bundle."""

    def test_implements_the_port(self, pki: Pki):
        """PolicyValidator satisfies rotation.ports.Validator."""
        validator: Validator = PolicyValidator(pki.anchors)

        assert isinstance(validator, Validator)

    def test_validates_pkcs12_material(self, pki: Pki):
        """A Key Vault PKCS#12 secret with the full chain is accepted."""
        material = SecretMaterial(content_type="application/x-pkcs12", value=to_pkcs12(pki.leaf, [pki.inter]))  # fmt: skip

        report = PolicyValidator(pki.anchors).validate(material, at=AT)

        assert report.accepted
        assert len(report.chain) == 3

    def test_revocation_mode_without_fetcher(self, pki: Pki):
        """With a CDP but no fetcher, soft mode warns that the CRL was not fetched."""
        leaf = mint_certificate("cdp", issuer=pki.inter, key=pki.leaf.key, crl_urls=("http://127.0.0.1:9/x.crl",))  # fmt: skip
        material = SecretMaterial(content_type="application/x-pem-file", value=to_pem_bundle(leaf, [pki.inter]))  # fmt: skip

        report = PolicyValidator(pki.anchors).validate(material, at=AT)

        assert [(f.code, f.severity) for f in report.findings] == [(C.REVOCATION_UNAVAILABLE, Severity.WARNING)] * 2  # fmt: skip
        assert "no CRL fetcher" in report.findings[0].message
        assert report.accepted

    @pytest.mark.parametrize(
        "value",
        [b"", b"\x00" * 50, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", b"MIIB"],
        ids=["empty", "zeros", "bad-pem", "short-base64"],
    )  # fmt: skip
    def test_unreadable_material_is_a_finding(self, pki: Pki, value: bytes):
        """Unparsable material is one format.unreadable error with no leaf, never an exception."""
        material = SecretMaterial(content_type="application/x-pkcs12", value=value)

        report = PolicyValidator(pki.anchors).validate(material, at=AT)

        assert codes(report) == {C.FORMAT_UNREADABLE}
        assert report.leaf is None
        assert not report.accepted

    def test_report_carries_no_private_key_material(self, pki: Pki):
        """Nothing of the private key (PEM body or numbers) reaches the report or its repr."""
        material = SecretMaterial(content_type="application/x-pem-file", value=to_pem_bundle(pki.leaf, [pki.inter]))  # fmt: skip
        private = pki.leaf.key.private_numbers()  # type: ignore[union-attr]
        assert isinstance(private, rsa.RSAPrivateNumbers)

        text = repr(PolicyValidator(pki.anchors).validate(material, at=AT)) + repr(material)

        body = pki.leaf.key_pem.decode().splitlines()[1]
        assert body not in text
        assert "PRIVATE KEY" not in text
        assert str(private.d) not in text
        assert f"{private.p:X}" not in text


class TestHostileBundles:
    """Hostile input is a finding in bounded time, never a crash."""

    def test_pem_with_thousands_of_certificates(self, pki: Pki, monkeypatch: pytest.MonkeyPatch):
        """A PEM with thousands of certificates is format.unreadable before any is parsed."""
        material = SecretMaterial(content_type="application/x-pem-file", value=pki.leaf.pem * 800)
        parsed: list[int] = []
        real = x509.load_pem_x509_certificates
        monkeypatch.setattr(x509, "load_pem_x509_certificates", lambda data: parsed.append(1) or real(data))  # type: ignore[func-returns-value]  # fmt: skip

        report = PolicyValidator(pki.anchors).validate(material, at=AT)

        assert codes(report) == {C.FORMAT_UNREADABLE}
        assert parsed == []

    def test_many_same_name_impostors_are_bounded(self, pki: Pki, monkeypatch: pytest.MonkeyPatch):
        """60 CAs that all claim the intermediate's name (wrong keys) cost a bounded search."""
        impostor_ca = Issued(pki.inter.cert, pki.spare_rsa)
        name = "certrotate Test Intermediate CA 1"
        impostors = [
            mint_certificate(name, issuer=pki.root, key=pki.spare_rsa2, ca=True, serial=1000 + i)
            for i in range(60)
        ]
        leaf = mint_certificate("victim", issuer=impostor_ca, key=pki.leaf.key)
        paths: list[int] = []
        real_validate = pkix.async_validate_path  # type: ignore[attr-defined]

        async def counting(*args: object, **kwargs: object) -> object:
            paths.append(1)
            return await real_validate(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(pkix, "async_validate_path", counting)

        report = check(leaf, impostors, anchors=pki.anchors)

        assert codes(report) == {C.CHAIN_BAD_SIGNATURE}
        assert len(paths) <= 8  # candidate paths validated: bounded, whatever the pool

    @settings(max_examples=100, deadline=None)
    @given(value=st.binary(max_size=4096))
    def test_random_material_never_raises(self, pki: Pki, value: bytes):
        """Random bytes as a secret value give a report (format.unreadable), never an exception."""
        report = PolicyValidator(pki.anchors).validate(
            SecretMaterial(content_type="application/x-pkcs12", value=value), at=AT
        )

        assert isinstance(report, ValidationReport)
        assert not report.accepted
