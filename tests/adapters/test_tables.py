"""The durable audit trail round-trips through Azure Tables (Azurite) and fails cleanly."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rotation.adapters.audit import AUDIT_FIELDS
from rotation.adapters.tables import (
    TableAuditSink,
    TableValidationHistory,
    iter_audit_records,
    open_table,
)
from rotation.domain.errors import DependencyError, TransientDependencyError
from rotation.domain.model import (
    AuditRecord,
    AuditTarget,
    Decision,
    Strategy,
    TargetKind,
    TargetResult,
    Trigger,
)
from rotation.testing import FrozenClock

AT = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)


def _record(
    certificate: str = "partner-mtls", decision: Decision = Decision.APPLIED
) -> AuditRecord:
    return AuditRecord(
        event=f"rotation.{decision}",
        decision=decision,
        trigger=Trigger.EVENTGRID,
        event_id="e1",
        topic="/subscriptions/1/resourceGroups/rg/providers/Microsoft.EventGrid/topics/replay",
        vault="https://kv-rotation-demo.vault.azure.net",
        certificate=certificate,
        version="3f1c",
        findings=("binding.versionless", "revocation.unavailable"),
        targets=(
            AuditTarget(
                service="apim",
                kind=TargetKind.BACKEND,
                name="b1",
                from_="c1",
                to="c2",
                result=TargetResult.UPDATED,
            ),
        ),
        strategy=Strategy.BLUE_GREEN,
        not_after=AT + timedelta(days=365),
        duration_ms=3.25,
    )


@pytest.fixture(name="table")
def _table(azurite):
    name = f"audit{uuid.uuid4().hex[:12]}"
    client = open_table(azurite.connection_string, name)
    yield client
    client.delete_table()
    client.close()


@pytest.mark.azurite
class TestTableAuditSink:
    def test_records_round_trip_with_every_field(self, table):
        """What is written reads back as the same audit dict (lists decoded), plus recorded_at."""
        clock = FrozenClock(AT)
        sink = TableAuditSink(table, clock=clock)
        record = _record()

        sink.write(record)
        (stored,) = list(iter_audit_records(table))

        expected = record.as_dict()
        assert {k: stored[k] for k in expected} == expected
        assert set(AUDIT_FIELDS) <= set(stored)
        assert stored["recorded_at"] == "2026-03-02T08:15:00Z"

    def test_filters_by_certificate_and_time(self, table):
        """--certificate and --since select by property and by the time-sorted RowKey."""
        clock = FrozenClock(AT)
        sink = TableAuditSink(table, clock=clock)
        sink.write(_record("old-cert"))
        clock.advance(timedelta(hours=1))
        sink.write(_record("partner-mtls"))
        sink.write(_record("other"))

        by_cert = list(iter_audit_records(table, certificate="partner-mtls"))
        recent = list(iter_audit_records(table, since=AT + timedelta(minutes=30)))

        assert [r["certificate"] for r in by_cert] == ["partner-mtls"]
        assert sorted(str(r["certificate"]) for r in recent) == ["other", "partner-mtls"]

    def test_table_is_created_once_and_reused(self, table):
        """Two sinks on one table both write (the second finds the table already there)."""
        TableAuditSink(table).write(_record())
        TableAuditSink(table).write(_record(decision=Decision.REJECTED))

        assert sorted(str(r["decision"]) for r in iter_audit_records(table)) == [
            "applied",
            "rejected",
        ]


class TestTableErrors:
    def test_malformed_connection_string_is_never_echoed(self):
        """A broken connection string is a DependencyError that does not quote it."""
        with pytest.raises(DependencyError) as info:
            open_table("AccountKey=c2VjcmV0;nonsense", "audit")

        assert "c2VjcmV0" not in str(info.value)

    def test_unreachable_service_is_transient(self):
        """Nothing listening is retryable (Event Grid should redeliver)."""
        client = open_table(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0;"
            "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;",
            "audit",
            retries=0,
        )

        with pytest.raises(TransientDependencyError) as info:
            TableAuditSink(client).write(_record())

        assert "c2VjcmV0" not in str(info.value)


@pytest.mark.azurite
class TestTableValidationHistory:
    def test_the_last_validated_version_of_the_certificates_partition(self, table):
        """``follow`` asks the trail: the newest validated record of that certificate wins; a
        rejection, another certificate and an unvalidated already_current do not count."""
        clock = FrozenClock(AT)
        sink = TableAuditSink(table, clock=clock)
        history = TableValidationHistory(table)
        vault = "https://kv-rotation-demo.vault.azure.net"
        assert history.last_validated(vault, "partner-mtls") is None

        for version, decision, sha256, certificate in (
            ("v1", Decision.APPLIED, "AA", "partner-mtls"),
            ("v2", Decision.ALREADY_CURRENT, "BB", "partner-mtls"),
            ("v3", Decision.REJECTED, "CC", "partner-mtls"),
            ("v4", Decision.ALREADY_CURRENT, None, "partner-mtls"),
            ("v9", Decision.APPLIED, "DD", "other"),
        ):
            clock.advance(timedelta(seconds=1))
            record = replace(_record(certificate, decision), version=version)
            sink.write(replace(record, thumbprint_sha256=sha256))

        assert history.last_validated(vault, "partner-mtls") == "v2"
        assert history.last_validated(vault, "other") == "v9"

    def test_inbound_added_at_reads_the_policy_targets_back(self, table):
        """The inbound overlap asks the trail when a thumbprint was added to a document: a
        policy target's ``added`` and ``at`` survive the table and the chain verification."""
        sink = TableAuditSink(table, clock=FrozenClock(AT))
        history = TableValidationHistory(table)
        vault = "https://kv-rotation-demo.vault.azure.net"
        rid = "/subscriptions/1/resourceGroups/rg/providers/Microsoft.ApiManagement/service/a/policies/policy"
        policy = AuditTarget(
            service="a", kind=TargetKind.POLICY, name="global", from_="A1" * 20,
            to=f"{'A1' * 20},{'B2' * 20}", result=TargetResult.UPDATED, scope="global",
            resource_id=rid, added=("B2" * 20,), at=AT,
        )  # fmt: skip
        assert history.inbound_added_at(vault, "caller") == {}

        sink.write(replace(_record("caller"), targets=(policy,)))

        assert history.inbound_added_at(vault, "caller") == {(rid.lower(), "B2" * 20): AT}
        assert history.inbound_added_at(vault, "partner-mtls") == {}

    def test_a_missing_table_is_no_history(self, azurite):
        history = TableValidationHistory.from_connection_string(
            azurite.connection_string, f"missing{uuid.uuid4().hex[:8]}"
        )
        assert history.last_validated("https://kv.vault.azure.net", "c") is None
