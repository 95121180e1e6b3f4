"""The ``follow`` strategy's pure decisions (rotation.domain.follow, planning's follow branch)
and the canary's targets (rotation.domain.exposure)."""

from __future__ import annotations

from dataclasses import replace

from rotation.domain.actions import (
    AlreadyCurrent,
    MoveBackend,
    PinEntity,
    RefreshEntity,
    Superseded,
)
from rotation.domain.exposure import canary_checks
from rotation.domain.follow import last_validated, needs_validation, pin_back, presented_version
from rotation.domain.model import (
    AuditRecord,
    AuditTarget,
    Decision,
    FindingCode,
    Strategy,
    TargetKind,
    TargetResult,
    Trigger,
)
from rotation.domain.planning import plan_rotation, versionless_secret
from tests.unit.test_planning import SVC, V1, V2, V3, VAULT, backend, bindings, entity


def thumbed(*versions):
    return tuple(replace(v, thumbprint_sha1=f"{v.version[:2].upper()}" * 20) for v in versions)


T1, T2, T3 = thumbed(V1, V2, V3)
VERSIONS = (T1, T2, T3)


def loose(cid: str, presents, **kw):
    """A versionless entity presenting ``presents`` (a version, or None for nothing known)."""
    return replace(
        entity(cid, None, **kw),
        thumbprint=presents.thumbprint_sha1 if presents else None,
        last_status_code="Success",
    )


class TestPlanFollow:
    def test_versionless_not_presenting_the_candidate_is_refreshed(self):
        plan = plan_rotation(
            bindings=bindings([loose("e", T1)]), versions=VERSIONS, candidate=T2,
            strategy=Strategy.FOLLOW,
        )  # fmt: skip
        assert plan == (
            RefreshEntity(service_id=SVC, certificate_id="e", secret=f"{VAULT}/secrets/cert"),
        )

    def test_versionless_presenting_the_candidate_is_current(self):
        (action,) = plan_rotation(
            bindings=bindings([loose("e", T2)]), versions=VERSIONS, candidate=T2,
            strategy=Strategy.FOLLOW,
        )  # fmt: skip
        assert isinstance(action, AlreadyCurrent)

    def test_a_pinned_entity_returns_to_versionless(self):
        (action,) = plan_rotation(
            bindings=bindings([entity("e", T1)]), versions=VERSIONS, candidate=T2,
            strategy=Strategy.FOLLOW,
        )  # fmt: skip
        assert isinstance(action, PinEntity)
        assert action.to_secret == f"{VAULT}/secrets/cert"

    def test_an_entity_pinned_to_a_newer_version_is_never_rolled_back(self):
        (action,) = plan_rotation(
            bindings=bindings([entity("e", T3)]), versions=VERSIONS, candidate=T2,
            strategy=Strategy.FOLLOW,
        )  # fmt: skip
        assert isinstance(action, Superseded)

    def test_versionless_secret(self):
        assert versionless_secret(f"{VAULT}/secrets/cert/{V1.version}") == f"{VAULT}/secrets/cert"
        assert versionless_secret(f"{VAULT}/secrets/cert") == f"{VAULT}/secrets/cert"


class TestPinBack:
    def test_pins_versionless_entities_to_the_last_validated_version(self):
        found = pin_back(bindings([loose("e", T1), entity("p", T1)]), VERSIONS, T3, T1.version)
        (action,) = found.actions
        assert (action.certificate_id, action.to_secret) == ("e", T1.secret_id)
        assert action.thumbprint == T1.thumbprint_sha1
        assert found.findings == (FindingCode.BINDING_PINNED,)

    def test_an_entity_presenting_the_failed_candidate_is_unvalidated(self):
        found = pin_back(bindings([loose("e", T3)]), VERSIONS, T3, T2.version)
        assert found.actions[0].unvalidated
        assert FindingCode.BINDING_UNVALIDATED in found.findings

    def test_unknown_last_validated_version_pins_nothing(self):
        for validated in (None, T3.version, "f" * 32):
            found = pin_back(bindings([loose("e", T1)]), VERSIONS, T3, validated)
            assert found.actions == ()
            assert found.findings == (FindingCode.BINDING_LAST_VALIDATED_UNKNOWN,)
            assert "pin them by hand" in (found.message or "")

    def test_pinned_entities_are_left_alone(self):
        assert pin_back(bindings([entity("p", T1)]), VERSIONS, T3, None).actions == ()


class TestHistory:
    def record(self, decision, version, *, sha256="AB", event=None, dry_run=False, failed=False):
        target = AuditTarget(
            service="s", kind=TargetKind.CERTIFICATE, name="e", from_=None, to=None,
            result=TargetResult.FAILED if failed else TargetResult.UPDATED,
        )  # fmt: skip
        return AuditRecord(
            event=event or f"rotation.{decision}", decision=decision, trigger=Trigger.CLI,
            vault=VAULT, certificate="cert", version=version, thumbprint_sha256=sha256,
            dry_run=dry_run, targets=(target,),
        ).as_dict()  # fmt: skip

    def test_the_last_validated_record_wins(self):
        trail = [
            self.record(Decision.APPLIED, "v1"),
            self.record(Decision.ALREADY_CURRENT, "v2"),
            self.record(Decision.REJECTED, "v3"),
            self.record(Decision.APPLIED, "v4", dry_run=True),
            self.record(Decision.ALREADY_CURRENT, "v5", sha256=None),  # never validated
            self.record(Decision.APPLIED, "v6", event="rotation.target"),
            self.record(Decision.APPLIED, "v7", failed=True),
        ]
        assert last_validated(trail, VAULT, "CERT") == "v2"
        assert last_validated(trail, VAULT, "other") is None
        assert last_validated([], VAULT, "cert") is None

    def test_needs_validation_only_when_an_entity_presents_an_unvalidated_candidate(self):
        presenting = bindings([loose("e", T2)])
        assert needs_validation(presenting, T2, None)
        assert needs_validation(presenting, T2, T1.version)
        assert not needs_validation(presenting, T2, T2.version)
        assert not needs_validation(bindings([loose("e", T1)]), T2, None)

    def test_presented_version(self):
        assert presented_version(bindings([loose("e", T2)])[0], VERSIONS) == T2
        assert presented_version(bindings([entity("e", T1)])[0], VERSIONS) == T1
        assert presented_version(bindings([loose("e", None)])[0], VERSIONS) is None


class TestCanaryChecks:
    def test_pin_exposes_the_backends_of_the_changed_entity_with_their_version(self):
        eid = f"{SVC}/certificates/e"
        found = bindings([entity("e", T1), entity("lonely", T1)], [backend("b1", eid)])
        plan = plan_rotation(
            bindings=found, versions=VERSIONS, candidate=T2, strategy=Strategy.PIN
        )
        checks = canary_checks(plan, found, VERSIONS, T2)
        assert [(c.target.backend, c.current) for c in checks] == [
            ("b1", T1.version),
            (None, None),  # an entity no backend references: skipped by the canary
        ]

    def test_blue_green_exposes_the_moved_backends(self):
        eid = f"{SVC}/certificates/e"
        found = bindings([entity("e", T1)], [backend("b1", eid), backend("b2", eid)])
        plan = plan_rotation(
            bindings=found, versions=VERSIONS, candidate=T2, strategy=Strategy.BLUE_GREEN
        )
        assert sum(isinstance(a, MoveBackend) for a in plan) == 2
        checks = canary_checks(plan, found, VERSIONS, T2)
        assert [(c.target.backend, c.current) for c in checks] == [
            ("b1", T1.version),
            ("b2", T1.version),
        ]

    def test_nothing_changes_nothing_is_probed(self):
        found = bindings([entity("e", T2)], [backend("b1", f"{SVC}/certificates/e")])
        plan = plan_rotation(
            bindings=found, versions=VERSIONS, candidate=T2, strategy=Strategy.PIN
        )
        assert canary_checks(plan, found, VERSIONS, T2) == ()
