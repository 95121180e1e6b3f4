"""Event Grid dead-letter blobs in Blob Storage (Azurite): listing, streaming, replay, errors."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from azure.storage.blob import BlobServiceClient
from click.testing import CliRunner

from devstack.pki import make_key, mint_certificate
from rotation.adapters.blobs import DeadLetterBlobSource
from rotation.domain.errors import DependencyError, InvalidEventError
from rotation.domain.model import AuditRecord, KeyVaultEvent, Trigger
from rotation.entrypoints.cli import cli
from rotation.entrypoints.cli.wiring import Wiring
from rotation.testing import MemoryAuditSink

pytestmark = pytest.mark.azurite

VAULT = "https://kv-rotation-demo.vault.azure.net"
PREFIX = "KV-CERT-ROTATION/2026/3/2/8/"


def dead_letter(version: str, *, attempts: int = 30) -> dict[str, Any]:
    """One dead-lettered CertificateNewVersionCreated event."""
    return {
        "id": f"id-{version}",
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-rotation-demo",
        "subject": "partner-mtls",
        "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "eventTime": "2026-03-02T08:15:42.1234567Z",
        "data": {
            "Id": f"{VAULT}/certificates/partner-mtls/{version}",
            "VaultName": "kv-rotation-demo",
            "ObjectType": "Certificate",
            "ObjectName": "partner-mtls",
            "Version": version,
            "NBF": 1772438400,
            "EXP": 1804060800,
        },
        "dataVersion": "1",
        "metadataVersion": "1",
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": attempts,
        "lastDeliveryOutcome": "TimedOut",
        "publishTime": "2026-03-02T08:15:42.5000000Z",
        "lastDeliveryAttemptTime": "2026-03-03T08:16:10.0000000Z",
    }


@pytest.fixture(name="container")
def _container(azurite):
    """A fresh dead-letter container holding two blobs under PREFIX, one elsewhere, one broken."""
    name = f"deadletter{uuid.uuid4().hex[:8]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        client = service.create_container(name)
        blobs = {
            f"{PREFIX}a-{uuid.uuid4()}.json": json.dumps([dead_letter("a1"), dead_letter("a2")], indent=2),
            f"{PREFIX}b-{uuid.uuid4()}.json": json.dumps([dead_letter("b1")]),
            f"KV-CERT-ROTATION/2026/3/2/9/{uuid.uuid4()}.json": json.dumps([dead_letter("c1")]),
            f"{PREFIX}c-{uuid.uuid4()}.json": '[{"eventType": "Microsoft.KeyVault.CertificateNewVersionCreated", "data": {}}]',
            f"{PREFIX}notes.txt": "not an event",
        }  # fmt: skip
        for blob, text in blobs.items():
            client.upload_blob(blob, text.encode())
        yield name
        client.delete_container()


class TestDeadLetterBlobSource:
    def test_streams_every_event_under_the_prefix_in_name_order(self, azurite, container):
        """Events of every .json blob under the prefix, located as container/blob[index]."""
        source = DeadLetterBlobSource.from_connection_string(azurite.connection_string, container)

        items = list(source.iter_events(PREFIX, allowed_vault_urls=(VAULT,)))

        good = [(loc, e) for loc, e in items if isinstance(e, KeyVaultEvent)]
        assert [e.version for _, e in good] == ["a1", "a2", "b1"]
        assert good[1][0].startswith(f"{container}/{PREFIX}a-")
        assert good[1][0].endswith(".json[1]")
        assert good[0][1].deadletter is not None
        assert good[0][1].deadletter.attempts == 30

    def test_malformed_event_in_a_blob_is_yielded_as_an_error(self, azurite, container):
        """A broken event is yielded as InvalidEventError naming the field; the rest still come."""
        source = DeadLetterBlobSource.from_connection_string(azurite.connection_string, container)

        items = list(source.iter_events(PREFIX))

        errors = [(loc, e) for loc, e in items if isinstance(e, InvalidEventError)]
        assert len(errors) == 1
        assert f"{PREFIX}c-" in errors[0][0]
        assert "data" in str(errors[0][1])
        assert len(items) == 4

    def test_lists_only_json_blobs(self, azurite, container):
        """Only .json blobs are dead-letter deliveries; other names are skipped."""
        source = DeadLetterBlobSource.from_connection_string(azurite.connection_string, container)

        names = list(source.list_blob_names("KV-CERT-ROTATION/"))

        assert len(names) == 4
        assert all(n.endswith(".json") for n in names)

    def test_missing_container_is_a_dependency_error(self, azurite):
        """A container that does not exist is a DependencyError naming it."""
        source = DeadLetterBlobSource.from_connection_string(azurite.connection_string, "nope")

        with pytest.raises(DependencyError, match="nope"):
            list(source.iter_events())

    def test_bad_connection_string_is_not_echoed(self):
        """A malformed connection string fails without repeating its value."""
        secret = "AccountKey=c2VjcmV0LXZhbHVl;nonsense"

        with pytest.raises(DependencyError) as caught:
            DeadLetterBlobSource.from_connection_string(secret, "deadletter")

        assert "c2VjcmV0LXZhbHVl" not in str(caught.value)


class _Recorder:
    """A service that records what it is handed and applies everything."""

    def __init__(self) -> None:
        self.versions: list[str] = []

    def batch(self, **_options: object) -> _Recorder:
        """What ``certrotate replay`` hands its events to (``RotationService.batch``)."""
        return self

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        self.versions.append(event.version)
        return AuditRecord(
            event="rotation.applied", decision="applied", trigger=trigger,  # type: ignore[arg-type]
            event_id=event.event_id, certificate=event.object_name, version=event.version,
        )  # fmt: skip


@pytest.fixture(name="anchors", scope="module")
def _anchors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anchors") / "anchors.pem"
    path.write_bytes(mint_certificate("Blob Test Root", key=make_key("ec", 256), ca=True).pem)
    return path


class TestReplayFromContainer:
    def test_cli_replays_a_dead_letter_container(self, azurite, container, anchors):
        """`replay --deadletter-container` streams the blobs through the service; malformed → exit 1."""
        recorder = _Recorder()
        wiring = Wiring(
            build_service=lambda _s, **_k: cast("Any", recorder),
            build_audit_sink=lambda _s: MemoryAuditSink(),
        )
        env = {
            "ROTATION_VAULTS": VAULT,
            "ROTATION_APIM_SERVICES": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-a",
            "ROTATION_TRUST_ANCHORS": str(anchors),
            "DEADLETTER_CONNECTION": azurite.connection_string,
        }
        args = ["replay", "--json", "--deadletter-container", container,
                "--connection-string-env", "DEADLETTER_CONNECTION", "--prefix", PREFIX]  # fmt: skip

        result = CliRunner(env=env).invoke(cli, args, obj=wiring)

        lines = [json.loads(x) for x in result.stdout.splitlines()]
        assert result.exit_code == 1
        assert recorder.versions == ["a1", "a2", "b1"]
        assert [x["decision"] for x in lines] == ["applied", "applied", "applied", "malformed"]
        assert "AccountKey" not in result.output

    def test_unset_connection_variable_is_a_usage_error(self, anchors):
        """Naming an unset environment variable exits 2 and says which."""
        args = ["replay", "--deadletter-container", "dl", "--connection-string-env", "NOPE_UNSET"]

        result = CliRunner(env={"NOPE_UNSET": None}).invoke(cli, args)

        assert result.exit_code == 2
        assert "NOPE_UNSET" in result.stderr
