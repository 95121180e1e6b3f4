"""App Insights through the Azure Monitor distro: a `certrotate replay` process with
APPLICATIONINSIGHTS_CONNECTION_STRING pointing at a loopback ingestion endpoint sends its audit
records as traces (fields as custom dimensions, severity from the decision) and its metrics."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devstack.seed import EVENT_FILES

_IKEY = "00000000-0000-4000-8000-000000000001"
_WARNING = 2  # App Insights severityLevel


class Ingestion:
    """A stand-in for the App Insights ingestion endpoint (``/v2.1/track``) on loopback."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.paths: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                received.paths.append(self.path)
                received.items.extend(json.loads(body))
                reply = json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def of_type(self, base_type: str) -> list[dict[str, Any]]:
        return [i["data"]["baseData"] for i in self.items if i["data"]["baseType"] == base_type]


@pytest.fixture(name="ingestion")
def _ingestion() -> Iterator[Ingestion]:
    ingestion = Ingestion()
    thread = threading.Thread(target=ingestion.server.serve_forever, daemon=True)
    thread.start()
    yield ingestion
    ingestion.server.shutdown()
    ingestion.server.server_close()
    thread.join()


def test_audit_records_reach_app_insights_as_traces_with_custom_dimensions(
    devstack, scene, ingestion
):
    """Replaying the untrusted v3 (enabled first): a rotation.rejected trace at Warning with the
    audit fields as properties, the rotations metric by decision, and no secret anywhere."""
    devstack.state.kv.get("partner-mtls", scene.versions["v3"]).enabled = True
    connection = f"InstrumentationKey={_IKEY};IngestionEndpoint={ingestion.endpoint}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATION_", "OTEL_"))}
    env |= devstack.env()
    env |= {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection,
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",  # no cloud metadata probes
    }
    event = devstack.state_dir / "events" / EVENT_FILES["v3"]

    done = subprocess.run(
        [sys.executable, "-m", "rotation", "replay", "--json", str(event)],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert set(ingestion.paths) == {"/v2.1/track"}
    traces = {m["message"]: m for m in ingestion.of_type("MessageData")}
    rejected = traces["rotation.rejected"]
    assert rejected["severityLevel"] == _WARNING
    props = rejected["properties"]
    assert props["decision"] == "rejected"
    assert props["certificate"] == "partner-mtls"
    assert props["version"] == scene.versions["v3"]
    assert "chain.untrusted" in json.loads(props["findings"])
    assert props["audit"] == "True"
    assert props["correlation_id"]
    metrics = [(m["metrics"][0]["name"], m["properties"]) for m in ingestion.of_type("MetricData")]
    assert (
        "certrotate.rotations",
        {"decision": "rejected", "strategy": "pin", "trigger": "cli"},
    ) in metrics
    sent = json.dumps(ingestion.items)
    assert devstack.token not in sent
    assert connection not in done.stdout + done.stderr
