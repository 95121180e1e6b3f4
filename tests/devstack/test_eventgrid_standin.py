"""The Event Grid topic stand-in, driven by the unmodified ``EventGridPublisherClient``.

Publishing: both input schemas, bearer and ``aeg-sas-key`` authentication, Event Grid's error
answers (401, 400 for a body that does not match the topic's schema, 413 over 1 MiB) with its
error body shape. Delivery: headers and bodies as Event Grid sends them, retries on 5xx on the
subscription's schedule (the injected ``sleep`` records it; nothing waits), no retry on 400, and
dead-letter blobs in Azurite that the project's own dead-letter reader takes back.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, SystemEventNames
from azure.storage.blob import BlobServiceClient

from devstack.eventgrid import (
    CLOUDEVENTS,
    EVENTGRID,
    MAX_BODY_BYTES,
    DeadLetterDestination,
    Subscription,
)
from devstack.stack import Devstack
from rotation.adapters.blobs import DeadLetterBlobSource
from rotation.adapters.credentials import StaticTokenCredential
from rotation.domain.model import KeyVaultEvent
from tests.eventgrid_receiver import FunctionsWebhook

NEW_VERSION = SystemEventNames.KeyVaultCertificateNewVersionCreatedEventName.value
WHEN = datetime(2026, 3, 2, 8, 15, 42, 123456, tzinfo=UTC)
DEAD_LETTER_TIME = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)


def kv_data(i: int, **extra: object) -> dict[str, object]:
    """A Key Vault certificate event's data for version ``v{i}`` (the intake accepts it)."""
    return {
        "Id": f"https://kv-test.vault.azure.net/certificates/partner-mtls/v{i}", "VaultName": "kv-test",
        "ObjectType": "Certificate", "ObjectName": "partner-mtls", "Version": f"v{i}",
        "NBF": None, "EXP": None, **extra,
    }  # fmt: skip


def eg_event(i: int = 1, **data: object) -> EventGridEvent:
    return EventGridEvent(
        subject="partner-mtls", event_type=NEW_VERSION, data=kv_data(i, **data),
        data_version="1", id=f"eg-{i}", event_time=WHEN,
    )  # fmt: skip


def cloud_event(i: int = 1, **data: object) -> CloudEvent[Any]:
    return CloudEvent(
        source="/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-test",
        type=NEW_VERSION, data=kv_data(i, **data), id=f"ce-{i}", time=WHEN,
        extensions={"replayof": "abc"},
    )  # fmt: skip


def _error(exc: HttpResponseError) -> Any:
    """The service error of ``exc`` (Event Grid always sends one)."""
    assert exc.error is not None
    return exc.error


def _response(exc: HttpResponseError) -> Any:
    assert exc.response is not None
    return exc.response


class Recorder:
    """The injected ``sleep``: records the waits the subscription asks for."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(stack: Devstack, topic, *, key: str | None = None) -> EventGridPublisherClient:
    credential = AzureKeyCredential(key) if key else StaticTokenCredential(stack.token)
    return EventGridPublisherClient(topic.endpoint, credential)


def send(publisher: EventGridPublisherClient, stack: Devstack, events) -> None:
    publisher.send(events, connection_verify=str(stack.ca_bundle), retry_total=0)


@pytest.fixture(name="sleep")
def _sleep() -> Recorder:
    return Recorder()


class TestPublishing:
    @pytest.mark.parametrize("auth", ["key", "bearer"])
    def test_eventgrid_schema_accepted_stamped_and_queued(self, devstack: Devstack, auth):
        """Both credentials publish; Event Grid stamps the topic's id and metadataVersion."""
        sub = Subscription("kv-redrive", "http://127.0.0.1:9/")
        with devstack.eventgrid_topic(sub) as topic:
            publisher = client(devstack, topic, key=topic.key if auth == "key" else None)

            send(publisher, devstack, [eg_event(1), eg_event(2)])

            assert [e["id"] for e in topic.app.accepted] == ["eg-1", "eg-2"]
            first = topic.app.accepted[0]
            assert first["topic"] == topic.topic_id
            assert topic.topic_id.endswith(
                "/providers/Microsoft.EventGrid/topics/certrotate-replay"
            )
            assert first["metadataVersion"] == "1"
            assert first["eventType"] == NEW_VERSION
            assert first["data"] == kv_data(1)
            assert first["eventTime"].startswith("2026-03-02T08:15:42.123456")

    def test_cloudevents_batch_accepted_with_extensions(self, devstack: Devstack):
        """A CloudEvents topic takes the SDK's cloudevents-batch+json, extensions included."""
        sub = Subscription("kv-redrive", "http://127.0.0.1:9/")
        with devstack.eventgrid_topic(sub, input_schema=CLOUDEVENTS) as topic:
            send(client(devstack, topic, key=topic.key), devstack, [cloud_event(1)])

            (event,) = topic.app.accepted
            assert event["specversion"] == "1.0"
            assert event["type"] == NEW_VERSION
            assert event["replayof"] == "abc"
            assert "topic" not in event

    @pytest.mark.parametrize("auth", ["wrong-key", "wrong-token"])
    def test_bad_credentials_are_401_with_the_error_shape(self, devstack: Devstack, auth):
        sub = Subscription("kv-redrive", "http://127.0.0.1:9/")
        with devstack.eventgrid_topic(sub) as topic:
            credential = (
                AzureKeyCredential("not-the-key")
                if auth == "wrong-key"
                else StaticTokenCredential("not-the-token")
            )
            publisher = EventGridPublisherClient(topic.endpoint, credential)

            with pytest.raises(ClientAuthenticationError) as caught:
                send(publisher, devstack, [eg_event()])

            assert caught.value.status_code == 401
            assert _error(caught.value).code == "Unauthorized"
            assert topic.app.accepted == []

    @pytest.mark.parametrize(
        ("input_schema", "wrong"),
        [(EVENTGRID, cloud_event), (CLOUDEVENTS, eg_event)],
    )
    def test_the_other_schema_is_400_bad_request(self, devstack: Devstack, input_schema, wrong):
        sub = Subscription("kv-redrive", "http://127.0.0.1:9/")
        with devstack.eventgrid_topic(sub, input_schema=input_schema) as topic:
            with pytest.raises(HttpResponseError) as caught:
                send(client(devstack, topic, key=topic.key), devstack, [wrong()])

            assert caught.value.status_code == 400
            assert _error(caught.value).code == "BadRequest"
            assert input_schema in _error(caught.value).message
            body = json.loads(_response(caught.value).text())
            assert set(body["error"]) == {"code", "message", "details"}
            assert body["error"]["details"][0]["code"] == "BadRequest"
            assert topic.app.accepted == []

    def test_missing_required_field_is_400_naming_it(self, devstack: Devstack):
        """A raw body without eventTime (the SDK always sends it, so post the dict form)."""
        sub = Subscription("kv-redrive", "http://127.0.0.1:9/")
        with devstack.eventgrid_topic(sub) as topic:
            raw = {"id": "x", "subject": "s", "eventType": "t", "data": {}, "dataVersion": "1"}
            with pytest.raises(HttpResponseError) as caught:
                send(client(devstack, topic, key=topic.key), devstack, [raw])

            assert caught.value.status_code == 400
            assert "'eventTime'" in _error(caught.value).message

    def test_a_batch_over_1_mib_is_413_and_nothing_is_accepted(self, devstack: Devstack):
        sub = Subscription("kv-redrive", "http://127.0.0.1:9/")
        with devstack.eventgrid_topic(sub) as topic:
            events = [eg_event(i, pad="x" * (MAX_BODY_BYTES // 4)) for i in range(4)]

            with pytest.raises(HttpResponseError) as caught:
                send(client(devstack, topic, key=topic.key), devstack, events)

            assert caught.value.status_code == 413
            assert _error(caught.value).code == "RequestEntityTooLarge"
            assert topic.app.accepted == []
            # The same events in two requests fit.
            send(client(devstack, topic, key=topic.key), devstack, events[:2])
            send(client(devstack, topic, key=topic.key), devstack, events[2:])
            assert len(topic.app.accepted) == 4


class TestDelivery:
    @pytest.mark.parametrize("schema", [EVENTGRID, CLOUDEVENTS])
    def test_delivers_one_event_per_request_with_event_grid_headers(
        self, devstack: Devstack, schema, sleep
    ):
        seen: list[Any] = []
        with FunctionsWebhook.serve(seen.append) as hook:
            sub = Subscription("kv-redrive", hook.url)
            with devstack.eventgrid_topic(sub, input_schema=schema, sleep=sleep) as topic:
                make = eg_event if schema == EVENTGRID else cloud_event
                send(client(devstack, topic, key=topic.key), devstack, [make(1), make(2)])

                results = topic.deliver_pending()

        assert [r.delivered for r in results] == [True, True]
        assert [r.attempts for r in results] == [1, 1]
        assert sleep.waits == []
        assert len(hook.received) == 2
        first = hook.received[0]
        assert first.headers["aeg-event-type"] == "Notification"
        assert first.headers["aeg-subscription-name"] == "KV-REDRIVE"
        assert first.headers["aeg-delivery-count"] == "0"
        if schema == EVENTGRID:
            assert first.headers["content-type"].startswith("application/json")
            assert isinstance(first.body, list)
            assert len(first.body) == 1
            assert first.body[0]["topic"] == topic.topic_id
            assert [e.event_type for e in seen] == [NEW_VERSION, NEW_VERSION]
        else:
            assert first.headers["content-type"].startswith("application/cloudevents+json")
            assert first.body["id"] == "ce-1"
            assert [e.type for e in seen] == [NEW_VERSION, NEW_VERSION]
        assert [e.id for e in seen] == [
            f"{'eg' if schema == EVENTGRID else 'ce'}-{i}" for i in (1, 2)
        ]

    def test_retries_5xx_on_the_schedule_then_succeeds(self, devstack: Devstack, sleep):
        failures = [RuntimeError("busy"), RuntimeError("still busy")]

        def flaky(event) -> None:
            if failures:
                raise failures.pop(0)

        with FunctionsWebhook.serve(flaky) as hook:
            sub = Subscription("kv-redrive", hook.url, retry_schedule=(10.0, 30.0, 60.0))
            with devstack.eventgrid_topic(sub, sleep=sleep) as topic:
                send(client(devstack, topic, key=topic.key), devstack, [eg_event()])

                (result,) = topic.deliver_pending()

        assert result.delivered
        assert result.statuses == (500, 500, 202)
        assert sleep.waits == [10.0, 30.0]
        assert [r.headers["aeg-delivery-count"] for r in hook.received] == ["0", "1", "2"]

    @pytest.mark.azurite
    @pytest.mark.parametrize("schema", [EVENTGRID, CLOUDEVENTS])
    def test_dead_letters_after_max_attempts_in_event_grid_blob_shape(
        self, devstack: Devstack, azurite, schema, sleep
    ):
        container = f"deadletter{uuid.uuid4().hex[:8]}"
        with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            service.create_container(container)

        def failing(event) -> None:
            raise RuntimeError("downstream unavailable")

        with FunctionsWebhook.serve(failing) as hook:
            sub = Subscription(
                "kv-redrive", hook.url, max_delivery_attempts=3, retry_schedule=(10.0,),
                deadletter=DeadLetterDestination(azurite.connection_string, container),
            )  # fmt: skip
            with devstack.eventgrid_topic(
                sub, input_schema=schema, sleep=sleep, clock=lambda: DEAD_LETTER_TIME
            ) as topic:
                make = eg_event if schema == EVENTGRID else cloud_event
                send(client(devstack, topic, key=topic.key), devstack, [make(7)])

                (result,) = topic.deliver_pending()

        assert not result.delivered
        assert result.attempts == 3
        assert len(hook.received) == 3
        assert sleep.waits == [10.0, 10.0]
        assert result.deadletter_blob is not None
        assert result.deadletter_blob.startswith("KV-REDRIVE/2026/3/2/9/")
        source = DeadLetterBlobSource.from_connection_string(azurite.connection_string, container)
        raw = bytearray()

        class Sink:
            def write(self, chunk: bytes) -> int:
                raw.extend(chunk)
                return len(chunk)

        source.download(result.deadletter_blob, Sink())  # type: ignore[arg-type]
        (record,) = json.loads(bytes(raw))
        if schema == EVENTGRID:
            assert record["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
            assert record["deliveryAttempts"] == 3
            assert record["lastDeliveryOutcome"] == "Busy"
            assert record["lastDeliveryAttemptTime"] == "2026-03-02T09:05:00.0000000Z"
            assert record["topic"] == topic.topic_id
        else:
            assert record["deadletterreason"] == "MaxDeliveryAttemptsExceeded"
            assert record["deliveryattempts"] == 3
        assert record["id"] == ("eg-7" if schema == EVENTGRID else "ce-7")
        # The project's own dead-letter reader takes the blob back (schema and envelope).
        ((location, event),) = list(source.iter_events("KV-REDRIVE/"))
        assert location.startswith(f"{container}/KV-REDRIVE/2026/3/2/9/")
        assert isinstance(event, KeyVaultEvent)
        assert event.deadletter is not None
        assert event.deadletter.attempts == 3
        assert event.schema == ("eventgrid" if schema == EVENTGRID else "cloudevents")

    @pytest.mark.azurite
    def test_a_400_answer_is_not_retried_and_dead_letters_at_once(
        self, devstack: Devstack, azurite, sleep
    ):
        container = f"deadletter{uuid.uuid4().hex[:8]}"
        with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            service.create_container(container)
        with FunctionsWebhook.serve(lambda event: None) as hook:
            hook.refuse_with = 400
            sub = Subscription(
                "kv-redrive", hook.url, max_delivery_attempts=5,
                deadletter=DeadLetterDestination(azurite.connection_string, container),
            )  # fmt: skip
            with devstack.eventgrid_topic(sub, sleep=sleep) as topic:
                send(client(devstack, topic, key=topic.key), devstack, [eg_event()])

                (result,) = topic.deliver_pending()

        assert result.statuses == (400,)
        assert result.outcome == "BadRequest"
        assert sleep.waits == []
        source = DeadLetterBlobSource.from_connection_string(azurite.connection_string, container)
        ((_, event),) = list(source.iter_events())
        assert isinstance(event, KeyVaultEvent)
        assert event.deadletter is not None
        assert event.deadletter.last_outcome == "BadRequest"
        assert event.deadletter.attempts == 1

    def test_no_subscription_answer_retries_until_the_attempts_run_out(
        self, devstack: Devstack, sleep
    ):
        """A refused connection is retried; without a dead-letter destination the event is dropped."""
        sub = Subscription("kv-redrive", "http://127.0.0.1:9/", max_delivery_attempts=4)
        with devstack.eventgrid_topic(sub, sleep=sleep) as topic:
            send(client(devstack, topic, key=topic.key), devstack, [eg_event()])

            (result,) = topic.deliver_pending()

        assert not result.delivered
        assert result.attempts == 4
        assert result.statuses == (None, None, None, None)
        assert result.outcome == "SocketError"
        assert result.deadletter_blob is None
        assert sleep.waits == [10.0, 30.0, 60.0]
