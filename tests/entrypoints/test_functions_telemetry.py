"""The Functions triggers and telemetry: the host's trace context correlates what an invocation
logs (App Insights operation id), and invocations that never reach the service are counted."""

from __future__ import annotations

import logging
import typing
from types import SimpleNamespace

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from rotation import bootstrap
from rotation.adapters.telemetry import AuditTraceHandler, OtelTelemetry
from rotation.domain.errors import ConfigError
from rotation.entrypoints.functions import on_key_vault_event, reconcile
from tests.entrypoints.test_functions import eventgrid_event

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

trigger = on_key_vault_event.build().get_user_function()
timer_fn = reconcile.build().get_user_function()


class Captured:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.telemetry = OtelTelemetry(MeterProvider(metric_readers=[self.reader]).get_meter("t"))
        self.logs = InMemoryLogRecordExporter()
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.sink = logging.getLogger("test.functions.appinsights")
        self.sink.propagate = False
        self.sink.handlers[:] = [LoggingHandler(logger_provider=provider)]

    def rotations(self) -> dict[tuple[tuple[str, object], ...], object]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            tuple(sorted(dict(p.attributes or {}).items())): p.value  # type: ignore[union-attr]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "certrotate.rotations"
            for p in m.data.data_points
        }


@pytest.fixture(name="captured")
def _captured(monkeypatch):
    captured = Captured()
    monkeypatch.setattr(bootstrap, "get_telemetry", lambda: captured.telemetry)
    monkeypatch.delenv("ROTATION_VAULTS", raising=False)
    bridge = AuditTraceHandler(captured.sink)
    rotation_logger = logging.getLogger("rotation")
    rotation_logger.addHandler(bridge)
    yield captured
    rotation_logger.removeHandler(bridge)


def _context(traceparent: str) -> SimpleNamespace:
    """What the worker hands a function as ``context`` (its trace context attributes)."""
    return SimpleNamespace(
        trace_context=SimpleNamespace(Traceparent=traceparent, Tracestate="", attributes={})
    )


def test_context_parameters_are_annotated_as_the_worker_requires():
    """The worker loads a function with a ``context`` parameter only when its annotation is
    exactly azure.functions.Context (an Optional would fail to load)."""
    for fn in (trigger, timer_fn):
        assert typing.get_type_hints(fn)["context"] is func.Context


def test_an_invocation_logs_under_the_hosts_trace_id(captured, monkeypatch):
    """A failing invocation's audit record is exported with the invocation's trace id, and the
    failure is counted with trigger eventgrid."""

    def broken():
        raise ConfigError(["ROTATION_APIM_SERVICES: required but not set"])

    monkeypatch.setattr(bootstrap, "get_handler", broken)

    with pytest.raises(ConfigError):
        trigger(eventgrid_event(), _context(TRACEPARENT))

    records = [d.log_record for d in captured.logs.get_finished_logs()]
    audit = [r for r in records if r.body == "config.invalid"]
    assert len(audit) == 1
    assert audit[0].trace_id == int(TRACE_ID, 16)
    assert audit[0].severity_text == "ERROR"
    assert captured.rotations() == {
        (("decision", "failed"), ("strategy", "unknown"), ("trigger", "eventgrid")): 1
    }


def test_without_a_context_nothing_is_correlated(captured, monkeypatch):
    """Called without the host's context (tests, scripts) the records carry no trace id."""

    def broken():
        raise ConfigError(["ROTATION_VAULTS: required but not set"])

    monkeypatch.setattr(bootstrap, "get_handler", broken)

    with pytest.raises(ConfigError):
        timer_fn(TimerRequest())

    records = [d.log_record for d in captured.logs.get_finished_logs()]
    assert [r.body for r in records if r.body == "config.invalid"] == ["config.invalid"]
    assert {r.trace_id for r in records} == {0}
