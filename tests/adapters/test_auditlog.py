"""JsonLinesAuditSink: one JSON object per audit record, appended, no secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from rotation.adapters.auditlog import JsonLinesAuditSink
from rotation.domain.errors import DependencyError
from rotation.domain.model import (
    AuditRecord,
    AuditTarget,
    Decision,
    Strategy,
    TargetKind,
    TargetResult,
    Trigger,
)
from rotation.ports import AuditSink
from rotation.testing import FrozenClock


def record(decision: Decision = Decision.APPLIED, version: str = "v2") -> AuditRecord:
    return AuditRecord(
        event=f"rotation.{decision}",
        decision=decision,
        trigger=Trigger.CLI,
        event_id="e-1",
        certificate="partner-mtls",
        version=version,
        not_after=datetime(2027, 1, 1, tzinfo=UTC),
        findings=("chain.untrusted",) if decision is Decision.REJECTED else (),
        targets=(
            AuditTarget(
                service="apim-a",
                kind=TargetKind.CERTIFICATE,
                name="partner-mtls",
                from_="https://kv/secrets/partner-mtls/v1",
                to="https://kv/secrets/partner-mtls/v2",
                result=TargetResult.UPDATED,
            ),
        ),
        strategy=Strategy.PIN,
    )


class TestJsonLinesAuditSink:
    def test_is_an_audit_sink(self, tmp_path):
        """The sink satisfies the AuditSink port."""
        sink: AuditSink = JsonLinesAuditSink(tmp_path / "a.jsonl")

        assert isinstance(sink, AuditSink)

    def test_appends_one_json_object_per_record(self, tmp_path):
        """Each record becomes one line holding AuditRecord.as_dict()."""
        sink = JsonLinesAuditSink(tmp_path / "audit.jsonl")

        sink.write(record(Decision.APPLIED, "v2"))
        sink.write(record(Decision.REJECTED, "v3"))

        lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [x["decision"] for x in lines] == ["applied", "rejected"]
        assert lines[0]["targets"][0]["from"] == "https://kv/secrets/partner-mtls/v1"
        assert lines[0]["not_after"] == "2027-01-01T00:00:00Z"
        assert lines[1]["findings"] == ["chain.untrusted"]
        assert lines[0] == record(Decision.APPLIED, "v2").as_dict() | {"not_after": "2027-01-01T00:00:00Z", "targets": lines[0]["targets"], "recorded_at": lines[0]["recorded_at"]}  # fmt: skip

    def test_each_line_carries_when_it_was_recorded(self, tmp_path):
        """recorded_at (UTC, from the sink's clock) as the durable table has it: audit --since."""
        clock = FrozenClock(datetime(2026, 3, 2, 9, 15, tzinfo=UTC))
        sink = JsonLinesAuditSink(tmp_path / "audit.jsonl", clock=clock)

        sink.write(record())
        clock.advance(minutes=5)
        sink.write(record())

        lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [x["recorded_at"] for x in lines] == [
            "2026-03-02T09:15:00Z",
            "2026-03-02T09:20:00Z",
        ]

    def test_unwritable_path_raises_dependency_error(self, tmp_path):
        """A missing directory is a DependencyError naming the file, not an OSError."""
        sink = JsonLinesAuditSink(tmp_path / "missing" / "audit.jsonl")

        with pytest.raises(DependencyError, match=r"audit\.jsonl"):
            sink.write(record())
