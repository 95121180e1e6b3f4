"""The fakes in rotation.testing: port conformance (mypy + runtime) and observable behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.pki import Issued, make_key, mint_certificate, to_pem_bundle, to_pkcs12
from rotation.domain.errors import CertificateNotFoundError, PreconditionFailedError
from rotation.domain.model import SecretMaterial
from rotation.ports import ApimGateway, AuditSink, CertificateSource, Clock, Validator
from rotation.testing import (
    FakeApimGateway,
    FakeCertificateSource,
    FakeValidator,
    FrozenClock,
    MemoryAuditSink,
)

AT = datetime(2026, 3, 1, tzinfo=UTC)
VAULT = "https://kv.vault.azure.net"
SVC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim"


@pytest.fixture(name="leaf", scope="module")
def _leaf() -> Issued:
    return mint_certificate(
        "client.test", key=make_key("ec", 256), not_before=AT - timedelta(days=1)
    )


class TestPortConformance:
    def test_each_fake_satisfies_its_port(self) -> None:
        """Assigning to port-typed names lets mypy check conformance; isinstance checks it at runtime."""
        source = FakeCertificateSource()
        clock: Clock = FrozenClock(AT)
        certificates: CertificateSource = source
        gateway: ApimGateway = FakeApimGateway(source)
        validator: Validator = FakeValidator()
        audit: AuditSink = MemoryAuditSink()

        ports = [
            (clock, Clock),
            (certificates, CertificateSource),
            (gateway, ApimGateway),
            (validator, Validator),
            (audit, AuditSink),
        ]
        assert all(isinstance(fake, port) for fake, port in ports)


class TestFrozenClock:
    def test_advance_moves_time_only_when_told(self) -> None:
        """now() is stable until advance()."""
        clock = FrozenClock(AT)

        clock.advance(hours=1)

        assert clock.now() == AT + timedelta(hours=1)

    def test_naive_datetime_is_refused(self) -> None:
        """Time is always tz-aware."""
        with pytest.raises(ValueError, match="tz-aware"):
            FrozenClock(datetime(2026, 1, 1))


class TestFakeCertificateSource:
    def test_counts_calls_and_derives_properties_from_the_leaf(self, leaf: Issued) -> None:
        """add_version fills thumbprint/dates from the leaf; every port call is counted."""
        source = FakeCertificateSource()
        added = source.add_version(
            VAULT, "c", "v1", created=AT, secret=to_pkcs12(leaf), leaf=leaf.cert
        )

        listed = list(source.list_certificate_versions(VAULT + ":443", "C"))
        source.get_secret(VAULT, "c", "v1")

        assert listed == [added]
        assert added.not_before == leaf.cert.not_valid_before_utc
        assert source.calls == {"list_certificate_versions": 1, "get_secret": 1}

    def test_missing_is_certificate_not_found(self) -> None:
        """get_* raise CertificateNotFoundError as the port says."""
        with pytest.raises(CertificateNotFoundError):
            FakeCertificateSource().get_secret(VAULT, "c", "v")


class TestFakeApimGateway:
    def test_etag_changes_on_every_write_and_stale_etag_is_412(self, leaf: Issued) -> None:
        """Writes change the ETag; a CAS that still matches writes; thumbprint follows the secret;
        once the entity moved, the same CAS is refused (412) and nothing is written."""
        source = FakeCertificateSource()
        v1 = source.add_version(
            VAULT, "c", "v1", created=AT, secret=to_pkcs12(leaf), leaf=leaf.cert
        )
        gateway = FakeApimGateway(source)
        versionless = f"{VAULT}/secrets/c"
        seeded = gateway.add_certificate(SVC, "e", secret_identifier=versionless)

        updated = gateway.put_certificate(
            SVC, "e", secret_identifier=v1.secret_id, identity_client_id=None,
            expected_secret=versionless,
        )  # fmt: skip

        assert updated.etag not in ("", seeded.etag)
        assert updated.thumbprint == v1.thumbprint_sha1 == seeded.thumbprint
        assert [w.op for w in gateway.updates] == ["put_certificate"]
        with pytest.raises(PreconditionFailedError, match="changed since it was listed"):
            gateway.put_certificate(
                SVC, "e", secret_identifier=v1.secret_id, identity_client_id=None,
                expected_secret=versionless,
            )  # fmt: skip
        assert len(gateway.updates) == 1

    def test_refresh_fetches_the_newest_version_like_refresh_secret(self, leaf: Issued) -> None:
        """``refresh_certificate`` mirrors the adapter's ``refreshSecret``: a versionless entity
        picks up the newest enabled version, the ETag moves, one call and one write counted;
        ``poll`` (APIM's own poll) does the same uncounted."""
        other = mint_certificate("client2.test", key=make_key("ec", 256), not_before=AT)
        source = FakeCertificateSource()
        v1 = source.add_version(
            VAULT, "c", "v1", created=AT, secret=to_pkcs12(leaf), leaf=leaf.cert
        )
        gateway = FakeApimGateway(source)
        seeded = gateway.add_certificate(SVC, "e", secret_identifier=f"{VAULT}/secrets/c")
        assert seeded.thumbprint == v1.thumbprint_sha1
        v2 = source.add_version(
            VAULT, "c", "v2", created=AT + timedelta(days=1), secret=to_pkcs12(other),
            leaf=other.cert,
        )  # fmt: skip

        refreshed = gateway.refresh_certificate(SVC, "e")

        assert refreshed.thumbprint == v2.thumbprint_sha1
        assert refreshed.etag != seeded.etag
        assert refreshed.secret_identifier == f"{VAULT}/secrets/c"
        assert gateway.calls["refresh_certificate"] == 1
        assert [w.op for w in gateway.updates] == ["refresh_certificate"]
        with pytest.raises(CertificateNotFoundError):
            gateway.refresh_certificate(SVC, "missing")
        gateway.add_certificate(SVC, "f", secret_identifier=v1.secret_id)
        assert gateway.poll(SVC, "f").thumbprint == v1.thumbprint_sha1  # pinned: stays
        assert gateway.calls["refresh_certificate"] == 2  # the 404 was a request too; poll is not

    def test_lists_carry_no_etags_and_gets_do(self) -> None:
        """Like ARM: list items have etag "", a GET returns the current ETag."""
        gateway = FakeApimGateway()
        gateway.add_certificate(SVC, "e", secret_identifier=f"{VAULT}/secrets/c/v1")
        gateway.add_backend(SVC, "b", ["/certificates/e"])

        [listed_entity] = gateway.list_certificates(SVC)
        [listed_backend] = gateway.list_backends(SVC)

        assert (listed_entity.etag, listed_backend.etag) == ("", "")
        assert gateway.get_certificate(SVC, "e").etag == gateway.entity(SVC, "e").etag != ""
        assert gateway.backend(SVC, "b").etag != ""

    def test_cas_writes_count_one_read_and_one_write_like_the_adapter(self) -> None:
        """An entity update and a backend move each cost a GET and a PUT/PATCH; a create and a
        delete (listed ETag "", so If-Match *) cost one call each."""
        gateway = FakeApimGateway()
        gateway.add_certificate(SVC, "e", secret_identifier=f"{VAULT}/secrets/c/v1")
        gateway.add_certificate(SVC, "old", secret_identifier=f"{VAULT}/secrets/c/v0")
        gateway.add_backend(SVC, "b", ["/certificates/e"])

        gateway.put_certificate(
            SVC, "e", secret_identifier=f"{VAULT}/secrets/c/v2", identity_client_id=None,
            expected_secret=f"{VAULT}/secrets/c/v1",
        )  # fmt: skip
        gateway.put_certificate(
            SVC, "e--v2", secret_identifier=f"{VAULT}/secrets/c/v2", identity_client_id=None,
            expected_secret=None,
        )  # fmt: skip
        gateway.update_backend_certificates(
            SVC, "b", expected_ids=("/certificates/e",), certificate_ids=("/certificates/e--v2",)
        )
        gateway.delete_certificate(SVC, "old", etag="")

        assert gateway.calls == {
            "get_certificate": 1,
            "put_certificate": 2,
            "get_backend": 1,
            "update_backend_certificates": 1,
            "delete_certificate": 1,
        }
        assert gateway.backend(SVC, "b").certificate_ids == ("/certificates/e--v2",)
        assert [w.op for w in gateway.updates] == [
            "put_certificate",
            "put_certificate",
            "update_backend_certificates",
            "delete_certificate",
        ]

    def test_backend_cas_refused_when_ids_moved_or_backend_gone(self) -> None:
        """The compare half: other ids than the plan saw, or no backend, is a 412 without a write."""
        gateway = FakeApimGateway()
        gateway.add_backend(SVC, "b", ["/certificates/other"])

        with pytest.raises(PreconditionFailedError, match="changed since it was listed"):
            gateway.update_backend_certificates(
                SVC, "b", expected_ids=("/certificates/e",), certificate_ids=()
            )
        with pytest.raises(PreconditionFailedError, match="gone since it was listed"):
            gateway.update_backend_certificates(SVC, "nope", expected_ids=(), certificate_ids=())
        with pytest.raises(PreconditionFailedError, match="gone since it was listed"):
            gateway.put_certificate(
                SVC, "nope", secret_identifier=f"{VAULT}/secrets/c/v2", identity_client_id=None,
                expected_secret=f"{VAULT}/secrets/c/v1",
            )  # fmt: skip

        assert gateway.backend(SVC, "b").certificate_ids == ("/certificates/other",)
        assert gateway.updates == []
        assert "update_backend_certificates" not in gateway.calls
        assert "put_certificate" not in gateway.calls

    def test_injected_conflict_and_delete(self) -> None:
        """conflict_on_write: a concurrent writer between the CAS read and the write (412 after
        one GET and one PATCH); delete of a missing entity succeeds."""
        gateway = FakeApimGateway()
        backend = gateway.add_backend(SVC, "b", ["/certificates/e"])
        gateway.conflict_on_write(1)

        with pytest.raises(PreconditionFailedError):
            gateway.update_backend_certificates(
                SVC, "b", expected_ids=("/certificates/e",), certificate_ids=()
            )
        gateway.delete_certificate(SVC, "gone", etag="*")

        assert gateway.backend(SVC, "b").etag != backend.etag
        assert gateway.backend(SVC, "b").certificate_ids == ("/certificates/e",)
        assert gateway.calls["get_backend"] == gateway.calls["update_backend_certificates"] == 1
        assert gateway.updates == []

    def test_injected_error_on_write_after_the_cas_read(self) -> None:
        """fail_on_write raises from the write itself; the entity is unchanged."""
        gateway = FakeApimGateway()
        gateway.add_certificate(SVC, "e", secret_identifier=f"{VAULT}/secrets/c/v1")
        gateway.fail_on_write(1, RuntimeError("boom"))

        with pytest.raises(RuntimeError, match="boom"):
            gateway.put_certificate(
                SVC, "e", secret_identifier=f"{VAULT}/secrets/c/v2", identity_client_id=None,
                expected_secret=f"{VAULT}/secrets/c/v1",
            )  # fmt: skip

        assert gateway.entity(SVC, "e").secret_identifier == f"{VAULT}/secrets/c/v1"
        assert (gateway.calls["get_certificate"], gateway.calls["put_certificate"]) == (1, 1)


class TestFakeValidator:
    def test_reports_configured_findings_and_missing_key(self, leaf: Issued) -> None:
        """Unreadable bundles and keyless PEMs produce the matching finding codes."""
        validator = FakeValidator()

        keyless = validator.validate(
            SecretMaterial(
                content_type="application/x-pem-file", value=to_pem_bundle(leaf, with_key=False)
            ),
            at=AT,
        )
        junk = validator.validate(
            SecretMaterial(content_type="application/x-pkcs12", value=b"junk"), at=AT
        )

        assert keyless.codes == ("key.missing",)
        assert junk.codes == ("format.unreadable",)
        assert keyless.leaf is not None
        assert keyless.leaf.subject == leaf.cert.subject.rfc4514_string()
