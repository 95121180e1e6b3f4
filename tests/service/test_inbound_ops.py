"""Operating the inbound half over the fakes: ``status`` rows per (policy document, pinned
identity), near-expiry alerts on what callers can present (once a day; ``certificate.expired``),
and the expiration gauge per policy document."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from rotation.domain.model import AuditRecord, Decision, Finding, FindingCode, Severity, Trigger
from rotation.domain.status import BindingStatus, IdentityStatus, needs_attention
from tests.service.conftest import CERT, SVC_A, V1, V2, VAULT, World, make_event
from tests.service.test_inbound_service import CALLER, Inbound
from tests.service.test_telemetry import Metrics

EG, TIMER = Trigger.EVENTGRID, Trigger.TIMER
RESOURCES = {
    ("global", "global"),
    ("product", "products/gold"),
    ("api", "apis/echo"),
    ("operation", "apis/echo/operations/get"),
}
ALERTS = ("certificate.near_expiry", "certificate.expired")


@pytest.fixture(name="inb")
def _inbound(world: World) -> Inbound:
    return Inbound(world)


@pytest.fixture(name="metrics")
def _metrics() -> Metrics:
    return Metrics()


def _identities(rows: tuple[object, ...]) -> list[IdentityStatus]:
    return [r for r in rows if isinstance(r, IdentityStatus)]


def _reject_v2(inb: Inbound) -> None:
    bad = Finding(code=FindingCode.CHAIN_UNTRUSTED, severity=Severity.ERROR, message="no path")
    inb.world.validator.findings[inb.t2] = (bad,)


def _alerts(records: Sequence[AuditRecord]) -> list[AuditRecord]:
    return [r for r in records if r.event in ALERTS]


class TestStatus:
    def test_one_row_per_document_and_pinned_identity_out_of_sync_before_the_rotation(
        self, inb: Inbound
    ):
        """Every scope pins v1 while v2 is the newest enabled version: four rows, NO in sync,
        the version and days left of v1; the unrelated document has no row."""
        inb.world.reset_counts()

        rows = _identities(inb.service().status(alert_days=30))

        assert {(r.scope, r.resource) for r in rows} == RESOURCES
        assert len(rows) == 4
        for row in rows:
            assert (row.service, row.vault, row.certificate) == ("apim-one", VAULT, CALLER)
            assert (row.version, row.thumbprint, row.newest) == (V1, inb.t1, V2)
            assert row.not_after == inb.v1.expires
            assert row.days_left == 30
            assert row.in_sync is False
            assert row.current is True
            assert row.expiring is False
            assert row.healthy is False
            assert row.resource_id.endswith("/policies/policy")
        assert needs_attention(rows)
        # Reads only: one policy listing per service, one version list for the certificate.
        assert inb.policies.calls["list_policies"] == 2
        assert inb.policies.calls["put_policy"] == 0
        assert inb.world.source.calls["list_certificate_versions"] == 1

    def test_after_the_rotation_each_document_is_in_sync_and_the_old_identity_is_older(
        self, inb: Inbound
    ):
        """v2 learnt next to v1: eight rows, all in sync; v1 is not the current one, so its
        expiry within the threshold does not need attention; v2's would."""
        service = inb.service()
        service.handle(make_event(V2, name=CALLER), trigger=EG)

        rows = _identities(service.status(alert_days=40))  # v1: 30 days left, v2: 61

        assert len(rows) == 8
        by = {(r.resource, r.version): r for r in rows}
        for _, resource in RESOURCES:
            old, new = by[(resource, V1)], by[(resource, V2)]
            assert (old.in_sync, new.in_sync) == (True, True)
            assert (old.current, new.current) == (False, True)
            assert (old.expiring, new.expiring) == (True, False)
            assert (old.healthy, new.healthy) == (True, True)
            assert new.thumbprint == inb.t2
        assert not needs_attention(rows)
        later = _identities(service.status(alert_days=70))  # v2 expiring too: attention
        assert {r.healthy for r in later if r.version == V2} == {False}
        assert needs_attention(later)

    def test_json_rows_carry_their_kind_and_bindings_keep_theirs(self, inb: Inbound):
        """An outbound binding and an inbound identity side by side: kind certificate (its
        keys as before) and kind policy."""
        inb.world.add_version("v1", V1)
        inb.world.bind(SVC_A, CERT, V1)

        rows = inb.service().status(alert_days=30)

        bindings = [r for r in rows if isinstance(r, BindingStatus)]
        assert [b.entity for b in bindings] == [CERT]
        assert bindings[0].as_dict()["kind"] == "certificate"
        assert {"entity", "backends", "versionless", "in_sync", "healthy"} <= set(
            bindings[0].as_dict()
        )
        identity = _identities(rows)[0].as_dict()
        assert identity["kind"] == "policy"
        assert identity["certificate"] == CALLER
        assert str(identity["not_after"]).endswith("Z")
        assert {"scope", "resource", "resource_id", "version", "thumbprint", "days_left",
                "newest", "in_sync", "current", "expiring", "healthy"} <= set(identity)  # fmt: skip

    def test_an_inbound_certificate_bound_to_an_entity_is_not_a_binding_row(self, inb: Inbound):
        """An APIM entity naming an inbound certificate is not certrotate's to rotate (the
        sweep skips it), so status shows its identities only."""
        inb.world.bind(SVC_A, "caller-entity", V1, name=CALLER)

        rows = inb.service().status(alert_days=30)

        assert not [r for r in rows if isinstance(r, BindingStatus)]
        assert len(_identities(rows)) == 4

    def test_no_inbound_certificates_no_policy_reads(self, world: World, inb: Inbound):
        world.add_version("v1", V1)
        world.bind(SVC_A, CERT, V1)

        rows = world.service().status(alert_days=30)

        assert not _identities(rows)
        assert inb.policies.calls["list_policies"] == 0


class TestAlerts:
    def test_a_caller_certificate_near_expiry_alerts_once_per_day(self, inb: Inbound):
        """v2 rejected: callers can only present v1. Two days later (28 days left) the sweep
        records certificate.near_expiry for v1, once that UTC day, again the next day."""
        _reject_v2(inb)
        service = inb.service(near_expiry_days=30)
        assert _alerts(service.reconcile(trigger=TIMER)) == []  # 30.5 days left: not within 30

        inb.world.clock.advance(days=2)
        first = _alerts(service.reconcile(trigger=TIMER))
        again = _alerts(service.reconcile(trigger=TIMER))
        inb.world.clock.advance(days=1)
        next_day = _alerts(service.reconcile(trigger=TIMER))

        assert [(a.event, a.version, a.days_left) for a in first] == [
            ("certificate.near_expiry", V1, 28)
        ]
        alert = first[0]
        assert (alert.vault, alert.certificate) == (VAULT, CALLER)
        assert alert.decision is Decision.REJECTED
        assert alert.thumbprint_sha1 == inb.t1
        assert alert.not_after == inb.v1.expires
        assert alert.message is not None
        assert "pinned for callers" in alert.message
        assert again == []
        assert [(a.event, a.days_left) for a in next_day] == [("certificate.near_expiry", 27)]
        assert alert in inb.world.audit.records

    def test_an_expired_caller_certificate_is_certificate_expired(self, inb: Inbound):
        _reject_v2(inb)
        service = inb.service()
        assert inb.v1.expires is not None
        inb.world.clock.at = inb.v1.expires + timedelta(hours=1)

        alerts = _alerts(service.reconcile(trigger=TIMER))

        assert [(a.event, a.version, a.days_left) for a in alerts] == [
            ("certificate.expired", V1, -1)
        ]

    def test_an_old_identity_kept_through_the_overlap_does_not_alert(self, inb: Inbound):
        """v2 was learnt: callers can renew onto it (59 days), so v1's 28 are no alert."""
        service = inb.service(near_expiry_days=30)
        service.handle(make_event(V2, name=CALLER), trigger=EG)
        inb.world.clock.advance(days=2)  # within the overlap: v1 stays pinned

        records = service.reconcile(trigger=TIMER)

        assert inb.t1 in inb.policies.value(next(iter(inb.before)))
        assert _alerts(records) == []

    def test_the_sweep_that_adds_the_new_version_alerts_on_it_only_if_it_expires(
        self, inb: Inbound
    ):
        """The sweep applies v2: what callers can use after it is v2 (61 days): no alert at
        30, an alert at 70."""
        records = inb.service(near_expiry_days=70).reconcile(trigger=TIMER)

        alerts = _alerts(records)
        assert [(a.event, a.version, a.decision) for a in alerts] == [
            ("certificate.near_expiry", V2, Decision.APPLIED)
        ]


class TestGauge:
    def test_every_pinning_document_reports_the_newest_identity_it_pins(
        self, inb: Inbound, metrics: Metrics
    ):
        """After the rotation each document pins v1 and v2: the gauge shows v2's not_after per
        document, under the policy's ARM path below the service."""
        service = inb.service(telemetry=metrics.telemetry)

        service.handle(make_event(V2, name=CALLER), trigger=EG)

        gauge = metrics.values("certrotate.certificate.expiration")
        expected = {
            "policies/policy",
            "products/gold/policies/policy",
            "apis/echo/policies/policy",
            "apis/echo/operations/get/policies/policy",
        }
        assert inb.v2.expires is not None
        attrs = {"certificate": CALLER, "vault": VAULT, "service": "apim-one"}
        assert gauge == {
            tuple(sorted((attrs | {"entity": e}).items())): inb.v2.expires.timestamp()
            for e in expected
        }

    def test_a_rejected_version_leaves_what_the_documents_pin(
        self, inb: Inbound, metrics: Metrics
    ):
        _reject_v2(inb)

        inb.service(telemetry=metrics.telemetry).handle(make_event(V2, name=CALLER), trigger=EG)

        assert inb.v1.expires is not None
        values = set(metrics.values("certrotate.certificate.expiration").values())
        assert values == {inb.v1.expires.timestamp()}
