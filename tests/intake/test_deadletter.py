"""Dead-letter replay goes on past malformed items (issue 10), against Azurite.

A blob holding a 5,000-digit number, and a blob whose middle event is forged: every valid event
is handled, each malformed one is recorded with its own location and id under a fresh
correlation id, and the JSON Lines output is complete.
"""

from __future__ import annotations

import json
import uuid

import pytest
from azure.storage.blob import BlobServiceClient
from click.testing import CliRunner

from rotation.entrypoints.cli import cli
from tests.intake.conftest import VAULT, ReplayEnv
from tests.payloads import DATA, TOPIC

pytestmark = pytest.mark.azurite
PREFIX = "KV-CERT-ROTATION/2026/3/2/8/"


def dead_letter(version: str, event_id: str) -> dict[str, object]:
    return {
        "id": event_id, "topic": TOPIC, "subject": "partner-mtls",
        "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "eventTime": "2026-03-02T08:15:42.1234567Z",
        "data": {**DATA, "Version": version,
                 "Id": f"{VAULT}/certificates/partner-mtls/{version}"},
        "deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30,
    }  # fmt: skip


@pytest.fixture(name="poisoned_container")
def _poisoned_container(azurite):
    name = f"deadletter{uuid.uuid4().hex[:8]}"
    forged = dead_letter("b2", "dl-forged")
    forged["data"]["Id"] = "https://evil.example.com/certificates/partner-mtls/b2"  # type: ignore[index]
    huge = json.dumps([dead_letter("c3", "dl-huge")]).replace(
        '"deliveryAttempts": 30', '"deliveryAttempts": ' + "9" * 5000
    )
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        client = service.create_container(name)
        blobs = {
            f"{PREFIX}a.json": json.dumps([dead_letter("a1", "dl-a"), forged, dead_letter("a3", "dl-a3")]),
            f"{PREFIX}b.json": '[{"id": "dl-nested", "eventType": ' + "[" * 100_000 + "]" * 100_000 + "}]",
            f"{PREFIX}c.json": huge,
            f"{PREFIX}d.json": json.dumps([dead_letter("d4", "dl-d")]),
        }  # fmt: skip
        for blob, text in blobs.items():
            client.upload_blob(blob, text.encode())
        yield name
        client.delete_container()


def test_dead_letter_replay_goes_on_and_records_each_malformed_event_as_itself(
    azurite, poisoned_container, replay_env: ReplayEnv
):
    env = replay_env.env | {"DEADLETTER_CONNECTION": azurite.connection_string}
    args = ["replay", "--json", "--deadletter-container", poisoned_container,
            "--connection-string-env", "DEADLETTER_CONNECTION", "--prefix", PREFIX]  # fmt: skip

    result = CliRunner(env=env).invoke(cli, args)

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1
    assert [e.version for e in replay_env.service.handled] == ["a1", "a3", "c3", "d4"]
    assert [x["decision"] for x in lines] == [
        "applied", "malformed", "applied", "malformed", "applied", "applied",
    ]  # fmt: skip
    assert lines[1]["location"] == f"{poisoned_container}/{PREFIX}a.json[1]"
    assert lines[1]["event_id"] == "dl-forged"
    records = [(r, ctx) for r, ctx in replay_env.sink.seen]
    assert [r.event_id for r, _ in records] == ["dl-forged", None]
    assert [ctx.get("eventgrid_event_id") for _, ctx in records] == ["dl-forged", None]
    assert len({r.correlation_id for r, _ in records}) == 2
    assert "replay summary" in result.stderr
