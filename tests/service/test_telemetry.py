"""Metrics and expiry alerts of RotationService, read back through the SDK's in-memory reader."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TextIO, cast

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from rotation.adapters.audit import StructlogAuditSink
from rotation.adapters.telemetry import INSTRUMENTS, AuditTraceHandler, OtelTelemetry
from rotation.domain.expiry import AlertMemo, binding_expirations, days_left
from rotation.domain.model import (
    AuditRecord,
    AuditTarget,
    Decision,
    Finding,
    FindingCode,
    Severity,
    Strategy,
    TargetKind,
    TargetResult,
    Trigger,
)
from rotation.logconfig import configure_logging
from tests.service.conftest import CERT, SVC_A, V1, V2, VAULT, World, make_event

EG = Trigger.EVENTGRID


class Metrics:
    """An OtelTelemetry over an in-memory reader, and its data points by instrument."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = OtelTelemetry(self.provider.get_meter("certrotate"))

    def points(self, name: str) -> list[tuple[dict[str, object], object]]:
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, object], object]] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        found.extend(
                            (dict(p.attributes or {}), p) for p in metric.data.data_points
                        )
        return found

    def values(self, name: str) -> dict[tuple[tuple[str, object], ...], object]:
        return {
            tuple(sorted(attrs.items())): getattr(p, "value", None)
            for attrs, p in self.points(name)
        }


@pytest.fixture(name="metrics")
def _metrics() -> Metrics:
    return Metrics()


def _expires(world: World, version: str) -> datetime:
    found = world.source.lookup(VAULT, CERT, version)
    assert found is not None
    assert found.expires is not None
    return found.expires


def _binding(service: str = "apim-one", entity: str = CERT) -> tuple[tuple[str, object], ...]:
    return tuple(
        sorted({"certificate": CERT, "vault": VAULT, "service": service, "entity": entity}.items())
    )


class TestRotationMetrics:
    def test_an_applied_rotation_is_counted_timed_and_its_expiry_reported(
        self, rotated: World, metrics: Metrics
    ):
        """One applied event: the counter by decision/strategy/trigger, one duration sample, and
        the gauge shows the new version's not_after for the binding."""
        rotated.service(telemetry=metrics.telemetry).handle(make_event(V2), trigger=EG)

        counts = metrics.values("certrotate.rotations")
        assert counts == {
            (("decision", "applied"), ("strategy", "pin"), ("trigger", "eventgrid")): 1
        }
        [(attrs, hist)] = metrics.points("certrotate.rotation.duration")
        assert attrs == {"decision": "applied"}
        assert getattr(hist, "count", None) == 1
        assert metrics.values("certrotate.certificate.expiration") == {
            _binding(): _expires(rotated, V2).timestamp()
        }

    def test_a_rejected_candidate_leaves_the_old_expiry_on_the_gauge(
        self, rotated: World, metrics: Metrics
    ):
        """The binding still presents v1, so the gauge says v1's not_after (the alert's input)."""
        thumb = rotated.source.lookup(VAULT, CERT, V2)
        assert thumb is not None
        assert thumb.thumbprint_sha1 is not None
        bad = Finding(code=FindingCode.CHAIN_UNTRUSTED, severity=Severity.ERROR, message="no")
        rotated.validator.findings[thumb.thumbprint_sha1] = (bad,)

        rotated.service(telemetry=metrics.telemetry).handle(make_event(V2), trigger=EG)

        assert metrics.values("certrotate.rotations") == {
            (("decision", "rejected"), ("strategy", "pin"), ("trigger", "eventgrid")): 1
        }
        assert metrics.values("certrotate.certificate.expiration") == {
            _binding(): _expires(rotated, V1).timestamp()
        }

    def test_reconcile_reports_every_binding_and_counts_by_trigger(
        self, rotated: World, metrics: Metrics
    ):
        """A sweep over two bindings in two services: both on the gauge, timer-triggered counts."""
        rotated.bind(SVC_A.replace("apim-one", "apim-two"), "other-entity", V2)
        service = rotated.service(telemetry=metrics.telemetry)

        service.reconcile(trigger=Trigger.TIMER)
        service.reconcile(trigger=Trigger.TIMER)

        counts = metrics.values("certrotate.rotations")
        assert counts == {
            (("decision", "applied"), ("strategy", "pin"), ("trigger", "timer")): 1,
            (("decision", "already_current"), ("strategy", "pin"), ("trigger", "timer")): 1,
        }
        v2 = _expires(rotated, V2).timestamp()
        assert metrics.values("certrotate.certificate.expiration") == {
            _binding(): v2,
            _binding("apim-two", "other-entity"): v2,
        }

    def test_blue_green_reports_the_new_entity(self, world: World, metrics: Metrics):
        """blue-green: the entity created for the candidate presents it."""
        world.add_version("v1", V1)
        world.add_version("v2", V2)
        world.bind(SVC_A, CERT, V1, backend="partner-api")
        service = world.service(telemetry=metrics.telemetry, strategy=Strategy.BLUE_GREEN)

        service.handle(make_event(V2), trigger=EG)

        gauge = metrics.values("certrotate.certificate.expiration")
        assert gauge[_binding(entity=f"{CERT}--{V2[:8]}")] == _expires(world, V2).timestamp()

    def test_a_retired_entity_leaves_the_gauge(self, world: World, metrics: Metrics):
        """binding_expirations gives a retired entity no expiry; the gauge drops its series."""
        world.add_version("v1", V1)
        v1 = world.source.lookup(VAULT, CERT, V1)
        assert v1 is not None
        kept = AuditTarget(
            service="apim-one", kind=TargetKind.CERTIFICATE, name="kept", from_=None,
            to=v1.secret_id, result=TargetResult.ALREADY_CURRENT,
        )  # fmt: skip
        retired = replace(
            kept, name="old", from_=v1.secret_id, to=None, result=TargetResult.RETIRED
        )
        backend = replace(kept, kind=TargetKind.BACKEND, name="api")
        metrics.telemetry.expirations(
            binding_expirations(
                vault=VAULT,
                certificate=CERT,
                targets=[kept, replace(kept, name="old")],
                candidate=v1,
                in_use=(),
            )
        )
        assert len(metrics.values("certrotate.certificate.expiration")) == 2

        metrics.telemetry.expirations(
            binding_expirations(
                vault=VAULT,
                certificate=CERT,
                targets=[kept, retired, backend],
                candidate=v1,
                in_use=(),
            )
        )

        assert metrics.values("certrotate.certificate.expiration") == {
            _binding(entity="kept"): _expires(world, V1).timestamp()
        }

    def test_canary_probes_are_counted_by_verdict(self, metrics: Metrics):
        """The canary's recording function: one point per verdict."""
        metrics.telemetry.canary_probe(verdict="ok")
        metrics.telemetry.canary_probe(verdict="ok")
        metrics.telemetry.canary_probe(verdict="handshake_failed")

        assert metrics.values("certrotate.canary.probes") == {
            (("verdict", "ok"),): 2,
            (("verdict", "handshake_failed"),): 1,
        }

    def test_instrument_names_units_and_attributes_are_the_contract(
        self, rotated: World, metrics: Metrics
    ):
        """Every instrument of INSTRUMENTS is exported with its unit and exactly its attributes."""
        rotated.service(telemetry=metrics.telemetry).handle(make_event(V2), trigger=EG)
        metrics.telemetry.canary_probe(verdict="ok")

        data = metrics.reader.get_metrics_data()
        assert data is not None
        seen = {
            m.name: (m.unit, {k for p in m.data.data_points for k in (p.attributes or {})})
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        assert seen == {name: (unit, set(attrs)) for name, (_, unit, attrs) in INSTRUMENTS.items()}


class TestNearExpiryAlerts:
    def test_alerted_once_per_certificate_per_day_with_days_left(self, rotated: World):
        """Several sweeps on one day alert once; the next day alerts again; days_left counts."""
        service = rotated.service()
        service.reconcile(trigger=Trigger.TIMER)  # applies v2
        rotated.clock.advance(days=50)

        first = service.reconcile(trigger=Trigger.TIMER)
        rotated.clock.advance(hours=1)
        second = service.reconcile(trigger=Trigger.TIMER)
        rotated.clock.advance(days=1)
        third = service.reconcile(trigger=Trigger.TIMER)

        alerts = [
            [r for r in rs if r.event == "certificate.near_expiry"]
            for rs in (first, second, third)
        ]
        assert [len(a) for a in alerts] == [1, 0, 1]
        expires = _expires(rotated, V2)
        assert alerts[0][0].not_after == expires
        assert alerts[0][0].days_left == days_left(
            expires, rotated.clock.now() - timedelta(days=1, hours=1)
        )
        assert alerts[2][0].days_left == alerts[0][0].days_left - 1

    def test_the_memo_decides_per_utc_day_and_version(self):
        """A new day or another version in use is due again; the same day is not."""
        memo = AlertMemo()
        noon = datetime(2026, 5, 1, 12, tzinfo=UTC)

        assert memo.due(VAULT, CERT, V1, noon)
        assert not memo.due(VAULT.upper(), CERT.upper(), V1, noon + timedelta(hours=11))
        assert memo.due(VAULT, CERT, V2, noon + timedelta(hours=11))
        assert memo.due(VAULT, CERT, V2, noon + timedelta(hours=12))

    @pytest.mark.parametrize(
        ("delta", "expected"),
        [(timedelta(days=3, hours=1), 3), (timedelta(hours=23), 0), (timedelta(hours=-1), -1)],
    )
    def test_days_left_rounds_down(self, delta, expected):
        now = datetime(2026, 5, 1, tzinfo=UTC)
        assert days_left(now + delta, now) == expected


class TestAuditTraces:
    def test_audit_records_become_log_records_with_fields_as_attributes(self):
        """What App Insights receives: body = record name, severity from the decision, every
        field an attribute (lists as JSON), secrets redacted."""
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        target = logging.getLogger("test.appinsights.sink")
        target.propagate = False
        target.addHandler(LoggingHandler(logger_provider=provider))
        configure_logging(json=True, stream=cast("TextIO", _Null()))
        bridge = AuditTraceHandler(target)
        logging.getLogger("rotation").addHandler(bridge)
        try:
            StructlogAuditSink().write(
                AuditRecord(
                    event="rotation.rejected",
                    decision=Decision.REJECTED,
                    trigger=Trigger.TIMER,
                    certificate=CERT,
                    vault=VAULT,
                    findings=("chain.untrusted",),
                    error="HttpResponseError: AccountKey=c2VjcmV0c2VjcmV0 refused",
                    correlation_id="corr-1",
                )
            )
        finally:
            logging.getLogger("rotation").removeHandler(bridge)

        [log] = [d.log_record for d in exporter.get_finished_logs()]
        attrs = dict(log.attributes or {})
        assert log.body == "rotation.rejected"
        assert log.severity_text == "WARN"
        assert attrs["decision"] == "rejected"
        assert attrs["certificate"] == CERT
        assert attrs["audit"] is True
        assert attrs["findings"] == '["chain.untrusted"]'
        assert attrs["correlation_id"] == "corr-1"
        assert "c2VjcmV0c2VjcmV0" not in str(attrs)
        assert "[REDACTED]" in str(attrs["error"])


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
