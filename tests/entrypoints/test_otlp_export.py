"""Real OTLP over HTTP: `certrotate replay` and `certrotate reconcile` processes against the
devstack scene export their metrics to a loopback receiver before they exit; the test decodes
the protobuf bodies with opentelemetry-proto."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from devstack.seed import (
    CERTIFICATE,
    EVENT_FILES,
    INBOUND_API,
)
from devstack.stack import Devstack


class Receiver:
    """An OTLP/HTTP metrics endpoint on loopback keeping every decoded request."""

    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                received.requests.append(request)
                received.paths.append(self.path)
                received.content_types.append(self.headers["Content-Type"])
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def points(self, name: str) -> list[tuple[dict[str, str], object]]:
        """Every data point of instrument ``name``, with its attributes."""
        found = []
        for request in self.requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != name:
                            continue
                        kind = metric.WhichOneof("data")
                        for p in getattr(metric, kind).data_points:
                            attrs = {a.key: a.value.string_value for a in p.attributes}
                            found.append((attrs, p))
        return found


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
    thread.join()


def _run(devstack: Devstack, receiver: Receiver, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m rotation ARGS` with the stack's settings and only the OTLP endpoint set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATION_", "OTEL_"))}
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    env |= devstack.env()
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "3600000",  # only the flush at exit exports
        "OTEL_SERVICE_NAME": "certrotate-test",
    }
    return subprocess.run(
        [sys.executable, "-m", "rotation", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _not_after(bundle: bytes) -> int:
    """The leaf's not_after (unix seconds) of a PKCS#12 bundle."""
    leaf = pkcs12.load_key_and_certificates(bundle, None)[1]
    assert leaf is not None
    return int(leaf.not_valid_after_utc.timestamp())


class TestOtlpExport:
    def test_replay_and_reconcile_export_their_metrics_before_exit(
        self, devstack, scene, scene_pki, receiver
    ):
        """replay applies v2 (counted, timed, both bindings' expiry = v2's not_after); a reconcile
        afterwards finds every certificate current; each process flushed before it exited."""
        v2_event = devstack.state_dir / "events" / EVENT_FILES["v2"]

        replayed = _run(devstack, receiver, "replay", "--json", str(v2_event))

        assert replayed.returncode == 0, replayed.stderr
        assert receiver.paths == ["/v1/metrics"]  # one export: the command's flush at exit
        assert receiver.content_types == ["application/x-protobuf"]
        rotations = {
            tuple(sorted(a.items())): int(p.as_int)
            for a, p in receiver.points("certrotate.rotations")
        }
        assert rotations == {(("decision", "applied"), ("strategy", "pin"), ("trigger", "cli")): 1}
        [(attrs, hist)] = receiver.points("certrotate.rotation.duration")
        assert attrs == {"decision": "applied"}
        assert hist.count == 1
        assert hist.sum > 0
        v2_not_after = _not_after(scene_pki.v2)
        gauge = {
            (a["service"], a["entity"], a["certificate"], a["vault"]): p.as_double
            for a, p in receiver.points("certrotate.certificate.expiration")
        }
        assert gauge == {
            (svc, CERTIFICATE, CERTIFICATE, devstack.vault_url): pytest.approx(v2_not_after)
            for svc in devstack.apim_services
        }

        receiver.requests.clear()
        reconciled = _run(devstack, receiver, "reconcile", "--json")

        assert reconciled.returncode == 0, reconciled.stderr
        rotations = {
            tuple(sorted(a.items())): int(p.as_int)
            for a, p in receiver.points("certrotate.rotations")
        }
        assert rotations == {  # partner-mtls, billing-mtls and the inbound partner-caller
            (("decision", "already_current"), ("strategy", "pin"), ("trigger", "cli")): 3
        }
        by_entity = {
            (a["service"], a["entity"]): p.as_double
            for a, p in receiver.points("certrotate.certificate.expiration")
        }
        other = _not_after(scene_pki.other)
        caller = scene_pki.callers[0].cert.not_valid_after_utc.timestamp()
        assert by_entity == {
            **{(svc, CERTIFICATE): pytest.approx(v2_not_after) for svc in devstack.apim_services},
            **{(svc, "billing-mtls"): pytest.approx(other) for svc in devstack.apim_services},
            # The inbound caller: one series per policy document pinning it.
            **{
                (svc, policy): pytest.approx(caller)
                for svc in devstack.apim_services
                for policy in ("policies/policy", f"apis/{INBOUND_API}/policies/policy")
            },
        }

    def test_without_an_endpoint_nothing_is_exported(self, devstack, scene, receiver):
        """No OTEL_EXPORTER_OTLP_ENDPOINT: the run works and sends nothing anywhere."""
        v2_event = devstack.state_dir / "events" / EVENT_FILES["v2"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATION_", "OTEL_"))}
        env |= devstack.env()

        done = subprocess.run(
            [sys.executable, "-m", "rotation", "replay", "--json", str(v2_event)],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

        assert done.returncode == 0, done.stderr
        assert receiver.requests == []
