"""The ``CertificateSource`` contract, run against ``FakeCertificateSource`` and
``KeyVaultCertificateSource``."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from rotation.domain.errors import CertificateNotFoundError, DependencyError
from rotation.ports import CertificateSource
from tests.contract.conftest import PEM, PKCS12, VaultWorld, sha1


class TestListCertificateVersions:
    def test_is_a_certificate_source(self, vault: VaultWorld):
        """Both implement the port."""
        assert isinstance(vault.source, CertificateSource)

    def test_every_version_with_the_properties_of_its_leaf(self, vault: VaultWorld, chains):
        """Each version carries its vault, name, id, enabled flag, a UTC created time, and the
        thumbprint and validity of its leaf."""
        first, second = chains
        made = [vault.add("c", first), vault.add("c", second), vault.add("c", first)]

        listed = {
            v.version: v for v in vault.source.list_certificate_versions(vault.vault_url, "c")
        }

        assert sorted(listed) == sorted(m.version for m in made)
        for m in made:
            got = listed[m.version]
            assert (got.vault_url, got.name, got.enabled) == (vault.vault_url, "c", True)
            assert got.created.utcoffset() is not None
            assert got.thumbprint_sha1 == sha1(m.leaf)
            assert got.not_before == m.leaf.cert.not_valid_before_utc
            assert got.expires == m.leaf.cert.not_valid_after_utc
            assert got.secret_id == m.secret_id

    def test_disabled_versions_are_listed_as_disabled(self, vault: VaultWorld, chains):
        """A disabled version is listed, with enabled False."""
        off = vault.add("c", chains[0], enabled=False)

        [listed] = vault.source.list_certificate_versions(vault.vault_url, "c")

        assert (listed.version, listed.enabled) == (off.version, False)

    def test_vault_url_and_name_are_matched_without_case_or_trailing_slash(
        self, vault: VaultWorld, chains
    ):
        """Key Vault names and hosts are case-insensitive; a trailing slash changes nothing."""
        made = vault.add("partner", chains[0])

        listed = vault.source.list_certificate_versions(vault.vault_url.upper() + "/", "PARTNER")

        assert [v.version for v in listed] == [made.version]

    def test_an_unknown_certificate_is_not_found(self, vault: VaultWorld, chains):
        """No such certificate: CertificateNotFoundError naming it, not retryable."""
        vault.add("c", chains[0])

        with pytest.raises(CertificateNotFoundError, match="'nope'") as caught:
            vault.source.list_certificate_versions(vault.vault_url, "nope")

        assert caught.value.retryable is False


class TestGetSecret:
    def test_pkcs12_comes_back_as_loadable_der_with_key_and_chain(self, vault: VaultWorld, chains):
        """A PKCS#12 secret: DER bytes that load with the empty password, the key and the chain."""
        made = vault.add("c", chains[0])

        material = vault.source.get_secret(vault.vault_url, "c", made.version)

        loaded = pkcs12.load_pkcs12(material.value, None)
        assert material.content_type == PKCS12
        assert material.secret_id == made.secret_id
        assert loaded.key is not None
        assert loaded.cert is not None
        assert loaded.cert.certificate == made.leaf.cert
        assert len(loaded.additional_certs) == 2

    def test_pem_comes_back_as_its_text(self, vault: VaultWorld, chains):
        """A PEM secret: the text bytes, key and certificates."""
        made = vault.add("p", chains[1], pem=True)

        material = vault.source.get_secret(vault.vault_url, "p", made.version)

        assert material.content_type == PEM
        assert material.secret_id == made.secret_id
        assert b"PRIVATE KEY-----" in material.value
        assert made.leaf.cert in x509.load_pem_x509_certificates(material.value)

    def test_an_unknown_version_is_not_found(self, vault: VaultWorld, chains):
        """A version that does not exist: CertificateNotFoundError, not retryable."""
        vault.add("c", chains[0])

        with pytest.raises(CertificateNotFoundError) as caught:
            vault.source.get_secret(vault.vault_url, "c", "0" * 32)

        assert caught.value.retryable is False

    def test_a_disabled_version_has_no_readable_secret(self, vault: VaultWorld, chains):
        """Key Vault refuses to read a disabled secret: a permanent DependencyError (403), not
        an access problem, and no secret bytes."""
        off = vault.add("c", chains[0], enabled=False)

        with pytest.raises(DependencyError) as caught:
            vault.source.get_secret(vault.vault_url, "c", off.version)

        assert type(caught.value) is DependencyError
        assert caught.value.retryable is False
        assert caught.value.status_code == 403
        assert "disabled" in str(caught.value)
