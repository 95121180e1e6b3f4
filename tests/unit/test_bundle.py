"""Tests for rotation.domain.bundle: Key Vault bundle formats, leaf choice, bounds on hostile input."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.pki import Issued, mint_certificate, to_pem_bundle, to_pkcs12
from rotation.domain.bundle import (
    MAX_BUNDLE_BYTES,
    MAX_CERTIFICATES,
    Bundle,
    extend_bundle,
    parse_bundle,
    parse_certificates,
    parse_private_key,
)
from rotation.domain.errors import BundleFormatError
from tests.unit.conftest import Pki


def _encrypted_pem(issued: Issued, password: bytes) -> bytes:
    return issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


class TestPkcs12:
    """PKCS#12 as Key Vault stores it: empty password by default, base64 in the secret value."""

    def test_empty_password(self, pki: Pki):
        """An unencrypted PKCS#12 yields the leaf, the chain and the key."""
        bundle = parse_bundle(to_pkcs12(pki.leaf, [pki.inter, pki.root]))

        assert bundle.leaf == pki.leaf.cert
        assert set(bundle.others) == {pki.inter.cert, pki.root.cert}
        assert bundle.private_key is not None

    def test_with_password(self, pki: Pki):
        """A password-protected PKCS#12 opens with its password."""
        bundle = parse_bundle(
            to_pkcs12(pki.leaf, [pki.inter], password=b"s3cret"), password=b"s3cret"
        )

        assert bundle.leaf == pki.leaf.cert

    @pytest.mark.parametrize("given_password", [None, b"wrong"])
    def test_wrong_password_is_format_error_without_the_password(self, pki: Pki, given_password):
        """A wrong or missing password is a BundleFormatError whose message names no secret."""
        data = to_pkcs12(pki.leaf, [pki.inter], password=b"s3cret")

        with pytest.raises(BundleFormatError, match="PKCS#12") as caught:
            parse_bundle(data, password=given_password)

        assert "s3cret" not in str(caught.value)
        assert "wrong" not in str(caught.value).replace("wrong password", "")

    def test_base64_as_in_the_secret_value(self, pki: Pki):
        """The base64 text Key Vault returns as the secret value parses like the raw bytes."""
        data = base64.b64encode(to_pkcs12(pki.leaf, [pki.inter]))

        assert parse_bundle(data).leaf == pki.leaf.cert

    def test_excessive_kdf_iterations_refused_before_parsing(
        self, pki: Pki, monkeypatch: pytest.MonkeyPatch
    ):
        """A PKCS#12 demanding millions of key-derivation rounds is refused before deriving."""
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(0x010000)
            .hmac_hash(hashes.SHA256())
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .build(b"pw")
        )
        data = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, pki.leaf.cert, None, encryption)  # fmt: skip
        hostile = data.replace(b"\x02\x03\x01\x00\x00", b"\x02\x03\x7f\xff\xff")
        assert hostile != data
        derivations: list[int] = []
        real = pkcs12.load_pkcs12
        monkeypatch.setattr(pkcs12, "load_pkcs12", lambda *a, **k: derivations.append(1) or real(*a, **k))  # fmt: skip

        with pytest.raises(BundleFormatError, match="iteration count"):
            parse_bundle(hostile, password=b"pw")

        assert derivations == []  # refused before OpenSSL ran a single key derivation

    def test_moderate_kdf_iterations_are_accepted(self, pki: Pki):
        """The iteration count of an ordinary PKCS#12 (here 65,536) is within the bound."""
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(0x010000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .build(b"pw")
        )
        data = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, pki.leaf.cert, None, encryption)  # fmt: skip

        assert parse_bundle(data, password=b"pw").leaf == pki.leaf.cert


class TestPem:
    """PEM as Key Vault stores it: private key and certificates, in any order."""

    @pytest.mark.parametrize("order", ["key-first", "key-last", "key-middle", "root-first"])
    def test_leaf_found_in_any_order(self, pki: Pki, order: str):
        """Whatever the order of blocks, the leaf is the certificate matching the key."""
        key, leaf, inter, root = pki.leaf.key_pem, pki.leaf.pem, pki.inter.pem, pki.root.pem
        pem = {
            "key-first": key + leaf + inter + root,
            "key-last": leaf + inter + root + key,
            "key-middle": inter + key + leaf,
            "root-first": root + inter + leaf + key,
        }[order]

        bundle = parse_bundle(pem)

        assert bundle.leaf == pki.leaf.cert
        assert pki.leaf.cert not in bundle.others

    def test_duplicates_removed(self, pki: Pki):
        """Repeated certificates count once."""
        bundle = parse_bundle(pki.leaf.pem + pki.inter.pem + pki.inter.pem + pki.leaf.pem)

        assert bundle.certificates == (pki.leaf.cert, pki.inter.cert)

    def test_without_key_leaf_is_the_certificate_issuing_nothing(self, pki: Pki):
        """Without a key, the leaf is the one certificate that issues no other in the bundle."""
        bundle = parse_bundle(pki.root.pem + pki.inter.pem + pki.leaf.pem)

        assert bundle.leaf == pki.leaf.cert
        assert bundle.private_key is None

    def test_extra_intermediates_kept(self, pki: Pki):
        """Unrelated extra certificates stay in ``others`` (the verifier ignores what it needs not)."""
        bundle = parse_bundle(to_pem_bundle(pki.leaf, [pki.inter, pki.ec_inter]))

        assert bundle.leaf == pki.leaf.cert
        assert pki.ec_inter.cert in bundle.others

    def test_encrypted_key_with_password(self, pki: Pki):
        """An encrypted PKCS#8 key opens with the password."""
        pem = pki.leaf.pem + _encrypted_pem(pki.leaf, b"pw")

        assert parse_bundle(pem, password=b"pw").private_key is not None

    def test_encrypted_key_without_password(self, pki: Pki):
        """An encrypted key and no password says so."""
        with pytest.raises(BundleFormatError, match="no password"):
            parse_bundle(pki.leaf.pem + _encrypted_pem(pki.leaf, b"pw"))

    def test_two_keys_refused(self, pki: Pki):
        """Two private keys are ambiguous and refused."""
        with pytest.raises(BundleFormatError, match="2 private keys"):
            parse_bundle(pki.leaf.key_pem + pki.leaf.pem + pki.inter.key_pem)

    def test_no_certificate(self, pki: Pki):
        """A key alone is not a bundle; the message names no key material."""
        with pytest.raises(BundleFormatError, match="no CERTIFICATE") as caught:
            parse_bundle(pki.leaf.key_pem)

        assert pki.leaf.key_pem.decode().splitlines()[1] not in str(caught.value)

    def test_der_certificate(self, pki: Pki):
        """A bare DER certificate is a bundle with no key."""
        bundle = parse_bundle(pki.leaf.cert.public_bytes(serialization.Encoding.DER))

        assert bundle == Bundle(pki.leaf.cert)

    def test_der_ending_in_a_whitespace_byte(self, pki: Pki):
        """DER is binary: a signature whose last byte is 0x09-0x0D or 0x20 is data, not padding.

        (About one certificate in forty ends so; stripping it once made CI fail at random.)
        """
        for serial in range(1, 5000):
            cert = mint_certificate(
                "ws.test", issuer=pki.inter, key=pki.leaf.key, serial=serial
            ).cert
            der = cert.public_bytes(serialization.Encoding.DER)
            if der[-1:].isspace():
                break
        assert der[-1:].isspace()

        assert parse_bundle(der) == Bundle(cert)
        assert parse_certificates(der) == (cert,)


class TestHostileInput:
    """Work is bounded before parsing; anything malformed is a BundleFormatError."""

    def test_thousands_of_certificates_refused_before_parsing(
        self, pki: Pki, monkeypatch: pytest.MonkeyPatch
    ):
        """A PEM with 5,000 certificates is refused before any is parsed."""
        pem = pki.leaf.pem * 5000
        if len(pem) > MAX_BUNDLE_BYTES:
            pem = pki.leaf.pem * (MAX_BUNDLE_BYTES // len(pki.leaf.pem))
        parsed: list[int] = []
        real = x509.load_pem_x509_certificates
        monkeypatch.setattr(x509, "load_pem_x509_certificates", lambda data: parsed.append(1) or real(data))  # fmt: skip

        with pytest.raises(BundleFormatError, match=f"limit {MAX_CERTIFICATES}"):
            parse_bundle(pem)

        assert parsed == []  # refused before any certificate was parsed

    def test_oversized_input_refused(self):
        """Input over 1 MiB is refused by size alone."""
        with pytest.raises(BundleFormatError, match="larger than"):
            parse_bundle(b"0" * (MAX_BUNDLE_BYTES + 1))

    def test_truncated_der(self, pki: Pki):
        """A truncated PKCS#12 or certificate is a format error."""
        for data in (to_pkcs12(pki.leaf)[:200], pki.leaf.cert.public_bytes(serialization.Encoding.DER)[:-10]):  # fmt: skip
            with pytest.raises(BundleFormatError):
                parse_bundle(data)

    def test_hostile_der_lengths(self):
        """DER with absurd lengths is a format error, not an IndexError."""
        for data in (b"\x30\x84\xff\xff\xff\xff", b"\x30\x80", b"\x30\x82\x01", b"\x30"):
            with pytest.raises(BundleFormatError):
                parse_bundle(data)

    @settings(max_examples=150, deadline=None)
    @given(data=st.binary(min_size=0, max_size=2048))
    def test_random_bytes_never_crash(self, data: bytes):
        """Random bytes either parse or raise BundleFormatError; nothing else escapes."""
        try:
            bundle = parse_bundle(data)
        except BundleFormatError:
            return
        assert isinstance(bundle.leaf, x509.Certificate)

    @settings(max_examples=100, deadline=None)
    @given(prefix=st.binary(max_size=64), cut=st.integers(min_value=1, max_value=400))
    def test_mangled_pkcs12_never_crashes(self, pki: Pki, prefix: bytes, cut: int):
        """A real PKCS#12 with its tail cut and junk in front is a BundleFormatError, never a crash."""
        with pytest.raises(BundleFormatError):
            parse_bundle(prefix + to_pkcs12(pki.leaf)[:-cut])


class TestHelpers:
    """parse_certificates, parse_private_key and extend_bundle (what the CLI combines)."""

    def test_parse_certificates_pem_and_der(self, pki: Pki):
        """Anchors parse from a PEM bundle or one DER certificate."""
        assert parse_certificates(pki.root.pem + pki.ec_root.pem) == (
            pki.root.cert,
            pki.ec_root.cert,
        )
        assert parse_certificates(pki.root.cert.public_bytes(serialization.Encoding.DER)) == (pki.root.cert,)  # fmt: skip

    def test_parse_certificates_rejects_garbage(self):
        """Garbage is not a certificate."""
        with pytest.raises(BundleFormatError, match="not a PEM or DER"):
            parse_certificates(b"hello")

    def test_parse_private_key_pem_and_der(self, pki: Pki):
        """A key parses from PEM or DER PKCS#8."""
        der = pki.leaf.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

        assert parse_private_key(pki.leaf.key_pem).public_key() == pki.leaf.key.public_key()
        assert parse_private_key(der).public_key() == pki.leaf.key.public_key()
        with pytest.raises(BundleFormatError, match="not a readable private key"):
            parse_private_key(b"\x30\x03\x02\x01\x00")

    def test_extend_bundle_repicks_the_leaf(self, pki: Pki):
        """Adding the key and the chain to a leaf-only bundle keeps the leaf and adds the rest."""
        bare = parse_bundle(pki.inter.pem + pki.leaf.pem)

        bundle = extend_bundle(bare, certificates=[pki.root.cert], private_key=pki.leaf.key)

        assert bundle.leaf == pki.leaf.cert
        assert bundle.private_key is pki.leaf.key
        assert set(bundle.others) == {pki.inter.cert, pki.root.cert}

    def test_ca_key_pair_bundle_picks_the_matching_certificate(self, pki: Pki):
        """The leaf is the certificate matching the key, even when another one issues nothing."""
        other = mint_certificate("sibling", issuer=pki.inter, key=pki.spare_rsa)

        bundle = parse_bundle(other.pem + pki.leaf.pem + pki.leaf.key_pem)

        assert bundle.leaf == pki.leaf.cert


class TestPasswords:
    """Passwords apply where they are needed and never leak."""

    def test_password_for_an_unencrypted_key_is_ignored(self, pki: Pki):
        """A password given for a PKCS#12 does not break an unencrypted PEM key."""
        assert parse_private_key(pki.leaf.key_pem, password=b"for-the-pfx").public_key() == pki.leaf.key.public_key()  # fmt: skip

    def test_legacy_encrypted_rsa_key(self, pki: Pki):
        """A traditional OpenSSL-encrypted RSA key (Proc-Type header) opens with its password."""
        legacy = pki.leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"pw"),
        )
        assert b"Proc-Type" in legacy

        assert parse_bundle(pki.leaf.pem + legacy, password=b"pw").private_key is not None

    def test_wrong_key_password(self, pki: Pki):
        """A wrong password for an encrypted key is a format error naming no secret."""
        with pytest.raises(BundleFormatError, match="cannot be read") as caught:
            parse_bundle(
                pki.leaf.pem + _encrypted_pem(pki.leaf, b"right-one"), password=b"left-one"
            )

        assert "right-one" not in str(caught.value)
        assert "left-one" not in str(caught.value)
