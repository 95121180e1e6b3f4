"""The ``ApimGateway`` contract, run against ``FakeApimGateway`` and ``ArmApimGateway``."""

from __future__ import annotations

from collections import Counter

import pytest

from devstack.pki import Issued
from rotation.domain.errors import (
    CertificateNotFoundError,
    PreconditionFailedError,
    TransientDependencyError,
)
from rotation.ports import ApimGateway
from tests.contract.conftest import ApimWorld, Version, sha1

ENTITY = "partner-mtls"
IDENTITY = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(name="versions")
def _versions(apim: ApimWorld, chains: tuple[list[Issued], list[Issued]]) -> tuple[Version, ...]:
    """v1 and v2 of ``partner`` (two different leaves), and the entity pinned to v1."""
    first, second = chains
    v1, v2 = apim.add("partner", first), apim.add("partner", second)
    apim.seed_certificate(ENTITY, v1.secret_id)
    return v1, v2


def _put(apim: ApimWorld, secret: str, expected: str | None, name: str = ENTITY):
    return apim.gateway.put_certificate(
        apim.service_id,
        name,
        secret_identifier=secret,
        identity_client_id=IDENTITY,
        expected_secret=expected,
    )


class TestReads:
    def test_is_an_apim_gateway(self, apim: ApimWorld):
        """Both implement the port."""
        assert isinstance(apim.gateway, ApimGateway)

    def test_get_shows_what_apim_fetched_with_an_etag(self, apim: ApimWorld, versions):
        """get_certificate: the pinned secret, the thumbprint and expiry of its leaf, status
        Success, a quoted ETag and the entity's ARM id."""
        v1, _ = versions

        got = apim.gateway.get_certificate(apim.service_id, ENTITY)

        assert got.certificate_id == ENTITY
        assert got.secret_identifier == v1.secret_id
        assert got.thumbprint == sha1(v1.leaf)
        assert got.expiration == v1.leaf.cert.not_valid_after_utc
        assert got.last_status_code == "Success"
        assert got.etag.startswith('"')
        assert got.etag.endswith('"')
        assert got.resource_id == f"{apim.service_id}/certificates/{ENTITY}"

    def test_entity_names_are_case_insensitive(self, apim: ApimWorld, versions):
        """An entity read under another case is the same entity."""
        assert apim.gateway.get_certificate(apim.service_id, ENTITY.upper()).secret_identifier

    def test_a_versionless_entity_presents_the_newest_enabled_version(
        self, apim: ApimWorld, chains
    ):
        """APIM resolves ``…/secrets/{name}`` to the newest enabled version."""
        first, second = chains
        apim.add("loose", first)
        apim.add("loose", second)
        apim.add("loose", first, enabled=False)
        apim.seed_certificate("loose", f"{apim.vault_url}/secrets/loose")

        got = apim.gateway.get_certificate(apim.service_id, "loose")

        assert got.thumbprint == sha1(second[0])

    def test_a_missing_entity_is_not_found(self, apim: ApimWorld, versions):
        """get_certificate of an entity that does not exist: CertificateNotFoundError."""
        with pytest.raises(CertificateNotFoundError) as caught:
            apim.gateway.get_certificate(apim.service_id, "nope")

        assert caught.value.retryable is False

    def test_lists_carry_no_etag_and_every_item(self, apim: ApimWorld, versions):
        """List items have no ETag (ARM's lists do not), gets do."""
        _, v2 = versions
        apim.seed_certificate("other", v2.secret_id)
        apim.seed_backend("b", [f"{apim.service_id}/certificates/{ENTITY}"])

        certificates = apim.gateway.list_certificates(apim.service_id)
        backends = apim.gateway.list_backends(apim.service_id)

        assert sorted(c.certificate_id for c in certificates) == sorted([ENTITY, "other"])
        assert {c.etag for c in certificates} == {""}
        assert [(b.backend_id, b.certificate_ids, b.etag) for b in backends] == [
            ("b", (f"{apim.service_id}/certificates/{ENTITY}",), "")
        ]


class TestPutCertificate:
    def test_compare_and_swap_moves_the_pin_with_one_read_and_one_write(
        self, apim: ApimWorld, versions
    ):
        """The plan saw v1: the entity now presents v2, keeps the identity passed, and has a
        new ETag; one read (for the ETag) and one write reached APIM."""
        v1, v2 = versions
        before = apim.gateway.get_certificate(apim.service_id, ENTITY)
        apim.forget()

        after = _put(apim, v2.secret_id, expected=v1.secret_id)

        assert apim.sent() == Counter(read=1, write=1)
        assert after.secret_identifier == v2.secret_id
        assert after.thumbprint == sha1(v2.leaf)
        assert after.identity_client_id == IDENTITY
        assert after.last_status_code == "Success"
        assert after.etag not in ("", before.etag)
        assert apim.gateway.get_certificate(apim.service_id, ENTITY) == after

    def test_refused_without_a_write_when_another_writer_moved_the_pin(
        self, apim: ApimWorld, versions
    ):
        """The entity no longer names what the plan saw: PreconditionFailedError, no write, the
        other writer's pin stands."""
        v1, v2 = versions
        apim.seed_certificate(ENTITY, v2.secret_id)
        moved = apim.gateway.get_certificate(apim.service_id, ENTITY)
        apim.forget()

        with pytest.raises(PreconditionFailedError, match="changed since it was listed") as caught:
            _put(apim, v1.secret_id, expected=v1.secret_id)

        assert caught.value.retryable is True
        assert apim.sent() == Counter(read=1, write=0)
        assert apim.gateway.get_certificate(apim.service_id, ENTITY) == moved

    def test_refused_without_recreating_a_deleted_entity(self, apim: ApimWorld, versions):
        """The entity is gone since it was listed: PreconditionFailedError, nothing created."""
        v1, v2 = versions
        apim.gateway.delete_certificate(apim.service_id, ENTITY, etag="")
        apim.forget()

        with pytest.raises(PreconditionFailedError, match="gone since it was listed"):
            _put(apim, v2.secret_id, expected=v1.secret_id)

        assert apim.sent() == Counter(read=1, write=0)
        with pytest.raises(CertificateNotFoundError):
            apim.gateway.get_certificate(apim.service_id, ENTITY)

    def test_a_write_between_the_read_and_the_put_is_a_412(self, apim: ApimWorld, versions):
        """Another writer lands between the compare and the write: a genuine 412 after one
        write, raised once as PreconditionFailedError; the pin stays."""
        v1, v2 = versions
        apim.conflict_on_next_write("certificates", ENTITY)
        apim.forget()

        with pytest.raises(PreconditionFailedError) as caught:
            _put(apim, v2.secret_id, expected=v1.secret_id)

        assert caught.value.status_code == 412
        assert apim.sent() == Counter(read=1, write=1)
        assert apim.gateway.get_certificate(apim.service_id, ENTITY).secret_identifier == (
            v1.secret_id
        )

    def test_create_is_one_unconditional_write(self, apim: ApimWorld, versions):
        """expected_secret=None creates the entity without reading first; it is then listed."""
        _, v2 = versions
        apim.forget()

        created = _put(apim, v2.secret_id, expected=None, name="partner-mtls--v2")

        assert apim.sent() == Counter(read=0, write=1)
        assert (created.certificate_id, created.thumbprint) == ("partner-mtls--v2", sha1(v2.leaf))
        assert created.etag
        listed = apim.gateway.list_certificates(apim.service_id)
        assert "partner-mtls--v2" in {c.certificate_id for c in listed}

    def test_creating_an_entity_apim_cannot_fetch_is_refused(self, apim: ApimWorld, versions):
        """APIM fetches the secret when an entity is created: a secret it cannot fetch is an
        HTTP 400 that a retry may cure (a retryable TransientDependencyError) and no entity
        appears."""
        with pytest.raises(TransientDependencyError) as caught:
            _put(apim, f"{apim.vault_url}/secrets/partner/{'0' * 32}", expected=None, name="x")

        assert caught.value.retryable
        assert caught.value.status_code == 400
        with pytest.raises(CertificateNotFoundError):
            apim.gateway.get_certificate(apim.service_id, "x")

    def test_repinning_to_a_disabled_version_keeps_presenting_the_old_certificate(
        self, apim: ApimWorld, chains, versions
    ):
        """APIM cannot fetch a disabled version: the write lands (the new pin is stored), the
        status is not Success and the entity still presents what it fetched last."""
        v1, _ = versions
        disabled = apim.add("partner", chains[1], enabled=False)

        after = _put(apim, disabled.secret_id, expected=v1.secret_id)

        assert after.secret_identifier == disabled.secret_id
        assert after.last_status_code not in {None, "Success"}
        assert after.last_status_message
        assert after.thumbprint == sha1(v1.leaf)
        assert after.expiration == v1.leaf.cert.not_valid_after_utc


class TestDeleteCertificate:
    def test_delete_with_the_etag_then_again_succeeds(self, apim: ApimWorld, versions):
        """Delete with the current ETag; deleting what is gone succeeds too."""
        etag = apim.gateway.get_certificate(apim.service_id, ENTITY).etag

        apim.gateway.delete_certificate(apim.service_id, ENTITY, etag=etag)
        apim.gateway.delete_certificate(apim.service_id, ENTITY, etag=etag)

        with pytest.raises(CertificateNotFoundError):
            apim.gateway.get_certificate(apim.service_id, ENTITY)

    def test_delete_with_a_stale_etag_is_refused(self, apim: ApimWorld, versions):
        """A stale ETag: PreconditionFailedError, the entity stays."""
        with pytest.raises(PreconditionFailedError):
            apim.gateway.delete_certificate(apim.service_id, ENTITY, etag='"stale"')

        assert apim.gateway.get_certificate(apim.service_id, ENTITY).etag

    def test_delete_as_listed_needs_no_etag(self, apim: ApimWorld, versions):
        """An empty ETag (a listed item) deletes unconditionally."""
        apim.gateway.delete_certificate(apim.service_id, ENTITY, etag="")

        assert ENTITY not in {
            c.certificate_id for c in apim.gateway.list_certificates(apim.service_id)
        }


class TestUpdateBackendCertificates:
    def test_compare_and_swap_replaces_the_ids_with_one_read_and_one_write(
        self, apim: ApimWorld, versions
    ):
        """The ids the plan saw are replaced; a new ETag; one read and one write."""
        apim.seed_backend("b", ["/a"])
        [listed] = apim.gateway.list_backends(apim.service_id)
        apim.forget()

        updated = apim.gateway.update_backend_certificates(
            apim.service_id, "b", expected_ids=listed.certificate_ids, certificate_ids=("/n",)
        )

        assert apim.sent() == Counter(read=1, write=1)
        assert updated.certificate_ids == ("/n",)
        assert updated.etag
        [after] = apim.gateway.list_backends(apim.service_id)
        assert after.certificate_ids == ("/n",)

    def test_refused_without_a_write_when_the_ids_moved(self, apim: ApimWorld, versions):
        """Another writer changed the ids: PreconditionFailedError, no write, theirs stand."""
        apim.seed_backend("b", ["/a"])
        apim.seed_backend("b", ["/other"])
        apim.forget()

        with pytest.raises(PreconditionFailedError, match="changed since it was listed"):
            apim.gateway.update_backend_certificates(
                apim.service_id, "b", expected_ids=("/a",), certificate_ids=("/n",)
            )

        assert apim.sent() == Counter(read=1, write=0)
        [after] = apim.gateway.list_backends(apim.service_id)
        assert after.certificate_ids == ("/other",)

    def test_refused_when_the_backend_is_gone(self, apim: ApimWorld, versions):
        """A backend that no longer exists: PreconditionFailedError (re-plan), no write."""
        apim.forget()

        with pytest.raises(PreconditionFailedError, match="gone since it was listed"):
            apim.gateway.update_backend_certificates(
                apim.service_id, "nope", expected_ids=("/a",), certificate_ids=("/n",)
            )

        assert apim.sent() == Counter(read=1, write=0)

    def test_a_write_between_the_read_and_the_patch_is_a_412(self, apim: ApimWorld, versions):
        """Another writer lands after the compare: one 412 write, the ids stay."""
        apim.seed_backend("b", ["/a"])
        apim.conflict_on_next_write("backends", "b")
        apim.forget()

        with pytest.raises(PreconditionFailedError) as caught:
            apim.gateway.update_backend_certificates(
                apim.service_id, "b", expected_ids=("/a",), certificate_ids=("/n",)
            )

        assert caught.value.status_code == 412
        assert apim.sent() == Counter(read=1, write=1)
        [after] = apim.gateway.list_backends(apim.service_id)
        assert after.certificate_ids == ("/a",)
