"""``ArmApimGateway`` with the unmodified ``azure-mgmt-apimanagement`` client against the stand-in."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import hashes

from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.credentials import StaticTokenCredential
from rotation.domain.errors import (
    AuthorizationError,
    CertificateNotFoundError,
    PreconditionFailedError,
    TransientDependencyError,
)
from rotation.ports import ApimGateway


def _sha1(issued):
    return issued.cert.fingerprint(hashes.SHA1()).hex().upper()


@pytest.fixture(name="world")
def _world(devstack, devstack_pki):
    """Two Key Vault versions, one APIM entity pinned to the first, the service id."""

    class World:
        service = devstack.apim_services[0]
        service_id = devstack.service_id(service)
        v1 = devstack.import_certificate("partner", devstack_pki.pfx("first"))
        v2 = devstack.import_certificate("partner", devstack_pki.pfx("second"))
        secret_v1 = f"{devstack.vault_url}/secrets/partner/{v1}"
        secret_v2 = f"{devstack.vault_url}/secrets/partner/{v2}"
        entity_id = f"{service_id}/certificates/partner-mtls"

    devstack.put_apim_certificate(World.service, "partner-mtls", World.secret_v1)
    return World


class TestCertificates:
    def test_get_maps_the_entity_with_etag(self, world, devstack_pki, apim_gateway):
        """get_certificate: secret id, thumbprint, status and ETag."""
        got = apim_gateway.get_certificate(world.service_id, "partner-mtls")

        assert got.secret_identifier == world.secret_v1
        assert got.thumbprint == _sha1(devstack_pki.first[0])
        assert got.last_status_code == "Success"
        assert got.etag.startswith('"')
        assert got.resource_id == world.entity_id
        assert got.expiration == devstack_pki.first[0].cert.not_valid_after_utc

    def test_missing_entity_is_not_found(self, world, apim_gateway):
        """404 → CertificateNotFoundError."""
        with pytest.raises(CertificateNotFoundError):
            apim_gateway.get_certificate(world.service_id, "nope")

    def test_put_with_etag_moves_the_pin_and_keeps_identity(
        self, world, devstack_pki, apim_gateway
    ):
        """PUT with If-Match: new secret, new thumbprint, identityClientId kept, new ETag."""
        before = apim_gateway.get_certificate(world.service_id, "partner-mtls")

        after = apim_gateway.put_certificate(
            world.service_id,
            "partner-mtls",
            secret_identifier=world.secret_v2,
            identity_client_id="11111111-2222-3333-4444-555555555555",
            etag=before.etag,
        )

        assert after.thumbprint == _sha1(devstack_pki.second[0])
        assert after.identity_client_id == "11111111-2222-3333-4444-555555555555"
        assert after.etag not in ("", before.etag)

    def test_put_with_stale_etag_is_precondition_failed_and_not_retried(
        self, devstack, world, apim_gateway
    ):
        """A 412 becomes PreconditionFailedError after exactly one PUT (no Retry-After)."""
        stale = apim_gateway.get_certificate(world.service_id, "partner-mtls").etag
        devstack.faults_arm.concurrent_write("*/certificates/partner-mtls", method="PUT")
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError) as caught:
            apim_gateway.put_certificate(
                world.service_id,
                "partner-mtls",
                secret_identifier=world.secret_v2,
                identity_client_id=None,
                etag=stale,
            )

        assert caught.value.status_code == 412
        assert devstack.request_log.arm.count("PUT") == 1

    def test_create_without_etag(self, world, apim_gateway):
        """etag=None creates a new entity."""
        created = apim_gateway.put_certificate(
            world.service_id,
            "new-one",
            secret_identifier=world.secret_v2,
            identity_client_id=None,
            etag=None,
        )

        assert created.certificate_id == "new-one"
        assert created.identity_client_id is None

    def test_refresh_failure_shows_in_status(self, devstack, world, apim_gateway):
        """An injected Key Vault refresh failure: status Failed, thumbprint unchanged."""
        before = apim_gateway.get_certificate(world.service_id, "partner-mtls")
        devstack.faults_arm.keyvault_refresh_failure("*/certificates/partner-mtls/*")

        after = apim_gateway.refresh_certificate(world.service_id, "partner-mtls")

        assert after.last_status_code == "Failed"
        assert after.last_status_message
        assert after.thumbprint == before.thumbprint

    def test_delete_then_delete_again(self, world, apim_gateway):
        """Delete with the ETag; deleting a missing entity succeeds."""
        etag = apim_gateway.get_certificate(world.service_id, "partner-mtls").etag

        apim_gateway.delete_certificate(world.service_id, "partner-mtls", etag=etag)
        apim_gateway.delete_certificate(world.service_id, "partner-mtls", etag=etag)

        with pytest.raises(CertificateNotFoundError):
            apim_gateway.get_certificate(world.service_id, "partner-mtls")

    def test_delete_with_stale_etag_fails(self, world, apim_gateway):
        """A stale ETag on delete is PreconditionFailedError."""
        with pytest.raises(PreconditionFailedError):
            apim_gateway.delete_certificate(world.service_id, "partner-mtls", etag='"stale"')

    def test_list_follows_pages(self, devstack, world, apim_gateway):
        """150 entities: two ARM pages, all listed."""
        for i in range(149):
            devstack.put_apim_certificate(world.service, f"c{i}", world.secret_v1)

        listed = apim_gateway.list_certificates(world.service_id)

        assert len(listed) == 150
        assert devstack.request_log.arm.count("GET", "*/certificates") == 2


class TestBackends:
    def test_update_with_etag_patches_only_certificate_ids(
        self, devstack, world, apim_gateway, devstack_http
    ):
        """PATCH keeps header/query/authorization credentials and other properties."""
        credentials = {
            "certificateIds": [world.entity_id],
            "header": {"x-partner": ["demo"]},
            "query": {"sv": ["v1"]},
            "authorization": {"scheme": "Basic", "parameter": "ZGVtbw=="},
        }
        url = devstack.arm_endpoint + world.service_id + "/backends/b"
        devstack_http.put(
            url,
            params={"api-version": "2024-05-01"},
            json={
                "properties": {
                    "url": "https://b.test",
                    "protocol": "http",
                    "title": "B",
                    "credentials": credentials,
                }
            },
            headers={"Authorization": f"Bearer {devstack.token}"},
        )
        current = apim_gateway.get_backend(world.service_id, "b")

        updated = apim_gateway.update_backend_certificates(
            world.service_id, "b", certificate_ids=("/new",), etag=current.etag
        )

        stored = devstack.state.service(world.service).backends["b"].properties
        assert updated.certificate_ids == ("/new",)
        assert stored["credentials"] == {**credentials, "certificateIds": ["/new"]}
        assert stored["title"] == "B"
        assert updated.etag != current.etag

    def test_update_from_a_listed_backend_reads_the_etag_first(
        self, devstack, world, apim_gateway
    ):
        """Lists carry no ETag: the adapter GETs, then PATCHes with If-Match (2 calls)."""
        devstack.put_backend(
            world.service, "b", url="https://b.test", certificate_ids=[world.entity_id]
        )
        [listed] = apim_gateway.list_backends(world.service_id)
        devstack.request_log.clear()

        updated = apim_gateway.update_backend_certificates(
            world.service_id, "b", certificate_ids=("/new",), etag=listed.etag
        )

        assert listed.etag == ""
        assert updated.certificate_ids == ("/new",)
        assert [e.method for e in devstack.request_log.arm.entries()] == ["GET", "PATCH"]

    def test_changed_since_listed_is_precondition_failed(self, devstack, world, apim_gateway):
        """If the certificate ids moved between list and update, refuse (re-plan)."""
        devstack.put_backend(world.service, "b", url="https://b.test", certificate_ids=["/a"])
        apim_gateway.list_backends(world.service_id)
        devstack.put_backend(world.service, "b", url="https://b.test", certificate_ids=["/other"])

        with pytest.raises(PreconditionFailedError, match="changed since listed"):
            apim_gateway.update_backend_certificates(
                world.service_id, "b", certificate_ids=("/new",), etag=""
            )

    def test_concurrent_write_gives_precondition_failed(self, devstack, world, apim_gateway):
        """An injected concurrent write makes the PATCH a genuine 412, raised once."""
        devstack.put_backend(world.service, "b", url="https://b.test", certificate_ids=[])
        etag = apim_gateway.get_backend(world.service_id, "b").etag
        devstack.faults_arm.concurrent_write("*/backends/b", method="PATCH")
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError):
            apim_gateway.update_backend_certificates(
                world.service_id, "b", certificate_ids=("/x",), etag=etag
            )

        assert devstack.request_log.arm.count("PATCH") == 1

    def test_twenty_of_two_thousand_backends(self, devstack, world, apim_gateway):
        """Bind 20 of 2,000 backends: list (20 pages) and 20 updates, in a few seconds."""
        for i in range(2000):
            ids = [world.entity_id] if i % 100 == 0 else []
            devstack.put_backend(
                world.service, f"b{i:04}", url="https://b.test", certificate_ids=ids
            )
        devstack.request_log.clear()
        start = time.perf_counter()

        backends = apim_gateway.list_backends(world.service_id)
        bound = [b for b in backends if world.entity_id in b.certificate_ids]
        for backend in bound:
            apim_gateway.update_backend_certificates(
                world.service_id, backend.backend_id, certificate_ids=("/new",), etag=backend.etag
            )
        elapsed = time.perf_counter() - start

        assert len(backends) == 2000
        assert len(bound) == 20
        assert devstack.request_log.arm.count("GET", "*/backends") == 20
        assert devstack.request_log.arm.count("PATCH") == 20
        assert elapsed < 10


class TestFaults:
    def test_429_is_retried(self, devstack, world, apim_gateway):
        """A 429 with Retry-After 0 is retried and the call succeeds."""
        devstack.faults_arm.fail("*/certificates/*", status=429, retry_after=0)

        got = apim_gateway.get_certificate(world.service_id, "partner-mtls")

        assert got.thumbprint
        assert [e.status for e in devstack.request_log.arm.entries()][-2:] == [429, 200]

    @pytest.mark.parametrize("status", [500, 503])
    def test_persistent_5xx_is_transient(self, devstack, world, apim_gateway, status):
        """5xx after retries: TransientDependencyError carrying the status."""
        devstack.faults_arm.fail(status=status, count=5)

        with pytest.raises(TransientDependencyError) as caught:
            apim_gateway.list_backends(world.service_id)

        assert caught.value.status_code == status

    def test_reset_is_transient(self, devstack, world, apim_gateway):
        """Connection resets on every attempt: TransientDependencyError."""
        devstack.faults_arm.reset(count=5)

        with pytest.raises(TransientDependencyError):
            apim_gateway.get_certificate(world.service_id, "partner-mtls")

    def test_latency_within_timeout_is_fine(self, devstack, world, apim_gateway):
        """Added latency slows the call but it succeeds."""
        devstack.faults_arm.delay(seconds=0.2)

        assert apim_gateway.get_certificate(world.service_id, "partner-mtls").thumbprint

    def test_wrong_token_is_authorization_error_without_the_token(self, devstack, world):
        """401 → AuthorizationError; no token in the message or its cause."""
        gateway = ArmApimGateway(
            StaticTokenCredential("not-the-token"),
            base_url=devstack.arm_endpoint,
            connection_verify=str(devstack.ca_bundle),
            retry_total=0,
        )

        with pytest.raises(AuthorizationError) as caught:
            gateway.list_certificates(world.service_id)

        for text in (str(caught.value), str(caught.value.__cause__)):
            assert "not-the-token" not in text
            assert devstack.token not in text

    def test_bad_service_id_is_a_value_error(self, apim_gateway):
        """A malformed service id is a programmer error naming the id."""
        with pytest.raises(ValueError, match="not an APIM service ARM id"):
            apim_gateway.list_backends("/subscriptions/x/nope")

    def test_satisfies_the_port(self, apim_gateway):
        """The adapter is an ApimGateway."""
        port: ApimGateway = apim_gateway

        assert isinstance(port, ApimGateway)
