"""``KeyVaultCertificateSource`` with the unmodified Key Vault SDKs against the stand-in."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12

from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.keyvault import KeyVaultCertificateSource
from rotation.domain.errors import (
    AuthorizationError,
    CertificateNotFoundError,
    DependencyError,
    TransientDependencyError,
)
from rotation.ports import CertificateSource


def _sha1(issued):
    return issued.cert.fingerprint(hashes.SHA1()).hex().upper()


class TestListVersions:
    def test_follows_every_page_and_maps_to_domain(self, devstack, devstack_pki, kv_source):
        """30 versions (2 SDK pages of 25): all come back, with thumbprint and dates mapped."""
        made = [devstack.import_certificate("c", devstack_pki.pfx()) for _ in range(30)]

        versions = kv_source.list_certificate_versions(devstack.vault_url, "c")

        assert sorted(v.version for v in versions) == sorted(made)
        assert devstack.request_log.kv.count("GET", "/certificates/c/versions") == 3  # + challenge
        first = versions[0]
        assert first.vault_url == devstack.vault_url
        assert first.name == "c"
        assert first.enabled is True
        assert first.thumbprint_sha1 == _sha1(devstack_pki.first[0])
        assert first.expires == devstack_pki.first[0].cert.not_valid_after_utc
        assert first.created.tzinfo is not None
        assert len({v.created for v in versions}) == 30

    def test_unknown_certificate_is_not_found(self, devstack, kv_source):
        """404 becomes CertificateNotFoundError."""
        with pytest.raises(CertificateNotFoundError, match="'nope'"):
            kv_source.list_certificate_versions(devstack.vault_url, "nope")


class TestVersionProperties:
    def test_maps_one_version(self, devstack, devstack_pki, kv_source):
        """Disabled flag and thumbprint come through the version list."""
        version = devstack.import_certificate("c", devstack_pki.pfx("second"), enabled=False)

        (got,) = kv_source.list_certificate_versions(devstack.vault_url, "c")

        assert got.version == version
        assert got.enabled is False
        assert got.thumbprint_sha1 == _sha1(devstack_pki.second[0])
        assert got.secret_id == f"{devstack.vault_url}/secrets/c/{version}"

    def test_missing_version_is_not_found(self, devstack, devstack_pki, kv_source):
        """An unknown version's secret is CertificateNotFoundError, not retryable."""
        devstack.import_certificate("c", devstack_pki.pfx())

        with pytest.raises(CertificateNotFoundError) as caught:
            kv_source.get_secret(devstack.vault_url, "c", "0" * 32)

        assert caught.value.retryable is False


class TestGetSecret:
    def test_pkcs12_secret_becomes_der_bytes_with_chain(self, devstack, devstack_pki, kv_source):
        """PKCS#12 secrets are base64-decoded into loadable bytes with key and chain."""
        version = devstack.import_certificate("c", devstack_pki.pfx())

        material = kv_source.get_secret(devstack.vault_url, "c", version)

        loaded = pkcs12.load_pkcs12(material.value, None)
        assert material.content_type == "application/x-pkcs12"
        assert loaded.key is not None
        assert len(loaded.additional_certs) == 2
        assert material.secret_id == f"{devstack.vault_url}/secrets/c/{version}"
        assert "value" not in repr(material)

    def test_pem_secret_becomes_pem_bytes(self, devstack, devstack_pki, kv_source):
        """PEM secrets come back as their text bytes."""
        version = devstack.import_certificate(
            "p", devstack_pki.pem(), content_type="application/x-pem-file"
        )

        material = kv_source.get_secret(devstack.vault_url, "p", version)

        assert material.content_type == "application/x-pem-file"
        assert material.value.startswith(b"-----BEGIN PRIVATE KEY-----")

    def test_disabled_secret_is_a_permanent_dependency_error(
        self, devstack, devstack_pki, kv_source
    ):
        """403 SecretDisabled is not an access problem: DependencyError, not retryable."""
        version = devstack.import_certificate("c", devstack_pki.pfx(), enabled=False)

        with pytest.raises(DependencyError) as caught:
            kv_source.get_secret(devstack.vault_url, "c", version)

        assert type(caught.value) is DependencyError
        assert caught.value.status_code == 403


class TestFaults:
    def test_429_is_retried_then_succeeds(self, devstack, devstack_pki, kv_source):
        """One 429 (Retry-After 0) is retried by the SDK and the call succeeds."""
        version = devstack.import_certificate("c", devstack_pki.pfx())
        kv_source.get_secret(devstack.vault_url, "c", version)  # settle the challenge
        devstack.request_log.clear()
        devstack.faults_kv.fail("/secrets/*", status=429, retry_after=0)

        material = kv_source.get_secret(devstack.vault_url, "c", version)

        assert material.value
        assert [e.status for e in devstack.request_log.kv.entries()] == [429, 200]

    @pytest.mark.parametrize("status", [500, 503])
    def test_persistent_5xx_is_transient(self, devstack, devstack_pki, kv_source, status):
        """5xx after the retries becomes TransientDependencyError with the status."""
        devstack.import_certificate("c", devstack_pki.pfx())
        devstack.faults_kv.fail("/certificates/*", status=status, count=5)

        with pytest.raises(TransientDependencyError) as caught:
            kv_source.list_certificate_versions(devstack.vault_url, "c")

        assert caught.value.status_code == status
        assert caught.value.retryable is True

    def test_connection_reset_is_transient(self, devstack, devstack_pki, kv_source):
        """Resets on every attempt become TransientDependencyError."""
        devstack.import_certificate("c", devstack_pki.pfx())
        devstack.faults_kv.reset("/certificates/*", count=5)

        with pytest.raises(TransientDependencyError, match="connection or timeout"):
            kv_source.list_certificate_versions(devstack.vault_url, "c")

    def test_latency_beyond_read_timeout_is_transient(self, devstack, devstack_pki):
        """A read timeout is transient; latency within it is just slow."""
        devstack.import_certificate("c", devstack_pki.pfx())
        source = KeyVaultCertificateSource(
            StaticTokenCredential(devstack.token),
            connection_verify=str(devstack.ca_bundle),
            verify_challenge_resource=False,
            retry_total=0,
            read_timeout=0.2,
        )
        devstack.faults_kv.delay("/certificates/c/versions", seconds=0.6, count=1)

        with pytest.raises(TransientDependencyError):
            source.list_certificate_versions(devstack.vault_url, "c")

    def test_403_is_an_authorization_error(self, devstack, devstack_pki, kv_source):
        """Access denied (403) becomes AuthorizationError."""
        version = devstack.import_certificate("c", devstack_pki.pfx())
        devstack.faults_kv.fail("/secrets/*", status=403, count=3)

        with pytest.raises(AuthorizationError):
            kv_source.get_secret(devstack.vault_url, "c", version)

    def test_no_token_in_any_error_message(self, devstack, devstack_pki, kv_source):
        """Neither the domain error nor its cause mentions the token."""
        devstack.import_certificate("c", devstack_pki.pfx())
        devstack.faults_kv.fail(status=503, count=5)

        with pytest.raises(TransientDependencyError) as caught:
            kv_source.list_certificate_versions(devstack.vault_url, "c")

        for text in (str(caught.value), repr(caught.value), str(caught.value.__cause__)):
            assert devstack.token not in text


class TestClients:
    def test_one_client_pair_per_vault_cached(self, devstack, devstack_pki, kv_source):
        """Clients are created lazily once per vault URL (trailing slash and case ignored)."""
        devstack.import_certificate("c", devstack_pki.pfx())

        kv_source.list_certificate_versions(devstack.vault_url, "c")
        kv_source.list_certificate_versions(devstack.vault_url.upper() + "/", "c")

        assert len(kv_source._clients) == 1
        assert devstack.token not in repr(kv_source)

    def test_satisfies_the_port(self, kv_source):
        """The adapter is a CertificateSource."""
        port: CertificateSource = kv_source

        assert isinstance(port, CertificateSource)
