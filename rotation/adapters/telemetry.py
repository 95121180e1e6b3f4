"""Metrics through the OpenTelemetry API, and audit records as App Insights traces.

``OtelTelemetry`` implements ``rotation.ports.Telemetry`` over an OpenTelemetry ``Meter``; the
instrument names, units and attributes are a contract (docs/operations.md, "Metrics").
``configure_telemetry(env)`` picks the exporter from standard configuration:

- ``APPLICATIONINSIGHTS_CONNECTION_STRING``: the Azure Monitor distro
  (``azure-monitor-opentelemetry``: metrics, and logs through ``AuditTraceHandler``);
- else ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``): an OTLP
  http/protobuf metric exporter (the exporter reads the standard ``OTEL_*`` variables itself);
- else ``NullTelemetry``: nothing imported, nothing recorded.

``AuditTraceHandler`` turns the structlog event dicts of the ``rotation`` loggers into stdlib
records whose fields are record attributes (App Insights custom dimensions), redacted, and
hands them to the OpenTelemetry handler the distro attached to ``TRACE_LOGGER``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rotation.domain.expiry import BindingExpiry
from rotation.logconfig import redact
from rotation.ports import NullTelemetry, Telemetry

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = [
    "INSTRUMENTS",
    "TRACE_LOGGER",
    "AuditTraceHandler",
    "OtelTelemetry",
    "configure_telemetry",
]

METER_NAME = "certrotate"
TRACE_LOGGER = "certrotate.appinsights"
"""The logger the Azure Monitor distro's OpenTelemetry handler is attached to (nothing else
logs to it; ``AuditTraceHandler`` forwards the ``rotation`` loggers' records there)."""

INSTRUMENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (kind, unit, attributes) - the contract in docs/operations.md
    "certrotate.rotations": ("counter", "{rotation}", ("decision", "strategy", "trigger")),
    "certrotate.rotation.duration": ("histogram", "s", ("decision",)),
    "certrotate.certificate.expiration": (
        "gauge",
        "s",
        ("certificate", "vault", "service", "entity"),
    ),
    "certrotate.canary.probes": ("counter", "{probe}", ("verdict",)),
}

_log = logging.getLogger("rotation.telemetry")


class OtelTelemetry:
    """``Telemetry`` over an OpenTelemetry ``Meter`` (``flush`` calls ``flush``, e.g. the
    meter provider's ``force_flush``). Never raises into the rotation path."""

    def __init__(self, meter: Meter, *, flush: Any = None) -> None:
        self._flush = flush
        self._lock = threading.Lock()
        self._expiry: dict[tuple[str, str, str, str], float] = {}
        self._rotations = meter.create_counter(
            "certrotate.rotations", unit="{rotation}", description="Runs by decision."
        )
        self._duration = meter.create_histogram(
            "certrotate.rotation.duration", unit="s", description="Duration of a run."
        )
        self._probes = meter.create_counter(
            "certrotate.canary.probes", unit="{probe}", description="Canary probes by verdict."
        )
        meter.create_observable_gauge(
            "certrotate.certificate.expiration",
            callbacks=[self._observe_expiry],
            unit="s",
            description="not_after (unix time) of the certificate each APIM binding presents.",
        )

    def rotation(
        self, *, decision: str, strategy: str, trigger: str, duration_seconds: float
    ) -> None:
        """Count one run and record its duration."""
        try:
            attrs = {"decision": decision, "strategy": strategy, "trigger": trigger}
            self._rotations.add(1, attrs)
            self._duration.record(duration_seconds, {"decision": decision})
        except Exception:  # noqa: BLE001 - metrics never fail a rotation
            _log.debug("metric_failed", exc_info=True)

    def expirations(self, bindings: Iterable[BindingExpiry]) -> None:
        """Remember what each binding presents; the gauge reports it at every collection (a
        binding with ``expires=None`` stops being reported)."""
        with self._lock:
            for b in bindings:
                key = (b.certificate, b.vault, b.service, b.entity)
                if b.expires is None:
                    self._expiry.pop(key, None)
                else:
                    self._expiry[key] = b.expires.timestamp()

    def canary_probe(self, *, verdict: str) -> None:
        """Count one canary probe."""
        try:
            self._probes.add(1, {"verdict": verdict})
        except Exception:  # noqa: BLE001 - metrics never fail a probe
            _log.debug("metric_failed", exc_info=True)

    @contextmanager
    def invocation(self, traceparent: str | None, tracestate: str | None = None) -> Iterator[None]:
        """Make the invocation's W3C trace context (the Functions host's ``traceparent``) the
        current OpenTelemetry context for the block, so the log records exported inside it
        carry its trace id (App Insights: ``operation_Id``). Nothing without a traceparent."""
        if not traceparent:
            yield
            return
        from opentelemetry import context as otel_context  # noqa: PLC0415
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        token = otel_context.attach(TraceContextTextMapPropagator().extract(carrier))
        try:
            yield
        finally:
            otel_context.detach(token)

    def flush(self) -> None:
        """Export what is pending (bounded by the exporter's timeout); failures are logged."""
        if self._flush is None:
            return
        try:
            self._flush()
        except Exception:  # noqa: BLE001 - an unreachable collector must not fail the CLI
            _log.warning("telemetry_flush_failed", exc_info=True)

    def _observe_expiry(self, _options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation  # noqa: PLC0415

        with self._lock:
            items = list(self._expiry.items())
        for (certificate, vault, service, entity), value in items:
            yield Observation(
                value,
                {"certificate": certificate, "vault": vault, "service": service, "entity": entity},
            )


def configure_telemetry(env: Mapping[str, str]) -> Telemetry:
    """The ``Telemetry`` standard configuration asks for (see the module docstring); sets the
    global OpenTelemetry providers when an exporter is configured."""
    if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        return _azure_monitor()
    if (
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip()
    ):
        return _otlp()
    return NullTelemetry()


def _otlp() -> Telemetry:
    from opentelemetry import metrics  # noqa: PLC0415 - only when configured
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter,
    )
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: PLC0415

    # No second export at interpreter exit: a CLI flushes once (``flush``), and an unreachable
    # collector then costs one exporter timeout, not two.
    provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())],
        shutdown_on_exit=False,
    )
    metrics.set_meter_provider(provider)
    return OtelTelemetry(metrics.get_meter(METER_NAME), flush=provider.force_flush)


def _azure_monitor() -> Telemetry:
    from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415
    from opentelemetry import metrics  # noqa: PLC0415

    # The connection string is read from the environment by the distro itself.
    configure_azure_monitor(logger_name=TRACE_LOGGER, enable_live_metrics=False)
    trace_logger = logging.getLogger(TRACE_LOGGER)
    trace_logger.propagate = False  # the worker's own handler must not ship it twice
    attach_trace_handler(AuditTraceHandler(trace_logger))
    provider = metrics.get_meter_provider()

    def flush() -> None:
        from opentelemetry import _logs  # noqa: PLC0415

        for p in (provider, _logs.get_logger_provider()):
            force = getattr(p, "force_flush", None)
            if force is not None:
                force()

    return OtelTelemetry(metrics.get_meter(METER_NAME), flush=flush)


def attach_trace_handler(handler: logging.Handler) -> None:
    """Put ``handler`` on the ``rotation`` logger once (``configure_logging`` keeps handlers
    that are not its own)."""
    logger = logging.getLogger("rotation")
    for old in [h for h in logger.handlers if isinstance(h, AuditTraceHandler)]:
        logger.removeHandler(old)
    logger.addHandler(handler)


def _dimension(value: object) -> str | bool | int | float:
    """A custom-dimension value: primitives as they are, everything else as JSON text."""
    if isinstance(value, str | bool | int | float):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


class AuditTraceHandler(logging.Handler):
    """Forwards ``rotation`` log records to ``target`` (a logger or handler) with the structlog
    fields as record attributes, so OpenTelemetry's logging handler exports them as attributes
    (App Insights: traces with custom dimensions). Values are redacted first; ``None`` fields
    are left out; the message is the event name (e.g. ``rotation.applied``)."""

    _RESERVED = frozenset(vars(logging.makeLogRecord({})))

    def __init__(self, target: logging.Logger | logging.Handler) -> None:
        super().__init__()
        self._target = target

    def emit(self, record: logging.LogRecord) -> None:
        """Translate and forward one record."""
        try:
            fields = record.msg if isinstance(record.msg, dict) else {"event": record.getMessage()}
            clean = redact({k: v for k, v in fields.items() if not str(k).startswith("_")})
            assert isinstance(clean, dict)  # noqa: S101 - redact keeps a mapping a mapping
            event = str(clean.pop("event", record.getMessage()))
            attrs = {
                (f"field_{k}" if k in self._RESERVED else str(k)): _dimension(v)
                for k, v in clean.items()
                if v is not None
            }
            attrs.setdefault("logger", record.name)
            out = logging.makeLogRecord(
                {
                    "name": record.name, "levelno": record.levelno,
                    "levelname": record.levelname, "msg": event, "args": None,
                    "created": record.created, "msecs": record.msecs, **attrs,
                }
            )  # fmt: skip
            self._target.handle(out)
        except Exception:  # noqa: BLE001 - logging must never fail the caller
            self.handleError(record)
