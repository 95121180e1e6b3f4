"""Private-CA scenarios the validator must get right (issue 9), minted here with cryptography.

AKI/SKI-less chains (accepted, as OpenSSL does), a forged CRL for a sibling CA, a revoked
intermediate, an expired CRL, a CRL signed by a key without cRLSign, and a negative serial.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.pki import Issued, make_key
from rotation.domain.bundle import Bundle
from rotation.domain.model import ValidationReport
from rotation.domain.policy import DEFAULT_POLICY, RevocationMode
from rotation.domain.validation import TrustAnchors, validate_bundle
from tests.hostile import with_serial

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
MODES = [RevocationMode.SOFT, RevocationMode.HARD]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "private CA test"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # fmt: skip


def mint(
    cn: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    key_ids: bool = True,
    crl_sign: bool = True,
    serial: int | None = None,
) -> Issued:
    """A certificate; ``key_ids=False`` leaves out AKI and SKI, ``crl_sign=False`` cRLSign."""
    key = make_key()
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=3650 if ca else 365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=not ca, data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca and crl_sign, encipher_only=False, decipher_only=False),
            critical=True,
        )
    )  # fmt: skip
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)  # fmt: skip
    if key_ids:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)  # fmt: skip
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)  # fmt: skip
    assert isinstance(signer, rsa.RSAPrivateKey)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def crl(
    issuer: Issued,
    *,
    revoked: tuple[int, ...] = (),
    signer: Issued | None = None,
    next_update: dt.datetime = AT + dt.timedelta(days=7),
    indirect: bool = False,
) -> x509.CertificateRevocationList:
    """A CRL naming ``issuer``, signed by ``signer`` (default: the issuer itself)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(AT - dt.timedelta(days=1))
        .next_update(next_update)
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    if indirect:
        idp = x509.IssuingDistributionPoint(full_name=None, relative_name=None, only_contains_user_certs=False, only_contains_ca_certs=False, only_some_reasons=None, indirect_crl=True, only_contains_attribute_certs=False)  # fmt: skip
        builder = builder.add_extension(idp, critical=True)
    for serial in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(AT - dt.timedelta(days=2))  # fmt: skip
        if indirect:
            entry = entry.add_extension(x509.CertificateIssuer([x509.DirectoryName(issuer.cert.subject)]), critical=True)  # fmt: skip
        builder = builder.add_revoked_certificate(entry.build())
    key = (signer or issuer).key
    assert isinstance(key, rsa.RSAPrivateKey)
    return builder.sign(key, hashes.SHA256())


def check(
    leaf: Issued,
    chain: list[Issued],
    root: Issued,
    *,
    mode: RevocationMode,
    crls: tuple[x509.CertificateRevocationList, ...] = (),
) -> ValidationReport:
    policy = DEFAULT_POLICY.__class__(revocation=mode)
    bundle = Bundle(leaf.cert, tuple(c.cert for c in chain), leaf.key)
    return validate_bundle(bundle, trust_anchors=TrustAnchors([root.cert]), policy=policy, at=AT, crls=crls)  # fmt: skip


def pairs(report: ValidationReport) -> list[tuple[str, str, str | None]]:
    return [(str(f.code), str(f.severity), f.certificate) for f in report.findings]


@pytest.fixture(scope="module", name="ca")
def _ca() -> dict[str, Issued]:
    root = mint("root", ca=True)
    inter = mint("issuing A", root, ca=True)
    sibling = mint("issuing B", root, ca=True)
    return {"root": root, "inter": inter, "sibling": sibling, "leaf": mint("client", inter)}


def subject(issued: Issued) -> str:
    return issued.cert.subject.rfc4514_string()


class TestKeyIdentifiersAbsent:
    """RFC 5280 does not require AKI/SKI; OpenSSL accepts such private-CA chains, and so do we."""

    @pytest.mark.parametrize("mode", MODES)
    def test_aki_and_ski_absent_is_accepted(self, mode: RevocationMode):
        """A root, intermediate and leaf without key identifiers, with their CRLs: no finding."""
        root = mint("bare root", ca=True, key_ids=False)
        inter = mint("bare issuing", root, ca=True, key_ids=False)
        leaf = mint("bare client", inter, key_ids=False)

        report = check(leaf, [inter], root, mode=mode, crls=(crl(inter), crl(root)))

        assert report.findings == ()
        assert [c.subject for c in report.chain] == [subject(leaf), subject(inter), subject(root)]


class TestForgedSiblingCrl:
    """A CRL forged with a sibling CA's key never stands in for the real one."""

    @pytest.mark.parametrize("mode", MODES)
    def test_forged_crl_in_the_issuers_name_cannot_hide_a_revocation(self, ca: dict[str, Issued], mode: RevocationMode):  # fmt: skip
        """Real CRL revokes the leaf; a CRL in A's name signed by B's key (B's certificate and
        CRL supplied too) changes nothing: revoked."""
        inter, sibling, root, leaf = ca["inter"], ca["sibling"], ca["root"], ca["leaf"]
        forged = crl(inter, signer=sibling)
        crls = (forged, crl(sibling), crl(inter, revoked=(leaf.cert.serial_number,)), crl(root))

        report = check(leaf, [inter, sibling], root, mode=mode, crls=crls)

        assert pairs(report) == [("revocation.revoked", "error", subject(leaf))]

    @pytest.mark.parametrize("mode", MODES)
    def test_indirect_crl_from_a_sibling_does_not_count(self, ca: dict[str, Issued], mode: RevocationMode):  # fmt: skip
        """B's genuine indirect CRL claiming A's certificates is not a CRL of the path."""
        inter, sibling, root, leaf = ca["inter"], ca["sibling"], ca["root"], ca["leaf"]
        crls = (crl(sibling, indirect=True), crl(inter, revoked=(leaf.cert.serial_number,)), crl(root))  # fmt: skip

        report = check(leaf, [inter, sibling], root, mode=mode, crls=crls)

        assert pairs(report) == [("revocation.revoked", "error", subject(leaf))]

    def test_forged_crl_alone_leaves_the_status_unknown(self, ca: dict[str, Issued]):
        """Only the forged CRL for A: the leaf's status is unknown (hard: rejected)."""
        inter, sibling, root, leaf = ca["inter"], ca["sibling"], ca["root"], ca["leaf"]

        report = check(leaf, [inter, sibling], root, mode=RevocationMode.HARD, crls=(crl(inter, signer=sibling), crl(root)))  # fmt: skip

        assert pairs(report) == [("revocation.unavailable", "error", subject(leaf))]
        assert "signature does not verify" in report.findings[0].message

    def test_unrelated_crls_change_nothing(self, ca: dict[str, Issued]):
        """A pile of CRLs of other CAs (one listing the leaf's serial) leaves a good leaf good."""
        inter, sibling, root, leaf = ca["inter"], ca["sibling"], ca["root"], ca["leaf"]
        others = tuple(crl(mint(f"other {i}", root, ca=True), revoked=(leaf.cert.serial_number,)) for i in range(3))  # fmt: skip

        report = check(leaf, [inter], root, mode=RevocationMode.HARD, crls=(*others, crl(sibling, revoked=(leaf.cert.serial_number,)), crl(inter), crl(root)))  # fmt: skip

        assert report.findings == ()


class TestRevocationScenarios:
    @pytest.mark.parametrize("mode", MODES)
    def test_revoked_intermediate(self, ca: dict[str, Issued], mode: RevocationMode):
        """The root's CRL lists the intermediate: revocation.revoked on the intermediate."""
        inter, root, leaf = ca["inter"], ca["root"], ca["leaf"]

        report = check(leaf, [inter], root, mode=mode, crls=(crl(inter), crl(root, revoked=(inter.cert.serial_number,))))  # fmt: skip

        assert pairs(report) == [("revocation.revoked", "error", subject(inter))]

    @pytest.mark.parametrize(("mode", "severity"), [(RevocationMode.SOFT, "warning"), (RevocationMode.HARD, "error")])  # fmt: skip
    def test_expired_crl(self, ca: dict[str, Issued], mode: RevocationMode, severity: str):
        """A CRL past its nextUpdate cannot show the leaf unrevoked: unavailable by mode."""
        inter, root, leaf = ca["inter"], ca["root"], ca["leaf"]
        expired = crl(inter, next_update=AT - dt.timedelta(hours=1))

        report = check(leaf, [inter], root, mode=mode, crls=(expired, crl(root)))

        assert pairs(report) == [("revocation.unavailable", severity, subject(leaf))]
        assert report.accepted is (mode is RevocationMode.SOFT)

    @pytest.mark.parametrize(("mode", "severity"), [(RevocationMode.SOFT, "warning"), (RevocationMode.HARD, "error")])  # fmt: skip
    def test_crl_signed_by_a_key_without_crl_sign(self, mode: RevocationMode, severity: str):
        """An issuing CA without cRLSign signs its CRL: that CRL does not count."""
        root = mint("root ns", ca=True)
        inter = mint("no cRLSign", root, ca=True, crl_sign=False)
        leaf = mint("client ns", inter)

        report = check(leaf, [inter], root, mode=mode, crls=(crl(inter), crl(root)))

        assert pairs(report) == [("revocation.unavailable", severity, subject(leaf))]


class TestNegativeSerial:
    """A negative serial is a finding (format.unreadable), never a crash, whatever the CRLs."""

    @pytest.mark.parametrize("mode", [*MODES, RevocationMode.OFF])
    def test_negative_serial_leaf_is_rejected_with_a_finding(self, ca: dict[str, Issued], mode: RevocationMode):  # fmt: skip
        """The leaf re-signed with serial -4660, checked against CRLs: rejected, no exception."""
        inter, root = ca["inter"], ca["root"]
        leaf = with_serial(ca["leaf"], -0x1234, issuer=inter)

        report = check(leaf, [inter], root, mode=mode, crls=(crl(inter, revoked=(7,)), crl(root)))

        assert not report.accepted
        assert ("format.unreadable", "error", subject(leaf)) in pairs(report)
        assert "not positive" in report.findings[0].message
        assert report.leaf is not None
        assert report.leaf.serial == "-1234"

    def test_zero_serial_is_rejected_too(self, ca: dict[str, Issued]):
        """Serial 0 is not positive either."""
        leaf = with_serial(ca["leaf"], 0, issuer=ca["inter"])

        report = check(leaf, [ca["inter"]], ca["root"], mode=RevocationMode.OFF)

        assert [c for c, _, _ in pairs(report)] == ["format.unreadable"]
