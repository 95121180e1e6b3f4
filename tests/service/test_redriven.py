"""Issue 17: a re-driven event (from the replay topic) rotates exactly as the original would have,
and its audit record says which topic delivered it. Both schemas, through the real intake."""

from __future__ import annotations

from typing import Any

import pytest

from rotation.domain.model import AuditRecord, Trigger
from rotation.intake.events import parse_object
from tests.service.conftest import CERT, SVC_A, V1, V2, VAULT, Pki, World

SYSTEM_TOPIC = (
    "/subscriptions/1111/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv-demo"
)
REPLAY_TOPIC = (
    "/subscriptions/1111/resourceGroups/rg-ops/providers/Microsoft.EventGrid/topics/replay"
)
DATA = {
    "Id": f"{VAULT}/certificates/{CERT}/{V2}", "VaultName": "kv-demo",
    "ObjectType": "Certificate", "ObjectName": CERT, "Version": V2,
}  # fmt: skip
TYPE = "Microsoft.KeyVault.CertificateNewVersionCreated"


def payload(schema: str, topic: str) -> dict[str, Any]:
    if schema == "cloudevents":
        return {"id": "e-1", "specversion": "1.0", "type": TYPE, "source": topic, "data": DATA}
    return {"id": "e-1", "eventType": TYPE, "topic": topic, "data": DATA, "dataVersion": "1"}


def rotated_world(pki: Pki) -> World:
    world = World(pki)
    world.add_version("v1", V1)
    world.add_version("v2", V2)
    world.bind(SVC_A, CERT, V1, backend="partner-api")
    return world


def comparable(record: AuditRecord) -> dict[str, object]:
    fields = record.as_dict()
    for name in ("topic", "duration_ms", "correlation_id"):
        fields.pop(name)
    return fields


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_a_redriven_event_is_decided_as_the_original_and_recorded_with_the_replay_topic(
    pki: Pki, schema: str
):
    original_world, redriven_world = rotated_world(pki), rotated_world(pki)

    original = original_world.service().handle(
        parse_object(payload(schema, SYSTEM_TOPIC), allowed_vault_urls=[VAULT]),
        trigger=Trigger.EVENTGRID,
    )
    redriven = redriven_world.service().handle(
        parse_object(payload(schema, REPLAY_TOPIC), allowed_vault_urls=[VAULT]),
        trigger=Trigger.EVENTGRID,
    )

    assert (original.decision, redriven.decision) == ("applied", "applied")
    assert comparable(redriven) == comparable(original)
    assert redriven_world.gateway.updates == original_world.gateway.updates
    assert redriven_world.secret_of(SVC_A, CERT) == f"{VAULT}/secrets/{CERT}/{V2}"
    assert (original.topic, redriven.topic) == (SYSTEM_TOPIC, REPLAY_TOPIC)
    # every record of the run (the per-target ones too) names the delivering topic
    assert {r.topic for r in redriven_world.audit.records} == {REPLAY_TOPIC}
    assert redriven.as_dict()["topic"] == REPLAY_TOPIC


def test_a_secret_in_a_forged_topic_never_reaches_the_audit_record(pki: Pki):
    """The topic decides nothing, and the record redacts it like a log line."""
    world = rotated_world(pki)
    forged = "/x;AccountName=a;AccountKey=c2VjcmV0a2V5c2VjcmV0;"

    record = world.service().handle(
        parse_object(payload("eventgrid", forged), allowed_vault_urls=[VAULT]),
        trigger=Trigger.EVENTGRID,
    )

    assert record.decision == "applied"
    assert all("c2VjcmV0a2V5c2VjcmV0" not in str(r.as_dict()) for r in world.audit.records)
    assert record.topic == "/x;AccountName=a;AccountKey=[REDACTED];"
