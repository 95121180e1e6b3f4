"""Issue 17: the intake records which topic delivered an event, and names event types as the SDK does.

A re-driven event arrives from the replay topic (a custom Event Grid topic), not from the vault's
system topic. The intake decides exactly as for the original; only ``topic`` differs. The topic
is on record, never decisive, and only printable ASCII of at most 512 characters is kept
(the audit record redacts it: tests/service/test_redriven.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import azure.functions as func
import pytest
from azure.eventgrid import SystemEventNames

from rotation.domain.errors import InvalidEventError
from rotation.domain.model import Disposition, KeyVaultEvent
from rotation.entrypoints.invocation import from_function_event
from rotation.intake.events import parse_object, parse_payload
from rotation.intake.schema import _DISPOSITIONS
from tests.payloads import DATA, TOPIC

REPLAY_TOPIC = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-rotation-demo"
    "/providers/Microsoft.EventGrid/topics/certrotate-replay"
)
NEW_VERSION = SystemEventNames.KeyVaultCertificateNewVersionCreatedEventName


def eventgrid(topic: str | None, event_type: str = NEW_VERSION) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "eg-1", "subject": "partner-mtls", "eventType": event_type,
        "eventTime": "2026-03-02T08:15:42.1234567Z", "data": DATA, "dataVersion": "1",
    }  # fmt: skip
    return event if topic is None else {**event, "topic": topic}


def cloudevent(source: str | None, event_type: str = NEW_VERSION) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "ce-1", "specversion": "1.0", "type": event_type,
        "time": "2026-03-02T08:15:42Z", "subject": "partner-mtls", "data": DATA,
    }  # fmt: skip
    return event if source is None else {**event, "source": source}


BUILDERS = {"eventgrid": eventgrid, "cloudevents": cloudevent}


def without_topic(event: KeyVaultEvent) -> KeyVaultEvent:
    return dataclasses.replace(event, topic="")


@pytest.mark.parametrize("schema", sorted(BUILDERS))
class TestDeliveringTopic:
    def test_the_system_topic_is_recorded(self, schema: str):
        """Event Grid schema ``topic`` / CloudEvents ``source``: the vault's system topic."""
        event = parse_object(BUILDERS[schema](TOPIC))

        assert (event.schema, event.topic) == (schema, TOPIC)

    def test_a_redriven_event_is_decided_as_the_original_and_names_the_replay_topic(
        self, schema: str
    ):
        """From the replay topic, every field but ``topic`` equals the original's."""
        original = parse_object(BUILDERS[schema](TOPIC))
        redriven = parse_object(BUILDERS[schema](REPLAY_TOPIC))

        assert redriven.topic == REPLAY_TOPIC
        assert without_topic(redriven) == without_topic(original)
        assert redriven.disposition is Disposition.ROTATE

    def test_a_missing_topic_records_nothing_and_decides_the_same(self, schema: str):
        original = parse_object(BUILDERS[schema](TOPIC))
        bare = parse_object(BUILDERS[schema](None))

        assert bare.topic == ""
        assert without_topic(bare) == without_topic(original)

    def test_the_replay_topic_does_not_open_the_data_id_rules(self, schema: str):
        """A forged ``data.Id`` is refused from the replay topic exactly as from the vault's."""
        forged = {**DATA, "Id": DATA["Id"].replace("kv-rotation-demo.vault", "evil.vault")}
        for topic in (TOPIC, REPLAY_TOPIC):
            payload = {**BUILDERS[schema](topic), "data": forged}
            with pytest.raises(InvalidEventError, match=r"data\.Id.*VaultName"):
                parse_object(payload)

    def test_a_topic_naming_another_vault_is_still_refused(self, schema: str):
        other = TOPIC.replace("kv-rotation-demo", "kv-other")
        key = "source" if schema == "cloudevents" else "topic"

        with pytest.raises(InvalidEventError, match=rf"event\.{key}.*different vault"):
            parse_object(BUILDERS[schema](other))

    @pytest.mark.parametrize(
        "hostile",
        ["kv\u017f-topic", "x" * 513, "two words"],
        ids=["non-ascii", "too-long", "whitespace"],
    )
    def test_a_topic_unfit_for_the_record_is_left_off_and_decides_nothing(
        self, schema: str, hostile: str
    ):
        """Not printable ASCII of at most 512 characters: recorded as nothing, same decision."""
        original = parse_object(BUILDERS[schema](TOPIC))

        event = parse_object(BUILDERS[schema](hostile))

        assert event.topic == ""
        assert without_topic(event) == without_topic(original)

    def test_a_topic_that_is_not_text_is_refused_as_before(self, schema: str):
        """Lone surrogates: the field check refuses the certificate event, naming the field."""
        key = "source" if schema == "cloudevents" else "topic"

        with pytest.raises(InvalidEventError, match=rf"event\.{key}: is not valid Unicode"):
            parse_object(BUILDERS[schema]("\ud800"))

    def test_events_certrotate_ignores_carry_their_topic_too(self, schema: str):
        event = parse_object(BUILDERS[schema](REPLAY_TOPIC, "Microsoft.Storage.BlobCreated"))

        assert (event.disposition, event.topic) == (Disposition.IGNORE, REPLAY_TOPIC)


def test_a_delivery_array_keeps_each_events_topic():
    events = parse_payload([eventgrid(TOPIC), {**eventgrid(REPLAY_TOPIC), "id": "eg-2"}])

    assert [e.topic for e in events] == [TOPIC, REPLAY_TOPIC]


def test_the_functions_trigger_objects_carry_the_replay_topic():
    """What the host hands the function: ``EventGridEvent.topic`` / ``CloudEvent.source``."""
    eg = func.EventGridEvent(
        id="eg-1", data=DATA, topic=REPLAY_TOPIC, subject="partner-mtls", event_type=NEW_VERSION,
        event_time=None, data_version="1",
    )  # fmt: skip
    ce = func.CloudEvent(
        id="ce-1", source=REPLAY_TOPIC, type=NEW_VERSION, specversion="1.0", data=DATA, time=None
    )

    assert [from_function_event(e).topic for e in (eg, ce)] == [REPLAY_TOPIC, REPLAY_TOPIC]


class TestSdkEventNames:
    """The intake's event types are ``azure.eventgrid.SystemEventNames``' (the intake stays free
    of ``azure`` imports, see docs/events.md; this pins its names to the SDK's)."""

    @pytest.mark.parametrize(
        ("name", "disposition"),
        [
            (SystemEventNames.KeyVaultCertificateNewVersionCreatedEventName, Disposition.ROTATE),
            (SystemEventNames.KeyVaultCertificateNearExpiryEventName, Disposition.ALERT),
            (SystemEventNames.KeyVaultCertificateExpiredEventName, Disposition.ALERT),
        ],
    )
    def test_each_sdk_certificate_event_name_gets_its_disposition(
        self, name: SystemEventNames, disposition: Disposition
    ):
        for build in BUILDERS.values():
            assert parse_object(build(TOPIC, str(name.value))).disposition is disposition

    def test_every_name_the_intake_acts_on_is_an_sdk_system_event_name(self):
        sdk = {member.value.lower() for member in SystemEventNames}

        assert len(_DISPOSITIONS) == 3
        assert set(_DISPOSITIONS) <= sdk

    @pytest.mark.parametrize(
        "name",
        [
            SystemEventNames.KeyVaultSecretNewVersionCreatedEventName,
            SystemEventNames.KeyVaultKeyNearExpiryEventName,
            SystemEventNames.KeyVaultVaultAccessPolicyChangedEventName,
        ],
    )
    def test_other_key_vault_events_are_ignored(self, name: SystemEventNames):
        assert parse_object(eventgrid(TOPIC, str(name.value))).disposition is Disposition.IGNORE
