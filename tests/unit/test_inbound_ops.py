"""Operating inbound identities on plain values: the status of each pinned identity
(rotation.domain.status.identity_status), what the policy documents pin after a run and what
callers can present (rotation.domain.expiry), the gauge per document and the inbound alert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rotation.domain.decisions import expiry_alert
from rotation.domain.expiry import (
    binding_expirations,
    callers_use,
    pinned_after,
    pinned_versions,
)
from rotation.domain.inbound import PolicyDocument, PolicyScope
from rotation.domain.model import (
    AuditTarget,
    CertificateVersion,
    Decision,
    Strategy,
    TargetKind,
    TargetResult,
    Trigger,
)
from rotation.domain.policies import PolicyDocumentError
from rotation.domain.status import identity_status, needs_attention

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VAULT = "https://kv-demo.vault.azure.net"
SVC = "/subscriptions/1/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-one"
T1, T2, T3, OTHER = "A1" * 20, "B2" * 20, "C3" * 20, "D4" * 20


def version(label: str, thumbprint: str, *, created_days_ago: int, expires_in: float = 60):
    return CertificateVersion(
        vault_url=VAULT, name="caller", version=label, enabled=True,
        created=NOW - timedelta(days=created_days_ago), thumbprint_sha1=thumbprint,
        expires=NOW + timedelta(days=expires_in),
    )  # fmt: skip


V1 = version("v1", T1, created_days_ago=60, expires_in=10)
V2 = version("v2", T2, created_days_ago=10, expires_in=80)
V3 = version("v3", T3, created_days_ago=1, expires_in=90)


def document(*blocks: tuple[str, ...], path: str = "/apis/orders") -> PolicyDocument:
    body = "".join(
        "<validate-client-certificate><identities>"
        + "".join(f'<identity thumbprint="{t}" />' for t in pins)
        + "</identities></validate-client-certificate>"
        for pins in blocks
    )
    scope = PolicyScope.GLOBAL if not path else PolicyScope.API
    return PolicyDocument(
        service_id=SVC, scope=scope, resource_id=f"{SVC}{path}/policies/policy",
        value=f"<policies><inbound>{body}</inbound></policies>",
    )  # fmt: skip


def status(doc: PolicyDocument, versions=(V1, V2), *, alert_days: int = 30):
    return identity_status(
        doc, versions, vault=VAULT, certificate="caller", now=NOW, alert_days=alert_days
    )


class TestIdentityStatus:
    def test_one_row_per_pinned_version_oldest_first_other_thumbprints_ignored(self):
        rows = status(document((T2, OTHER), (T1, T2)))

        assert [r.version for r in rows] == ["v1", "v2"]  # v2 in two blocks: one row
        assert [r.current for r in rows] == [False, True]
        assert {(r.service, r.scope, r.resource) for r in rows} == {
            ("apim-one", "api", "apis/orders")
        }
        assert {r.newest for r in rows} == {"v2"}
        assert all(r.in_sync for r in rows)
        assert [r.days_left for r in rows] == [10, 80]
        assert [r.expiring for r in rows] == [True, False]
        assert all(r.healthy for r in rows)  # v1 expires, but callers have v2

    def test_a_document_without_the_newest_version_is_out_of_sync(self):
        (row,) = status(document((T1,), path=""), (V1, V2, V3))

        assert (row.resource, row.scope) == ("global", "global")
        assert (row.version, row.newest, row.in_sync, row.current) == ("v1", "v3", False, True)
        assert not row.healthy
        assert needs_attention([row])

    def test_the_newest_pinned_identity_expiring_needs_attention(self):
        rows = status(document((T1, T2)), alert_days=90)

        assert [(r.expiring, r.healthy) for r in rows] == [(True, True), (True, False)]
        assert needs_attention(rows)

    def test_a_disabled_newest_version_is_not_what_in_sync_means(self):
        disabled = replace(V3, enabled=False)

        rows = status(document((T1, T2)), (V1, V2, disabled))

        assert {r.newest for r in rows} == {"v2"}
        assert all(r.in_sync for r in rows)

    def test_a_document_pinning_nothing_of_ours_has_no_row_and_is_not_parsed(self):
        broken = replace(document((OTHER,)), value="<policies><inbound><oops")

        assert status(document((OTHER,))) == ()
        assert status(broken) == ()

    def test_an_unreadable_document_that_mentions_a_pin_names_its_resource(self):
        broken = replace(document((T1,)), value=f'<policies><identity thumbprint="{T1}" <')

        with pytest.raises(PolicyDocumentError, match="apis/orders/policies/policy"):
            status(broken)

    def test_json_keeps_not_after_in_utc_and_says_kind_policy(self):
        row = status(document((T1,)))[0].as_dict()

        assert row["kind"] == "policy"
        assert row["not_after"] == (NOW + timedelta(days=10)).isoformat().replace("+00:00", "Z")
        assert row["healthy"] is False  # v2 is newest, not pinned


def target(before: str, after: str, result: TargetResult, name: str = "apis/orders"):
    return AuditTarget(
        service="apim-one", kind=TargetKind.POLICY, name=name, from_=before or None,
        to=after or None, result=result, scope="api", resource_id=f"{SVC}/{name}/policies/policy",
    )  # fmt: skip


class TestAfterTheRun:
    @pytest.mark.parametrize(
        ("result", "expected"),
        [
            (TargetResult.UPDATED, (T1, T2)),
            (TargetResult.ALREADY_CURRENT, (T1, T2)),
            (TargetResult.SKIPPED_DRY_RUN, (T1,)),
            (TargetResult.REJECTED, (T1,)),
            (TargetResult.FAILED, (T1,)),
        ],
    )
    def test_pinned_after_is_what_the_document_holds_now(self, result, expected):
        assert pinned_after(target(T1, f"{T1},{T2.lower()}", result)) == expected

    def test_pinned_versions_and_what_callers_use(self):
        entity = AuditTarget(
            service="apim-one", kind=TargetKind.CERTIFICATE, name="e", from_=None,
            to=None, result=TargetResult.UPDATED,
        )  # fmt: skip
        targets = [
            target(T1, f"{T1},{T2}", TargetResult.UPDATED),
            target(T1, f"{T1},{T2}", TargetResult.FAILED, name="global"),
            entity,
        ]

        assert pinned_versions(targets, (V3, V2, V1)) == (V1, V2)
        assert callers_use(targets, (V1, V2, V3)) == (V1, V2)  # global still has v1 only
        assert callers_use(targets[:1], (V1, V2)) == (V2,)

    def test_the_gauge_reports_the_newest_identity_per_document(self):
        targets = [
            target(T1, f"{T1},{T2}", TargetResult.UPDATED),
            target(T1, f"{T1},{T2}", TargetResult.REJECTED, name="global"),
            target(OTHER, OTHER, TargetResult.ALREADY_CURRENT, name="products/p"),
        ]

        points = binding_expirations(
            vault=VAULT, certificate="caller", targets=targets, candidate=V2, in_use=(V1,)
        )

        assert [(p.entity, p.expires) for p in points] == [
            ("apis/orders/policies/policy", V2.expires),
            ("policies/policy", V1.expires),
            ("products/p/policies/policy", None),  # nothing of ours known: the series ends
        ]

    def test_the_inbound_alert_says_pinned_for_callers(self):
        alert = expiry_alert(
            decision=Decision.REJECTED, candidate=V2, in_use=(V1,), vault=VAULT,
            certificate="caller", now=NOW, near_expiry=timedelta(days=30),
            strategy=Strategy.PIN, dry_run=False, trigger=Trigger.TIMER, correlation_id="c",
            inbound=True,
        )  # fmt: skip

        assert alert is not None
        assert (alert.event, alert.version, alert.days_left) == (
            "certificate.near_expiry",
            "v1",
            10,
        )
        assert alert.message is not None
        assert "pinned for callers" in alert.message
        assert "no newer valid version is pinned (this run: rejected)" in alert.message
