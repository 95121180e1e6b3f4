"""``ArmApimGateway`` with the unmodified ``azure-mgmt-apimanagement`` client against the stand-in."""

from __future__ import annotations

from typing import Any

import pytest
from azure.mgmt.apimanagement.operations import BackendOperations
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

# what an ArmApimGateway holds: its settings and the SDK client cache, never listed objects
_STATELESS_ATTRIBUTES = {"_credential", "_base_url", "_options", "_lock", "_clients"}


def _sha1(issued):
    return issued.cert.fingerprint(hashes.SHA1()).hex().upper()


def _wire(devstack):
    """(method, status) of every ARM request since the log was last cleared."""
    return [(e.method, e.status) for e in devstack.request_log.arm.entries()]


def _gateway(devstack):
    return ArmApimGateway(
        StaticTokenCredential(devstack.token),
        base_url=devstack.arm_endpoint,
        connection_verify=str(devstack.ca_bundle),
        retry_total=1,
        retry_backoff_factor=0,
    )


def _certificate_ids(devstack, world, backend: str) -> list[str]:
    """What the stand-in stores for ``backend``'s ``credentials.certificateIds``."""
    stored = devstack.state.service(world.service).backends[backend].properties
    return list(stored["credentials"]["certificateIds"])


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

    def test_cas_put_reads_then_moves_the_pin_and_keeps_identity(
        self, devstack, world, devstack_pki, apim_gateway
    ):
        """Compare-and-swap: GET (ETag), then PUT with If-Match: new secret, new thumbprint,
        identityClientId kept, new ETag."""
        before = apim_gateway.get_certificate(world.service_id, "partner-mtls")
        devstack.request_log.clear()

        after = apim_gateway.put_certificate(
            world.service_id,
            "partner-mtls",
            secret_identifier=world.secret_v2,
            identity_client_id="11111111-2222-3333-4444-555555555555",
            expected_secret=world.secret_v1,
        )

        assert after.thumbprint == _sha1(devstack_pki.second[0])
        assert after.identity_client_id == "11111111-2222-3333-4444-555555555555"
        assert after.etag not in ("", before.etag)
        assert _wire(devstack) == [("GET", 200), ("PUT", 200)]

    def test_cas_put_refused_when_the_secret_moved(self, devstack, world, apim_gateway):
        """Another writer re-pinned the entity after our plan saw it: refused after the GET, no
        PUT, the other writer's pin stands."""
        devstack.put_apim_certificate(world.service, "partner-mtls", world.secret_v2)
        moved = apim_gateway.get_certificate(world.service_id, "partner-mtls")
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError, match="changed since it was listed"):
            apim_gateway.put_certificate(
                world.service_id,
                "partner-mtls",
                secret_identifier=world.secret_v1,
                identity_client_id=None,
                expected_secret=world.secret_v1,
            )

        after = apim_gateway.get_certificate(world.service_id, "partner-mtls")
        assert _wire(devstack)[0] == ("GET", 200)
        assert devstack.request_log.arm.count("PUT") == 0
        assert (after.secret_identifier, after.etag) == (world.secret_v2, moved.etag)

    def test_cas_put_on_a_deleted_entity_is_precondition_failed(
        self, devstack, world, apim_gateway
    ):
        """The entity is gone since it was listed: re-plan (PreconditionFailedError), no PUT
        that would re-create it."""
        apim_gateway.delete_certificate(world.service_id, "partner-mtls", etag="")
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError, match="gone since it was listed"):
            apim_gateway.put_certificate(
                world.service_id,
                "partner-mtls",
                secret_identifier=world.secret_v2,
                identity_client_id=None,
                expected_secret=world.secret_v1,
            )

        assert _wire(devstack) == [("GET", 404)]

    def test_412_between_the_get_and_the_put_is_precondition_failed_and_not_retried(
        self, devstack, world, apim_gateway
    ):
        """A concurrent write lands between the CAS read and the PUT: the PUT is a genuine 412,
        raised as PreconditionFailedError after exactly one PUT (no Retry-After)."""
        devstack.faults_arm.concurrent_write("*/certificates/partner-mtls", method="PUT")
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError) as caught:
            apim_gateway.put_certificate(
                world.service_id,
                "partner-mtls",
                secret_identifier=world.secret_v2,
                identity_client_id=None,
                expected_secret=world.secret_v1,
            )

        assert caught.value.status_code == 412
        assert _wire(devstack) == [("GET", 200), ("PUT", 412)]
        got = apim_gateway.get_certificate(world.service_id, "partner-mtls")
        assert got.secret_identifier == world.secret_v1

    def test_create_is_one_unconditional_put(self, devstack, world, apim_gateway):
        """expected_secret=None creates a new entity: one PUT, no read."""
        devstack.request_log.clear()

        created = apim_gateway.put_certificate(
            world.service_id,
            "new-one",
            secret_identifier=world.secret_v2,
            identity_client_id=None,
            expected_secret=None,
        )

        assert created.certificate_id == "new-one"
        assert created.identity_client_id is None
        assert _wire(devstack) == [("PUT", 201)]

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

    def test_list_items_carry_no_etag(self, world, apim_gateway):
        """ARM list items have no ETag; a GET has one."""
        [listed] = apim_gateway.list_certificates(world.service_id)

        assert listed.etag == ""
        assert apim_gateway.get_certificate(world.service_id, "partner-mtls").etag

    def test_list_follows_pages(self, devstack, world, apim_gateway):
        """150 entities: two ARM pages, all listed."""
        for i in range(149):
            devstack.put_apim_certificate(world.service, f"c{i}", world.secret_v1)

        listed = apim_gateway.list_certificates(world.service_id)

        assert len(listed) == 150
        assert devstack.request_log.arm.count("GET", "*/certificates") == 2


class TestBackends:
    def _seed_with_credentials(self, devstack, devstack_http, world) -> dict[str, Any]:
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
        ).raise_for_status()
        return credentials

    def test_cas_patch_sends_the_whole_credentials_with_only_certificate_ids_replaced(
        self, devstack, world, apim_gateway, devstack_http, monkeypatch
    ):
        """The PATCH body carries the credentials of the CAS read (header/query/authorization)
        with only certificateIds replaced, so they survive a service that replaces
        ``credentials`` instead of merging it; If-Match is the ETag of that read."""
        credentials = self._seed_with_credentials(devstack, devstack_http, world)
        current_etag = devstack.state.service(world.service).backends["b"].etag
        sent: list[tuple[str, dict[str, Any]]] = []
        original = BackendOperations.update

        def spy(operations, *args, **kwargs):
            sent.append((kwargs["if_match"], kwargs["parameters"].serialize()))
            return original(operations, *args, **kwargs)

        monkeypatch.setattr(BackendOperations, "update", spy)

        updated = apim_gateway.update_backend_certificates(
            world.service_id, "b", expected_ids=(world.entity_id,), certificate_ids=("/new",)
        )

        stored = devstack.state.service(world.service).backends["b"].properties
        [(if_match, body)] = sent
        assert if_match == current_etag
        assert body["properties"]["credentials"] == {**credentials, "certificateIds": ["/new"]}
        assert updated.certificate_ids == ("/new",)
        assert stored["credentials"] == {**credentials, "certificateIds": ["/new"]}
        assert stored["title"] == "B"
        assert updated.etag not in ("", current_etag)

    def test_cas_update_of_a_listed_backend_reads_then_patches(
        self, devstack, world, apim_gateway
    ):
        """Lists carry no ETag: the CAS GETs, then PATCHes with If-Match (2 calls)."""
        devstack.put_backend(
            world.service, "b", url="https://b.test", certificate_ids=[world.entity_id]
        )
        [listed] = apim_gateway.list_backends(world.service_id)
        devstack.request_log.clear()

        updated = apim_gateway.update_backend_certificates(
            world.service_id, "b", expected_ids=listed.certificate_ids, certificate_ids=("/new",)
        )

        assert listed.etag == ""
        assert updated.certificate_ids == ("/new",)
        assert _wire(devstack) == [("GET", 200), ("PATCH", 200)]

    def test_cas_refused_when_the_ids_moved(self, devstack, world, apim_gateway):
        """If the certificate ids moved after the plan saw them, refuse (re-plan): no PATCH."""
        devstack.put_backend(world.service, "b", url="https://b.test", certificate_ids=["/a"])
        [listed] = apim_gateway.list_backends(world.service_id)
        devstack.put_backend(world.service, "b", url="https://b.test", certificate_ids=["/other"])
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError, match="changed since it was listed"):
            apim_gateway.update_backend_certificates(
                world.service_id,
                "b",
                expected_ids=listed.certificate_ids,
                certificate_ids=("/new",),
            )

        assert _wire(devstack) == [("GET", 200)]
        assert _certificate_ids(devstack, world, "b") == ["/other"]

    def test_cas_on_a_deleted_backend_is_precondition_failed(self, devstack, world, apim_gateway):
        """A backend gone since it was listed no longer matches: PreconditionFailedError."""
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError, match="gone since it was listed"):
            apim_gateway.update_backend_certificates(
                world.service_id, "nope", expected_ids=("/a",), certificate_ids=("/new",)
            )

        assert _wire(devstack) == [("GET", 404)]

    def test_412_between_the_get_and_the_patch_is_precondition_failed(
        self, devstack, world, apim_gateway
    ):
        """An injected concurrent write after the CAS read makes the PATCH a genuine 412, raised
        once as PreconditionFailedError; the ids stay."""
        devstack.put_backend(world.service, "b", url="https://b.test", certificate_ids=["/a"])
        devstack.faults_arm.concurrent_write("*/backends/b", method="PATCH")
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError) as caught:
            apim_gateway.update_backend_certificates(
                world.service_id, "b", expected_ids=("/a",), certificate_ids=("/x",)
            )

        assert caught.value.status_code == 412
        assert _wire(devstack) == [("GET", 200), ("PATCH", 412)]
        assert _certificate_ids(devstack, world, "b") == ["/a"]

    def test_holds_no_state_between_calls(self, devstack, world, apim_gateway):
        """A gateway that listed and read the backend before it moved and a fresh gateway decide
        and send exactly the same: the CAS compares with what the caller passes, nothing else."""
        fresh = _gateway(devstack)
        devstack.put_backend(world.service, "b", url="https://b.test", certificate_ids=["/a"])
        apim_gateway.list_backends(world.service_id)

        def run(gateway: ArmApimGateway) -> list[object]:
            devstack.put_backend(world.service, "b", url="https://b.test", certificate_ids=["/b"])
            devstack.request_log.clear()
            seen: list[object] = []
            for expected in (("/a",), ("/b",)):
                try:
                    result = gateway.update_backend_certificates(
                        world.service_id, "b", expected_ids=expected, certificate_ids=("/new",)
                    )
                    seen.append(result.certificate_ids)
                except PreconditionFailedError as exc:
                    seen.append(str(exc))
            return [*seen, _wire(devstack)]

        used, new = run(apim_gateway), run(fresh)

        assert used == new
        assert used == [
            "apim update_backend_certificates 'b': changed since it was listed",
            ("/new",),
            [("GET", 200), ("GET", 200), ("PATCH", 200)],
        ]
        assert vars(apim_gateway).keys() == vars(fresh).keys() == _STATELESS_ATTRIBUTES

    def test_twenty_of_two_thousand_backends(self, devstack, world, apim_gateway):
        """Bind 20 of 2,000 backends: list (20 pages) and 20 CAS updates, nothing more sent."""
        for i in range(2000):
            ids = [world.entity_id] if i % 100 == 0 else []
            devstack.put_backend(
                world.service, f"b{i:04}", url="https://b.test", certificate_ids=ids
            )
        devstack.request_log.clear()

        backends = apim_gateway.list_backends(world.service_id)
        bound = [b for b in backends if world.entity_id in b.certificate_ids]
        for backend in bound:
            apim_gateway.update_backend_certificates(
                world.service_id,
                backend.backend_id,
                expected_ids=backend.certificate_ids,
                certificate_ids=("/new",),
            )

        assert len(backends) == 2000
        assert len(bound) == 20
        assert devstack.request_log.arm.count("GET", "*/backends") == 20
        assert devstack.request_log.arm.count("GET", "*/backends/*") == 20
        assert devstack.request_log.arm.count("PATCH") == 20
        assert len(devstack.request_log.arm.entries()) == 60


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
