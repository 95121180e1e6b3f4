"""Audit sinks: one structlog line per record with every audit field; composites lose nothing."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
import structlog
from structlog.testing import capture_logs

from rotation.adapters.audit import (
    AUDIT_FIELDS,
    CompositeAuditSink,
    StructlogAuditSink,
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
from rotation.logconfig import bind_correlation, configure_logging
from rotation.testing import MemoryAuditSink

RECORD = AuditRecord(
    event="rotation.applied",
    decision=Decision.APPLIED,
    trigger=Trigger.EVENTGRID,
    event_id="e1",
    event_type="Microsoft.KeyVault.CertificateNewVersionCreated",
    vault="https://kv-rotation-demo.vault.azure.net",
    certificate="partner-mtls",
    version="3f1c",
    previous_version="0a0b",
    thumbprint_sha1="A" * 40,
    thumbprint_sha256="B" * 64,
    not_before=datetime(2026, 3, 2, tzinfo=UTC),
    not_after=datetime(2027, 3, 2, tzinfo=UTC),
    findings=("binding.versionless",),
    targets=(
        AuditTarget(
            service="apim",
            kind=TargetKind.CERTIFICATE,
            name="partner",
            from_="a",
            to="b",
            result=TargetResult.UPDATED,
        ),
    ),
    strategy=Strategy.PIN,
    duration_ms=12.5,
    correlation_id="c-1",
)


class _Failing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def write(self, record: AuditRecord) -> None:
        raise self.error


class TestStructlogAuditSink:
    def test_one_line_per_record_with_every_field(self):
        """The line is named after the record, flagged audit=True and carries all audit fields."""
        with capture_logs() as logs:
            StructlogAuditSink().write(RECORD)

        (line,) = logs
        assert line["event"] == "rotation.applied"
        assert line["audit"] is True
        assert set(AUDIT_FIELDS) - {"event"} <= set(line)
        assert line["targets"] == [
            {
                "service": "apim",
                "kind": "certificate",
                "name": "partner",
                "from": "a",
                "to": "b",
                "result": "updated",
            }
        ]
        assert line["not_before"] == "2026-03-02T00:00:00Z"

    @pytest.mark.parametrize(
        ("event", "decision", "level"),
        [
            ("event.failed", Decision.FAILED, "error"),
            ("rotation.failed", Decision.FAILED, "error"),
            ("rotation.rejected", Decision.REJECTED, "warning"),
            ("certificate.near_expiry", Decision.ALREADY_CURRENT, "warning"),
            ("certificate.expired", Decision.REJECTED, "warning"),
            ("rotation.applied", Decision.APPLIED, "info"),
            ("rotation.already_current", Decision.ALREADY_CURRENT, "info"),
            ("rotation.ignored", Decision.IGNORED, "info"),
        ],
    )
    def test_level_follows_what_needs_attention(self, event, decision, level):
        """failed is an ERROR; rejected and expiry alerts are WARNINGs; the rest INFO."""
        with capture_logs() as logs:
            StructlogAuditSink().write(
                AuditRecord(event=event, decision=decision, trigger=Trigger.CLI)
            )

        assert logs[0]["log_level"] == level

    def test_correlation_id_comes_from_context_when_the_record_has_none(self):
        """A record without a correlation id gets the invocation's bound one."""
        bind_correlation(trigger=Trigger.CLI, correlation_id="bound-1")
        stream = io.StringIO()
        configure_logging(json=True, stream=stream)

        StructlogAuditSink().write(
            AuditRecord(event="event.ignored", decision=Decision.IGNORED, trigger=Trigger.CLI)
        )

        line = json.loads(stream.getvalue())
        assert line["correlation_id"] == "bound-1"
        assert line["logger"] == "rotation.audit"


class TestCompositeAuditSink:
    def test_writes_to_every_sink(self):
        """Each sink receives the record."""
        first, second = MemoryAuditSink(), MemoryAuditSink()

        CompositeAuditSink(first, second).write(RECORD)

        assert first.records == second.records == [RECORD]

    def test_one_failing_sink_does_not_starve_the_others(self):
        """The healthy sink still gets the record; then the failure is raised."""
        healthy = MemoryAuditSink()
        error = DependencyError("table down", service="audit-table", operation="write")

        with pytest.raises(DependencyError):
            CompositeAuditSink(_Failing(error), healthy).write(RECORD)

        assert healthy.records == [RECORD]

    def test_retryable_failure_is_preferred(self):
        """When several sinks fail, the retryable error is the one raised."""
        permanent = DependencyError("bad", service="s", operation="o")
        transient = TransientDependencyError("busy", service="s", operation="o")

        with pytest.raises(TransientDependencyError) as info:
            CompositeAuditSink(_Failing(permanent), _Failing(transient)).write(RECORD)

        assert any("bad" in note for note in info.value.__notes__)


class TestBindCorrelation:
    def test_clears_previous_context_and_binds_ids(self):
        """A new invocation never inherits the last one's context."""
        structlog.contextvars.bind_contextvars(stale="yes")

        cid = bind_correlation(trigger=Trigger.EVENTGRID, eventgrid_event_id="eg-1")

        assert structlog.contextvars.get_contextvars() == {
            "correlation_id": cid,
            "rotation_id": cid,
            "trigger": "eventgrid",
            "eventgrid_event_id": "eg-1",
        }
