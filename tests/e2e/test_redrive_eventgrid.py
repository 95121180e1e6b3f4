"""End to end on one machine: dead-letter blob → re-drive → Event Grid topic → trigger → rotation.

A dead-letter blob in Azurite (Event Grid's shape, either schema) holds a good certificate
event, a forged one and one for a vault outside the allow-list. ``rotation.entrypoints.redrive`` reads it
(``iter_raw_deadletter``) and publishes through ``EventGridPublisherClient`` (the real adapter)
to the devstack topic stand-in, which delivers to a local webhook that invokes the registered
``on_key_vault_event`` the way the Functions host does; the rotation runs on the devstack and
leaves its audit record. A delivery that keeps failing is dead-lettered into Azurite by the topic
and re-driven again once the fault is gone. The forged event is never published.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from devstack.eventgrid import CLOUDEVENTS, EVENTGRID, DeadLetterDestination, Subscription
from rotation.adapters.blobs import DeadLetterBlobSource
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.eventgrid import open_publisher
from rotation.entrypoints.redrive import iter_raw_deadletter, redrive
from tests.e2e.world import CERT, NEW_VERSION, World, event_data, topic
from tests.eventgrid_receiver import FunctionsWebhook, registered_trigger

pytestmark = pytest.mark.azurite

KEY_VAR = "CERTROTATE_TEST_EVENTGRID_KEY"
OTHER_VAULT_TOPIC = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-other"
)
DEAD_LETTER_TIME = datetime(2026, 3, 1, 14, 30, tzinfo=UTC)


def original(
    world: World, schema: str, event_id: str, data: dict[str, Any], system_topic: str = ""
) -> dict[str, Any]:
    """A Key Vault event as the vault's system topic delivered it, then dead-lettered."""
    system_topic = system_topic or topic(world.stack)
    if schema == EVENTGRID:
        return {
            "id": event_id, "topic": system_topic, "subject": CERT,
            "eventType": NEW_VERSION, "eventTime": "2026-03-01T12:00:00.1234567Z",
            "data": data, "dataVersion": "1", "metadataVersion": "1",
            "deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30,
            "lastDeliveryOutcome": "TimedOut", "publishTime": "2026-03-01T12:00:00.5000000Z",
            "lastDeliveryAttemptTime": "2026-03-02T12:00:10.0000000Z",
        }  # fmt: skip
    return {
        "specversion": "1.0", "id": event_id, "source": system_topic, "subject": CERT,
        "type": NEW_VERSION, "time": "2026-03-01T12:00:00.1234567Z", "data": data,
        "deadletterreason": "MaxDeliveryAttemptsExceeded", "deliveryattempts": 30,
        "lastdeliveryoutcome": "TimedOut", "publishtime": "2026-03-01T12:00:00.5000000Z",
    }  # fmt: skip


def container(azurite, blobs: dict[str, list[dict[str, Any]]] | None = None) -> str:
    name = f"deadletter{uuid.uuid4().hex[:8]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        client = service.create_container(name)
        for blob, events in (blobs or {}).items():
            client.upload_blob(blob, json.dumps(events).encode())
    return name


class Recorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize("schema", [EVENTGRID, CLOUDEVENTS])
def test_dead_letter_blob_is_redriven_through_the_topic_and_rotates(
    bound: tuple[World, str, str], azurite, schema: str
) -> None:
    world, v1, v2 = bound
    world.use()
    forged = event_data(world.stack, CERT, v2) | {
        "Id": f"https://127.0.0.1:1/certificates/{CERT}/{v2}"
    }
    elsewhere = {
        "Id": f"https://kv-other.vault.azure.net/certificates/{CERT}/{v2}",
        "VaultName": "kv-other", "ObjectType": "Certificate", "ObjectName": CERT, "Version": v2,
    }  # fmt: skip
    source_container = container(
        azurite,
        {
            "KV-CERT-ROTATION/2026/3/1/12/a.json": [
                original(world, schema, "kv-good", event_data(world.stack, CERT, v2)),
                original(world, schema, "kv-forged", forged),
                original(world, schema, "kv-elsewhere", elsewhere, OTHER_VAULT_TOPIC),
            ]
        },
    )
    source = DeadLetterBlobSource.from_connection_string(
        azurite.connection_string, source_container
    )
    progress: list[int] = []

    with FunctionsWebhook.serve(registered_trigger()) as hook:
        sub = Subscription("kv-redrive", hook.url)
        with world.stack.eventgrid_topic(sub, input_schema=schema, sleep=Recorder()) as topic_:
            publisher = open_publisher(
                topic_.endpoint, env={KEY_VAR: topic_.key}, key_env=KEY_VAR,
                ca_bundle=str(world.stack.ca_bundle), retry_total=0,
            )  # fmt: skip
            summary = redrive(
                iter_raw_deadletter(source, "KV-CERT-ROTATION/"),
                publisher,
                allowed_vault_urls=[world.stack.vault_url],
                progress=progress.append,
            )
            published = [e["id"] for e in topic_.app.accepted]
            deliveries = topic_.deliver_pending()

    assert summary.published == 1
    assert [p.event_id for p in summary.malformed] == ["kv-forged"]
    assert "data.Id" in summary.malformed[0].reason
    assert summary.malformed[0].reason.startswith(f"{source_container}/KV-CERT-ROTATION/")
    assert [p.event_id for p in summary.refused] == ["kv-elsewhere"]
    assert "not allow-listed" in summary.refused[0].reason
    assert summary.exit_code == 1
    assert sum(progress) == 3
    assert published == ["kv-good"]  # the forged event never left the machine
    assert [d.delivered for d in deliveries] == [True]
    (received,) = hook.received
    assert received.status == 202
    body = received.body[0] if schema == EVENTGRID else received.body
    for name in ("deadLetterReason", "deliveryAttempts", "deadletterreason", "deliveryattempts"):
        assert name not in body
    if schema == EVENTGRID:
        assert body["topic"] == topic_.topic_id  # it now comes from the replay topic
    else:
        assert body["source"] == topic(world.stack)
    assert world.pinned(world.svc1, CERT).endswith(v2)
    assert world.pinned(world.svc2, CERT).endswith(v2)
    record = world.audit.records[-1]
    assert (record.decision, record.trigger, record.event_id) == (
        "applied",
        "eventgrid",
        "kv-good",
    )
    assert record.version == v2
    assert v1 != v2
    # the record names the delivering topic: the replay topic (CloudEvents: the kept source)
    assert record.topic == (topic_.topic_id if schema == EVENTGRID else topic(world.stack))


@pytest.mark.parametrize("schema", [EVENTGRID, CLOUDEVENTS])
def test_failing_delivery_dead_letters_into_azurite_and_is_redriven_again(
    bound: tuple[World, str, str], azurite, schema: str
) -> None:
    world, v1, v2 = bound
    world.use()
    first = container(
        azurite,
        {
            "KV-CERT-ROTATION/2026/3/1/12/b.json": [
                original(world, schema, "kv-retry", event_data(world.stack, CERT, v2))
            ]
        },
    )
    topic_dead_letters = container(azurite)
    sleep = Recorder()
    world.stack.faults_kv.fail("*", status=500, probability=1.0)  # Key Vault down

    with FunctionsWebhook.serve(registered_trigger()) as hook:
        sub = Subscription(
            "kv-redrive", hook.url, max_delivery_attempts=3, retry_schedule=(10.0, 30.0),
            deadletter=DeadLetterDestination(azurite.connection_string, topic_dead_letters),
        )  # fmt: skip
        with world.stack.eventgrid_topic(
            sub, input_schema=schema, sleep=sleep, clock=lambda: DEAD_LETTER_TIME
        ) as topic_:
            publisher = open_publisher(
                topic_.endpoint, env={}, credential=StaticTokenCredential(world.stack.token),
                ca_bundle=str(world.stack.ca_bundle), retry_total=0,
            )  # fmt: skip
            allowed = [world.stack.vault_url]
            source = DeadLetterBlobSource.from_connection_string(azurite.connection_string, first)
            summary = redrive(iter_raw_deadletter(source), publisher, allowed_vault_urls=allowed)
            (failed,) = topic_.deliver_pending()

            assert summary.exit_code == 0
            assert summary.published == 1
            assert not failed.delivered
            assert failed.statuses == (500, 500, 500)
            assert sleep.waits == [10.0, 30.0]
            assert failed.deadletter_blob is not None
            assert failed.deadletter_blob.startswith("KV-REDRIVE/2026/3/1/14/")
            assert world.pinned(world.svc1, CERT).endswith(v1)
            assert {r.decision for r in world.audit.records} == {"failed"}

            # Key Vault is back: re-drive what the topic dead-lettered.
            world.stack.faults_kv.clear()
            again = DeadLetterBlobSource.from_connection_string(
                azurite.connection_string, topic_dead_letters
            )
            summary = redrive(iter_raw_deadletter(again), publisher, allowed_vault_urls=allowed)
            (delivered,) = topic_.deliver_pending()

    assert summary.exit_code == 0
    assert summary.published == 1
    assert delivered.delivered
    assert delivered.event_id == "kv-retry"
    assert [r.status for r in hook.received] == [500, 500, 500, 202]
    assert world.pinned(world.svc1, CERT).endswith(v2)
    record = world.audit.records[-1]
    assert (record.decision, record.event_id, record.version) == ("applied", "kv-retry", v2)
