"""RotationService over the fakes: every decision, both strategies, concurrency, failures, audit."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from rotation.domain.errors import (
    BackendUpdateError,
    CertificateNotFoundError,
    PreconditionFailedError,
    TransientDependencyError,
)
from rotation.domain.model import (
    AuditRecord,
    Decision,
    Disposition,
    Finding,
    FindingCode,
    Severity,
    Strategy,
    Trigger,
)
from rotation.ports import EventHandler
from tests.service.conftest import (
    CERT,
    NEAR_EXPIRY,
    NOW,
    SVC_A,
    SVC_B,
    V1,
    V2,
    V3,
    V4,
    VAULT,
    World,
    make_event,
)

EG = Trigger.EVENTGRID


def _secret(version: str, name: str = CERT) -> str:
    return f"{VAULT}/secrets/{name}/{version}"


def _thumb(world: World, version: str) -> str:
    found = world.source.lookup(VAULT, CERT, version)
    assert found is not None
    assert found.thumbprint_sha1 is not None
    return found.thumbprint_sha1


def _canonical(world: World) -> list[AuditRecord]:
    return [r for r in world.audit.records if r.event != "rotation.target"]


class TestApplied:
    def test_pin_moves_entity_to_candidate_versioned_secret(self, rotated: World) -> None:
        """pin: the entity keeps its id and identity and points at the candidate's versioned URL."""
        record = rotated.service().handle(make_event(V2), trigger=EG)

        entity = rotated.gateway.entity(SVC_A, CERT)
        assert record.decision is Decision.APPLIED
        assert entity.secret_identifier == _secret(V2)
        assert entity.identity_client_id == "mi-1"
        assert entity.thumbprint == _thumb(rotated, V2)
        assert rotated.gateway.backend(SVC_A, "partner-api").certificate_ids == (
            entity.resource_id,
        )

    def test_makes_exactly_the_minimum_calls(self, rotated: World) -> None:
        """The call budget: entity lists per service (pin lists no backends), 1 version list, 1 secret read,
        1 write and 1 verify read, plus the write's compare-and-swap read (ARM lists carry no
        ETag for If-Match)."""
        rotated.service().handle(make_event(V2), trigger=EG)

        assert rotated.source.calls == {"list_certificate_versions": 1, "get_secret": 1}
        assert rotated.gateway.calls == {
            "list_certificates": 2,
            "put_certificate": 1,
            "get_certificate": 2,  # the CAS read before the PUT + the verify read after it
        }

    @pytest.mark.parametrize(
        ("strategy", "backend_lists"), [(Strategy.PIN, 0), (Strategy.BLUE_GREEN, 1)]
    )
    def test_only_blue_green_lists_backends(
        self, rotated: World, strategy: Strategy, backend_lists: int
    ) -> None:
        """pin never changes a backend, so neither an event nor the reconcile sweep lists them;
        blue-green lists them in the service that holds the binding."""
        service = rotated.service(strategy=strategy)

        record = service.handle(make_event(V2), trigger=EG)
        assert record.decision is Decision.APPLIED
        assert rotated.gateway.calls["list_backends"] == backend_lists
        rotated.reset_counts()
        service.reconcile(trigger=Trigger.TIMER)

        assert rotated.gateway.calls["list_certificates"] == 2
        assert rotated.gateway.calls["list_backends"] == backend_lists

    def test_updates_bindings_in_two_services(self, rotated: World) -> None:
        """Every configured APIM service is swept; each changed entity costs one CAS read, one
        write and one verify read."""
        rotated.bind(SVC_B, "mtls-b", V1)

        record = rotated.service().handle(make_event(V2), trigger=EG)

        assert rotated.secret_of(SVC_A, CERT) == _secret(V2)
        assert rotated.secret_of(SVC_B, "mtls-b") == _secret(V2)
        assert {(t.service, t.result) for t in record.targets} == {
            ("apim-one", "updated"),
            ("apim-two", "updated"),
        }
        assert rotated.gateway.calls["put_certificate"] == 2
        assert rotated.gateway.calls["get_certificate"] == 4  # 2 CAS reads + 2 verify reads

    def test_converts_versionless_entity_and_records_the_finding(self, world: World) -> None:
        """A versionless entity is a binding.versionless finding and pin converts it (audited)."""
        world.add_version("v1", V1)
        world.bind(SVC_A, CERT, None)

        record = world.service().handle(make_event(V1), trigger=EG)

        assert record.decision is Decision.APPLIED
        assert world.secret_of(SVC_A, CERT) == _secret(V1)
        assert "binding.versionless" in record.findings
        assert record.targets[0].from_ == f"{VAULT}/secrets/{CERT}"

    def test_candidate_is_newest_enabled_by_created_not_list_order(self, world: World) -> None:
        """The newest ENABLED version by created wins, wherever it sits in the list."""
        world.add_version("v3", V3, created=NOW - timedelta(days=1), enabled=False)
        world.add_version("v2", V2)
        world.add_version("v1", V1)  # listed first by the fake: newest insertion first
        world.bind(SVC_A, CERT, V1)

        record = world.service().handle(make_event(V1), trigger=EG)

        assert record.version == V2
        assert world.secret_of(SVC_A, CERT) == _secret(V2)

    def test_a_not_before_within_clock_skew_is_applied(self, rotated: World) -> None:
        """A candidate valid within the allowed clock skew is not deferred."""
        rotated.add_version("soon", V3)

        record = rotated.service().handle(make_event(V3), trigger=EG)

        assert record.decision is Decision.APPLIED


class TestIdempotency:
    def test_duplicates_make_zero_writes_and_zero_secret_reads(self, rotated: World) -> None:
        """The same event ten times changes APIM once and reads the secret once."""
        service = rotated.service()

        decisions = [service.handle(make_event(V2), trigger=EG).decision for _ in range(10)]

        assert decisions == [Decision.APPLIED] + [Decision.ALREADY_CURRENT] * 9
        assert rotated.source.calls["get_secret"] == 1
        assert len(rotated.gateway.updates) == 1

    def test_already_current_records_targets(self, rotated: World) -> None:
        """already_current still lists what was considered, with its result."""
        service = rotated.service()
        service.handle(make_event(V2), trigger=EG)

        record = service.handle(make_event(V2), trigger=EG)

        assert [t.result for t in record.targets] == ["already_current"]


class TestSuperseded:
    def test_late_old_event_never_rolls_back(self, rotated: World) -> None:
        """An event older than what the bindings use is superseded: no reads of secrets, no writes."""
        rotated.add_version("v3", V3)
        service = rotated.service()
        service.handle(make_event(V3), trigger=EG)
        rotated.reset_counts()

        record = service.handle(make_event(V2), trigger=EG)

        assert record.decision is Decision.SUPERSEDED
        assert record.version == V2
        assert [(t.from_, t.to, t.result) for t in record.targets] == [(V3, V2, "superseded")]
        assert rotated.secret_of(SVC_A, CERT) == _secret(V3)
        assert rotated.source.calls["get_secret"] == 0
        assert rotated.gateway.updates == []

    def test_binding_on_a_newer_disabled_version_is_not_rolled_back(self, rotated: World) -> None:
        """A binding on a version newer than the candidate stays (target superseded)."""
        rotated.add_version("v3", V3, enabled=False)
        rotated.bind(SVC_B, "mtls-b", V3)
        rotated.gateway.certificates.pop((SVC_A.lower(), CERT.lower()))

        (record,) = rotated.service().reconcile(trigger=Trigger.TIMER)

        assert record.decision is Decision.SUPERSEDED
        assert rotated.secret_of(SVC_B, "mtls-b") == _secret(V3)
        assert [t.result for t in record.targets] == ["superseded"]


class TestRejected:
    def test_rejected_certificate_changes_nothing(self, rotated: World) -> None:
        """A rejected candidate is recorded with its finding codes; APIM is untouched."""
        thumb = _thumb(rotated, V2)
        bad = Finding(code=FindingCode.CHAIN_UNTRUSTED, severity=Severity.ERROR, message="no path")
        rotated.validator.findings[thumb] = (bad,)

        record = rotated.service().handle(make_event(V2), trigger=EG)

        assert record.decision is Decision.REJECTED
        assert record.findings == ("chain.untrusted",)
        assert rotated.gateway.updates == []
        assert rotated.secret_of(SVC_A, CERT) == _secret(V1)
        assert [t.result for t in record.targets] == ["rejected"]

    def test_bundle_without_private_key_is_rejected(self, rotated: World) -> None:
        """Rotations always require the private key."""
        rotated.add_version("v3", V3, keyless=True)

        record = rotated.service().handle(make_event(V3), trigger=EG)

        assert record.decision is Decision.REJECTED
        assert "key.missing" in record.findings

    def test_identity_pinning_compares_with_the_version_in_use(self, rotated: World) -> None:
        """With pin_identity the candidate must keep the subject/issuer of the version in use."""
        rotated.add_version("other", V3)

        record = rotated.service(pin_identity=True).handle(make_event(V3), trigger=EG)

        v1_leaf = rotated.pki.leaves["v1"].cert
        assert record.decision is Decision.REJECTED
        assert "identity.changed" in record.findings
        assert rotated.validator.calls[-1][2] == (
            v1_leaf.subject.rfc4514_string(),
            v1_leaf.issuer.rfc4514_string(),
        )
        assert rotated.source.calls["get_secret"] == 2  # candidate + the version in use


class TestDeferred:
    def test_not_yet_valid_candidate_is_deferred_then_reconciled(self, rotated: World) -> None:
        """A candidate valid only in the future is deferred without a secret read; reconcile applies it later."""
        rotated.add_version("future", V3)
        service = rotated.service()

        record = service.handle(make_event(V3), trigger=EG)
        rotated.clock.advance(days=31)
        later = service.reconcile(trigger=Trigger.TIMER)

        assert record.decision is Decision.DEFERRED
        assert rotated.source.calls["get_secret"] == 1  # only the reconcile's read
        assert later[0].decision is Decision.APPLIED
        assert rotated.secret_of(SVC_A, CERT) == _secret(V3)


class TestIgnored:
    def test_vault_not_allow_listed_makes_no_call(self, rotated: World) -> None:
        """Events for other vaults are ignored before any Azure call."""
        record = rotated.service().handle(
            make_event(V2, vault="https://kv-other.vault.azure.net"), trigger=EG
        )

        assert record.decision is Decision.IGNORED
        assert rotated.source.calls == {}
        assert rotated.gateway.calls == {}

    def test_ignore_disposition_makes_no_call(self, rotated: World) -> None:
        """Non-certificate events are ignored."""
        event = make_event(
            V2,
            event_type="Microsoft.KeyVault.SecretNewVersionCreated",
            disposition=Disposition.IGNORE,
        )

        record = rotated.service().handle(event, trigger=EG)

        assert record.decision is Decision.IGNORED
        assert rotated.gateway.calls == {}

    def test_no_bindings_is_ignored_without_key_vault_calls(self, world: World) -> None:
        """A certificate no APIM entity uses is ignored after discovery only."""
        world.add_version("v1", V1)

        record = world.service().handle(make_event(V1), trigger=EG)

        assert record.decision is Decision.IGNORED
        assert "no APIM certificate entity" in (record.message or "")
        assert world.source.calls == {}


class TestFailures:
    def test_verify_mismatch_records_failed_and_raises_retryable(self, rotated: World) -> None:
        """APIM not presenting the candidate after the write is failed and retryable."""
        rotated.gateway.keyvault_fetch_fails = True

        with pytest.raises(TransientDependencyError) as caught:
            rotated.service().handle(make_event(V2), trigger=EG)

        record = _canonical(rotated)[-1]
        assert caught.value.retryable
        assert record.decision is Decision.FAILED
        assert record.event == "rotation.failed"
        assert [t.result for t in record.targets] == ["failed"]

    def test_crash_between_writes_then_replay_converges(self, rotated: World) -> None:
        """A failure part-way leaves each target on old or new; the replay finishes the rest."""
        rotated.bind(SVC_B, "mtls-b", V1)
        rotated.gateway.fail_on_write(
            2, TransientDependencyError("503", service="apim", operation="put", status_code=503)
        )
        service = rotated.service()

        with pytest.raises(TransientDependencyError):
            service.handle(make_event(V2), trigger=EG)
        middle = (rotated.secret_of(SVC_A, CERT), rotated.secret_of(SVC_B, "mtls-b"))
        record = service.handle(make_event(V2), trigger=EG)

        assert middle == (_secret(V2), _secret(V1))
        assert _canonical(rotated)[0].decision is Decision.FAILED
        assert record.decision is Decision.APPLIED
        assert {t.name: t.result for t in record.targets} == {
            CERT: "already_current",
            "mtls-b": "updated",
        }

    def test_source_failure_is_recorded_and_reraised(self, rotated: World) -> None:
        """A Key Vault failure never drops the audit record."""
        rotated.source.fail["list_certificate_versions"] = CertificateNotFoundError("gone")

        with pytest.raises(CertificateNotFoundError):
            rotated.service().handle(make_event(V2), trigger=EG)

        assert _canonical(rotated)[-1].error == "CertificateNotFoundError: gone"


class TestConcurrency:
    def test_412_rereads_and_converges(self, rotated: World) -> None:
        """A concurrent writer's 412 leads to a re-read and re-plan, then success."""
        rotated.gateway.conflict_on_write(1)

        record = rotated.service().handle(make_event(V2), trigger=EG)

        assert record.decision is Decision.APPLIED
        assert rotated.secret_of(SVC_A, CERT) == _secret(V2)
        assert rotated.gateway.calls["list_certificates"] == 4  # two reads of two services
        assert rotated.source.calls == {"list_certificate_versions": 1, "get_secret": 1}

    def test_412_exhaustion_raises_retryable(self, rotated: World) -> None:
        """Re-planning is bounded by max_attempts; then the run fails and is retryable."""
        for n in (1, 2):
            rotated.gateway.conflict_on_write(n)

        with pytest.raises(PreconditionFailedError) as caught:
            rotated.service(max_attempts=2).handle(make_event(V2), trigger=EG)

        assert caught.value.retryable
        assert _canonical(rotated)[-1].decision is Decision.FAILED
        assert rotated.secret_of(SVC_A, CERT) == _secret(V1)


class TestMoreBranches:
    def test_412_after_an_earlier_write_keeps_its_updated_result(self, rotated: World) -> None:
        """After a re-plan our own first write shows as current; the record still says updated."""
        rotated.bind(SVC_B, "mtls-b", V1)
        rotated.gateway.conflict_on_write(2)

        record = rotated.service().handle(make_event(V2), trigger=EG)

        assert record.decision is Decision.APPLIED
        assert [t.result for t in record.targets] == ["updated", "updated"]

    def test_leaf_not_matching_the_version_thumbprint_fails_retryably(
        self, rotated: World
    ) -> None:
        """The secret's leaf must be the certificate Key Vault describes (x5t cross-check)."""
        rotated.source.add_version(
            VAULT, CERT, V3, created=NOW - timedelta(days=2), secret=rotated.pki.pkcs12["v4"],
            leaf=rotated.pki.leaves["v3"].cert,
        )  # fmt: skip

        with pytest.raises(TransientDependencyError, match="holds leaf"):
            rotated.service().handle(make_event(V3), trigger=EG)

        assert rotated.gateway.updates == []

    def test_no_enabled_version_is_ignored(self, world: World) -> None:
        """Nothing enabled in the vault: nothing to rotate to."""
        world.add_version("v1", V1, enabled=False)
        world.bind(SVC_A, CERT, V1)

        record = world.service().handle(make_event(V1), trigger=EG)

        assert record.decision is Decision.IGNORED
        assert record.message == "the certificate has no enabled version"

    def test_validator_not_yet_valid_only_is_deferred(self, rotated: World) -> None:
        """A report whose only errors are validity.not_yet_valid defers instead of rejecting."""
        finding = Finding(
            code=FindingCode.VALIDITY_NOT_YET_VALID, severity=Severity.ERROR, message="later"
        )
        rotated.validator.findings[_thumb(rotated, V2)] = (finding,)

        record = rotated.service().handle(make_event(V2), trigger=EG)

        assert record.decision is Decision.DEFERRED
        assert [t.result for t in record.targets] == ["deferred"]

    def test_identity_for_versionless_bindings_comes_from_the_previous_version(
        self, world: World
    ) -> None:
        """With no pinned version in use, the newest enabled version before the candidate is the reference."""
        world.add_version("v1", V1)
        world.add_version("v2", V2)
        world.bind(SVC_A, CERT, None)

        record = world.service(pin_identity=True).handle(make_event(V2), trigger=EG)

        assert record.decision is Decision.APPLIED
        assert world.validator.calls[0][0] == _thumb(world, V1)

    def test_reconcile_records_a_service_it_cannot_list(self, rotated: World) -> None:
        """A listing failure is recorded per service and raised retryably after the sweep."""
        rotated.gateway.fail["list_certificates"] = TransientDependencyError(
            "503", service="apim", operation="list"
        )

        with pytest.raises(BackendUpdateError):
            rotated.service().reconcile(trigger=Trigger.TIMER)

        assert rotated.audit.events == ["reconcile.failed", "reconcile.failed"]

    def test_plan_raises_read_failures(self, rotated: World) -> None:
        """plan() surfaces a failed read instead of printing a wrong plan."""
        rotated.source.fail["list_certificate_versions"] = TransientDependencyError(
            "503", service="kv", operation="list"
        )

        with pytest.raises(TransientDependencyError):
            rotated.service().plan(VAULT, CERT)


class TestBlueGreen:
    def test_creates_new_entity_and_moves_backend(self, rotated: World) -> None:
        """blue-green: create {base}--{version[:8]} first, then move the backend; keep the old one."""
        record = rotated.service(strategy=Strategy.BLUE_GREEN).handle(make_event(V2), trigger=EG)

        new_id = f"{CERT}--{V2[:8]}"
        new = rotated.gateway.entity(SVC_A, new_id)
        assert record.decision is Decision.APPLIED
        assert new.secret_identifier == _secret(V2)
        assert rotated.gateway.backend(SVC_A, "partner-api").certificate_ids == (new.resource_id,)
        assert rotated.secret_of(SVC_A, CERT) == _secret(V1)
        assert [u.op for u in rotated.gateway.updates] == [
            "put_certificate",
            "update_backend_certificates",
        ]
        assert rotated.gateway.calls["get_certificate"] == 1

    def test_retires_only_beyond_retention_and_never_the_original(self, rotated: World) -> None:
        """Older suffixed entities beyond retain_previous are deleted; the original id is kept."""
        service = rotated.service(strategy=Strategy.BLUE_GREEN, retain_previous=1)

        for label, version in (("v2", V2), ("v3", V3), ("v4", V4)):
            rotated.add_version(label, version)
            assert service.handle(make_event(version), trigger=EG).decision is Decision.APPLIED

        names = sorted(k[1] for k in rotated.gateway.certificates)
        assert names == sorted([CERT.lower(), f"{CERT}--{V3[:8]}", f"{CERT}--{V4[:8]}"])
        assert [u.name for u in rotated.gateway.updates if u.op == "delete_certificate"] == [
            f"{CERT}--{V2[:8]}"
        ]

    def test_crash_after_create_then_replay_moves_backend(self, rotated: World) -> None:
        """The new entity exists before any backend moves; a replay finishes the move."""
        rotated.gateway.fail_on_write(
            2, TransientDependencyError("503", service="apim", operation="patch")
        )
        service = rotated.service(strategy=Strategy.BLUE_GREEN)

        with pytest.raises(TransientDependencyError):
            service.handle(make_event(V2), trigger=EG)
        old_backend = rotated.gateway.backend(SVC_A, "partner-api").certificate_ids
        record = service.handle(make_event(V2), trigger=EG)

        assert old_backend == (rotated.gateway.entity(SVC_A, CERT).resource_id,)
        assert record.decision is Decision.APPLIED
        assert (
            rotated.gateway.backend(SVC_A, "partner-api")
            .certificate_ids[0]
            .endswith(f"--{V2[:8]}")
        )

    def test_crash_before_retirement_then_replay_retires_without_a_secret_read(
        self, rotated: World
    ) -> None:
        """Pending retirements alone run on replay (dry run only reports them); no secret is read."""
        service = rotated.service(strategy=Strategy.BLUE_GREEN, retain_previous=1)
        for label, version in (("v2", V2), ("v3", V3)):
            rotated.add_version(label, version)
            service.handle(make_event(version), trigger=EG)
        rotated.add_version("v4", V4)
        rotated.gateway.fail_on_write(
            3, TransientDependencyError("503", service="apim", operation="delete")
        )
        with pytest.raises(TransientDependencyError):
            service.handle(make_event(V4), trigger=EG)
        rotated.reset_counts()

        dry = rotated.service(
            strategy=Strategy.BLUE_GREEN, retain_previous=1, dry_run=True
        ).handle(make_event(V4), trigger=EG)
        record = service.handle(make_event(V4), trigger=EG)

        assert dry.decision is record.decision is Decision.ALREADY_CURRENT
        assert "skipped_dry_run" in [t.result for t in dry.targets]
        assert "retired" in [t.result for t in record.targets]
        assert rotated.source.calls["get_secret"] == 0
        assert [u.op for u in rotated.gateway.updates] == ["delete_certificate"]

    def test_entity_without_backends_is_pinned_in_place(self, world: World) -> None:
        """blue-green cannot move policy references, so an entity no backend uses is pinned."""
        world.add_version("v1", V1)
        world.add_version("v2", V2)
        world.bind(SVC_A, CERT, V1)

        world.service(strategy=Strategy.BLUE_GREEN).handle(make_event(V2), trigger=EG)

        assert world.secret_of(SVC_A, CERT) == _secret(V2)
        assert len(world.gateway.certificates) == 1


class TestDryRun:
    def test_dry_run_plans_and_writes_nothing(self, rotated: World) -> None:
        """Dry run computes and records the full plan with skipped_dry_run targets, no writes."""
        record = rotated.service(dry_run=True).handle(make_event(V2), trigger=EG)

        assert record.event == "rotation.planned"
        assert record.dry_run is True
        assert [t.result for t in record.targets] == ["skipped_dry_run"]
        assert rotated.gateway.updates == []
        assert "put_certificate" not in rotated.gateway.calls


class TestAlerts:
    def test_near_expiry_with_lagging_bindings_rotates(self, rotated: World) -> None:
        """Alerts are level-triggered: a binding behind the newest valid version is rotated."""
        record = rotated.service().handle(make_event(V1, event_type=NEAR_EXPIRY), trigger=EG)

        assert record.decision is Decision.APPLIED
        assert rotated.secret_of(SVC_A, CERT) == _secret(V2)

    def test_near_expiry_with_current_bindings_records_the_alert(self, rotated: World) -> None:
        """With nothing newer to move to, the alert itself is recorded and nothing is written."""
        service = rotated.service()
        service.handle(make_event(V2), trigger=EG)
        rotated.reset_counts()

        record = service.handle(make_event(V2, event_type=NEAR_EXPIRY), trigger=EG)

        assert record.event == "certificate.near_expiry"
        assert record.decision is Decision.ALREADY_CURRENT
        assert rotated.gateway.updates == []
        assert rotated.source.calls["get_secret"] == 0
        # Like the sweep's alerts, the event's record says how long is left, by the clock.
        assert record.not_after is not None
        assert record.days_left == (record.not_after - rotated.clock.now()).days
        assert record.days_left > 0


class TestReconcile:
    def test_reconcile_catches_a_missed_event(self, rotated: World) -> None:
        """The sweep converges every bound certificate with trigger timer."""
        records = rotated.service().reconcile(trigger=Trigger.TIMER)

        assert [(r.certificate, r.decision, r.trigger) for r in records] == [
            (CERT, Decision.APPLIED, Trigger.TIMER)
        ]
        assert rotated.secret_of(SVC_A, CERT) == _secret(V2)

    def test_reconcile_alerts_near_expiry_of_the_version_in_use(self, rotated: World) -> None:
        """An in-use version expiring within near_expiry_days gets a certificate.near_expiry record."""
        service = rotated.service()
        service.reconcile(trigger=Trigger.TIMER)
        rotated.clock.advance(days=50)  # v2 expires 90 days after 2026-02-01

        records = service.reconcile(trigger=Trigger.TIMER)

        assert [r.event for r in records] == [
            "rotation.already_current",
            "certificate.near_expiry",
        ]
        assert records[1].version == V2

    def test_one_failing_certificate_does_not_stop_the_sweep(self, rotated: World) -> None:
        """Every certificate is tried; a retryable error is raised at the end."""
        rotated.add_version("v1", V1, name="alpha")
        rotated.add_version("v2", V2, name="alpha")
        rotated.bind(SVC_B, "alpha", V1, name="alpha")
        rotated.gateway.fail_on_write(
            1, TransientDependencyError("503", service="apim", operation="put")
        )

        with pytest.raises(BackendUpdateError) as caught:
            rotated.service().reconcile(trigger=Trigger.TIMER)

        assert caught.value.retryable
        assert rotated.secret_of(SVC_B, "alpha") == _secret(V1, "alpha")
        assert rotated.secret_of(SVC_A, CERT) == _secret(V2)

    def test_reconcile_lists_each_service_once(self, rotated: World) -> None:
        """The sweep reads each service's entities once, not once per certificate."""
        rotated.add_version("v1", V1, name="alpha")
        rotated.bind(SVC_A, "alpha", V1, name="alpha")

        rotated.service().reconcile(trigger=Trigger.TIMER)

        assert rotated.gateway.calls["list_certificates"] == 2
        assert rotated.source.calls["list_certificate_versions"] == 2


class TestAuditRecords:
    def test_canonical_record_carries_the_section_5_fields(self, rotated: World) -> None:
        """The canonical record names the event, the versions, thumbprints, dates and targets."""
        record = rotated.service().handle(make_event(V2, event_id="evt-42"), trigger=EG)

        leaf = rotated.pki.leaves["v2"].cert
        data = record.as_dict()
        assert data["event"] == "rotation.applied"
        assert (data["event_id"], data["event_type"]) == (
            "evt-42",
            "Microsoft.KeyVault.CertificateNewVersionCreated",
        )
        assert (data["vault"], data["certificate"], data["version"], data["previous_version"]) == (
            VAULT,
            CERT,
            V2,
            V1,
        )
        assert data["thumbprint_sha1"] == _thumb(rotated, V2)
        assert isinstance(data["thumbprint_sha256"], str)
        assert data["not_after"] == leaf.not_valid_after_utc.isoformat().replace("+00:00", "Z")
        assert data["strategy"] == "pin"
        assert data["trigger"] == "eventgrid"
        assert data["correlation_id"]
        assert isinstance(data["duration_ms"], float)
        assert data["targets"] == [
            {
                "service": "apim-one",
                "kind": "certificate",
                "name": CERT,
                "from": _secret(V1),
                "to": _secret(V2),
                "result": "updated",
            }
        ]

    def test_one_target_record_per_target_with_the_same_correlation(self, rotated: World) -> None:
        """Each target gets its own rotation.target record sharing the correlation id."""
        rotated.bind(SVC_B, "mtls-b", V1)

        record = rotated.service().handle(make_event(V2), trigger=EG)

        per_target = [r for r in rotated.audit.records if r.event == "rotation.target"]
        assert len(per_target) == 2
        assert {r.correlation_id for r in per_target} == {record.correlation_id}
        assert all(len(r.targets) == 1 for r in per_target)

    def test_no_record_contains_secret_material(self, rotated: World) -> None:
        """No audit record carries the private key, PFX or PEM bodies in any encoding."""
        rotated.add_version("v3", V3, keyless=True)  # a rejected one too
        service = rotated.service()
        service.handle(make_event(V2), trigger=EG)
        service.handle(make_event(V3), trigger=EG)
        service.reconcile(trigger=Trigger.TIMER)

        issued = rotated.pki.leaves["v2"]
        der = issued.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        needles = [
            base64.b64encode(der).decode()[:40],
            issued.key_pem.decode().splitlines()[1],
            base64.b64encode(rotated.pki.pkcs12["v2"]).decode()[:40],
            "PRIVATE KEY",
            "BEGIN CERTIFICATE",
        ]
        dumped = "\n".join(json.dumps(r.as_dict()) for r in rotated.audit.records)
        assert len(rotated.audit.records) >= 5
        assert [n for n in needles if n in dumped] == []


class TestPlan:
    def test_plan_reports_actions_without_writing(self, rotated: World) -> None:
        """plan() returns what would change, per target, and records and writes nothing."""
        plan = rotated.service().plan(VAULT, CERT)

        assert plan.decision is Decision.APPLIED
        assert plan.candidate is not None
        assert plan.candidate.version == V2
        assert [(t.name, t.result) for t in plan.targets] == [(CERT, "update")]
        assert rotated.gateway.updates == []
        assert rotated.audit.records == []

    def test_plan_as_dict_is_the_view_the_cli_prints(self, rotated: World) -> None:
        """plan.as_dict() gives the JSON view the CLI prints, with the audit record's names."""
        plan = rotated.service().plan(VAULT, CERT).as_dict()

        assert (plan["version"], plan["previous_version"], plan["decision"]) == (V2, V1, "applied")
        assert plan["targets"] == [
            {
                "service": "apim-one",
                "kind": "certificate",
                "name": CERT,
                "from": _secret(V1),
                "to": _secret(V2),
                "result": "update",
            }
        ]
        json.dumps(plan)

    def test_plan_for_unknown_vault_is_ignored(self, rotated: World) -> None:
        """Planning a vault outside ROTATION_VAULTS makes no call."""
        plan = rotated.service().plan("https://kv-else.vault.azure.net", CERT)

        assert plan.decision is Decision.IGNORED
        assert rotated.gateway.calls == {}


class TestPortConformance:
    def test_service_is_an_event_handler(self, world: World) -> None:
        """RotationService satisfies the EventHandler port (checked by mypy and at runtime)."""
        handler: EventHandler = world.service()

        assert isinstance(handler, EventHandler)

    def test_rejects_out_of_range_knobs(self, world: World) -> None:
        """Bad constructor knobs are a clear ValueError."""
        with pytest.raises(ValueError, match="max_attempts"):
            world.service(max_attempts=0)
