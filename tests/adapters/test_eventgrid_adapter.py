"""The Event Grid publisher adapter and the re-drive, against the devstack topic stand-in.

Everything goes through the real ``EventGridPublisherClient`` to the stand-in, which enforces
Event Grid's limits and schemas: so the batching is checked by the server that would refuse it,
not by the code that made it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames

from devstack.eventgrid import CLOUDEVENTS, EVENTGRID, Subscription
from devstack.stack import Devstack
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.eventgrid import EventGridPublisher, open_publisher, to_sdk
from rotation.domain.errors import (
    AuthorizationError,
    ConfigError,
    DependencyError,
    TransientDependencyError,
)
from rotation.entrypoints.redrive import (
    EXIT_ALL_PUBLISHED,
    EXIT_AUTH,
    EXIT_PROBLEMS,
    OutgoingEvent,
    iter_raw_files,
    redrive,
)
from tests.payloads import DATA, TOPIC, VERSION

NEW_VERSION = SystemEventNames.KeyVaultCertificateNewVersionCreatedEventName.value
VAULT = "https://kv-rotation-demo.vault.azure.net"
KEY_VAR = "CERTROTATE_TEST_TOPIC_KEY"
NOWHERE = Subscription("kv-redrive", "http://127.0.0.1:9/")


def eg(i: int, **extra: Any) -> dict[str, Any]:
    """A dead-lettered Event Grid schema certificate event."""
    return {
        "id": f"eg-{i}", "topic": TOPIC, "subject": "partner-mtls", "eventType": NEW_VERSION,
        "eventTime": "2026-03-02T08:15:42.1234567Z", "data": {**DATA, **extra},
        "dataVersion": "1", "metadataVersion": "1",
        "deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30,
        "lastDeliveryOutcome": "TimedOut", "publishTime": "2026-03-02T08:15:42.5000000Z",
    }  # fmt: skip


def ce(i: int, **extensions: Any) -> dict[str, Any]:
    """A dead-lettered CloudEvents certificate event."""
    return {
        "specversion": "1.0", "id": f"ce-{i}", "source": TOPIC, "type": NEW_VERSION,
        "time": "2026-03-02T08:15:42Z", "subject": "partner-mtls", "data": DATA,
        "deadletterreason": "MaxDeliveryAttemptsExceeded", "deliveryattempts": 3,
        **extensions,
    }  # fmt: skip


def items(*events: dict[str, Any]) -> list[tuple[str, object]]:
    return [(f"dl.json[{i}]", e) for i, e in enumerate(events)]


def publisher(stack: Devstack, topic, **kwargs: Any) -> EventGridPublisher:
    return open_publisher(
        topic.endpoint, env={KEY_VAR: topic.key}, key_env=KEY_VAR,
        ca_bundle=str(stack.ca_bundle), retry_total=0, **kwargs,
    )  # fmt: skip


class TestOpenPublisher:
    def test_missing_key_variable_is_a_config_error_naming_the_variable(self):
        with pytest.raises(ConfigError) as caught:
            open_publisher("https://t.westeurope-1.eventgrid.azure.net/api/events",
                           env={}, key_env=KEY_VAR)  # fmt: skip

        assert KEY_VAR in str(caught.value)

    def test_http_endpoint_and_no_credential_are_both_listed(self):
        with pytest.raises(ConfigError) as caught:
            open_publisher("http://t.eventgrid.azure.net/api/events", env={})

        assert len(caught.value.problems) == 2
        assert "https" in caught.value.problems[0]

    def test_the_key_never_shows_in_repr_or_errors(self, devstack: Devstack):
        with devstack.eventgrid_topic(NOWHERE) as topic:
            good = publisher(devstack, topic)
            secret = "k3y-" + "s" * 40
            bad = open_publisher(topic.endpoint, env={KEY_VAR: secret}, key_env=KEY_VAR,
                                 ca_bundle=str(devstack.ca_bundle), retry_total=0)  # fmt: skip
            with pytest.raises(AuthorizationError) as caught:
                bad.send([OutgoingEvent("x", "eg-1", "eventgrid", eg(1), None)])
            summary = redrive(items(eg(1)), bad, allowed_vault_urls=[VAULT])

        assert topic.key not in repr(good)
        assert secret not in str(caught.value)
        assert caught.value.status_code == 401
        assert secret not in json.dumps(summary.as_dict())


class TestToSdk:
    def test_eventgrid_fields_any_case_topic_left_to_the_topic(self):
        fields = {"ID": "a", "EventType": NEW_VERSION, "Subject": "s", "Data": DATA,
                  "DataVersion": "1", "topic": TOPIC, "EventTime": "2026-03-02T08:15:42Z"}  # fmt: skip

        model = to_sdk(OutgoingEvent("x", "a", "eventgrid", fields, None))

        assert isinstance(model, EventGridEvent)
        assert (model.id, model.event_type, model.subject, model.data) == (
            "a",
            NEW_VERSION,
            "s",
            DATA,
        )
        assert model.topic is None

    def test_cloudevents_keep_extensions_and_refuse_bad_extension_names(self):
        dead_letter = {"deadletterreason", "deliveryattempts"}
        fields = {k: v for k, v in ce(1, TraceParent="00-ab").items() if k not in dead_letter}

        model = to_sdk(OutgoingEvent("x", "ce-1", "cloudevents", fields, None))

        assert isinstance(model, CloudEvent)
        assert model.extensions == {"traceparent": "00-ab"}  # CloudEvents names are lower case
        with pytest.raises(ValueError, match="lower cased and alphanumeric"):
            to_sdk(OutgoingEvent("x", "ce-1", "cloudevents", ce(1, replay_of="x"), None))


class TestSendErrors:
    def test_5xx_after_retries_is_transient(self, devstack: Devstack):
        with devstack.eventgrid_topic(NOWHERE) as topic:
            topic.faults.fail("/api/events", status=503)
            with pytest.raises(TransientDependencyError) as caught:
                publisher(devstack, topic).send(
                    [OutgoingEvent("x", "eg-1", "eventgrid", eg(1), None)]
                )

        assert caught.value.status_code == 503

    def test_oversize_is_refused_with_event_grids_code(self, devstack: Devstack):
        big = eg(1, Pad="x" * (1024 * 1024))
        with devstack.eventgrid_topic(NOWHERE) as topic, pytest.raises(DependencyError) as caught:
            publisher(devstack, topic).send([OutgoingEvent("x", "eg-1", "eventgrid", big, None)])

        assert not caught.value.retryable
        assert caught.value.status_code == 413
        assert "RequestEntityTooLarge" in str(caught.value)


class TestRedrive:
    @pytest.mark.parametrize(
        "pad",
        [
            pytest.param("p" * 300_000, id="one-long-string"),
            # Many small keys: the SDK's ", "/": " spacing adds ~36 kB per event over compact JSON.
            pytest.param({f"k{i}": i for i in range(18_000)}, id="many-keys"),
        ],
    )
    def test_batches_stay_under_1_mib_as_the_topic_measures_it(self, devstack: Devstack, pad):
        """10 events of ~300 kB: 4 requests of at most 3 events, none refused by the topic."""
        events = [eg(i, Pad=pad) for i in range(10)]
        with devstack.eventgrid_topic(NOWHERE) as topic:
            summary = redrive(
                items(*events), publisher(devstack, topic), allowed_vault_urls=[VAULT]
            )
            statuses = [e.status for e in topic.log.entries()]

        assert summary.exit_code == EXIT_ALL_PUBLISHED
        assert (summary.published, summary.batches) == (10, 4)
        assert statuses == [200, 200, 200, 200]
        assert [e["id"] for e in topic.app.accepted] == [f"eg-{i}" for i in range(10)]
        assert all("deadLetterReason" not in e for e in topic.app.accepted)

    def test_an_event_too_big_alone_is_refused_locally_and_the_rest_published(
        self, devstack: Devstack
    ):
        with devstack.eventgrid_topic(NOWHERE) as topic:
            summary = redrive(
                items(eg(1), eg(2, Pad="x" * (1024 * 1024)), eg(3)),
                publisher(devstack, topic), allowed_vault_urls=[VAULT],
            )  # fmt: skip

        assert summary.published == 2
        assert [(p.location, p.event_id) for p in summary.refused] == [("dl.json[1]", "eg-2")]
        assert "at most 1048576" in summary.refused[0].reason
        assert [e["id"] for e in topic.app.accepted] == ["eg-1", "eg-3"]
        assert summary.exit_code == EXIT_PROBLEMS

    def test_a_refused_batch_is_resent_singly_to_name_each_refusal(self, devstack: Devstack):
        """A CloudEvents topic refuses the Event Grid schema events with its 400 reason."""
        with devstack.eventgrid_topic(NOWHERE, input_schema=CLOUDEVENTS) as topic:
            summary = redrive(
                items(ce(1), eg(2), ce(3), eg(4), ce(5, traceparent="00-x")),
                publisher(devstack, topic), allowed_vault_urls=[VAULT],
            )  # fmt: skip
            statuses = [e.status for e in topic.log.entries()]

        assert summary.published == 3
        assert [p.event_id for p in summary.refused] == ["eg-2", "eg-4"]
        assert all("HTTP 400" in p.reason and CLOUDEVENTS in p.reason for p in summary.refused)
        assert statuses == [200, 400, 400, 400]  # one CloudEvents batch; one batch then singly
        accepted = {e["id"]: e for e in topic.app.accepted}
        assert set(accepted) == {"ce-1", "ce-3", "ce-5"}
        assert accepted["ce-5"]["traceparent"] == "00-x"
        assert "deadletterreason" not in accepted["ce-1"]

    def test_malformed_foreign_and_other_events_are_never_sent(
        self, devstack: Devstack, tmp_path: Path
    ):
        forged = eg(2)
        forged["data"] = {
            **DATA,
            "Id": f"https://evil.example/certificates/partner-mtls/{VERSION}",
        }
        other_vault = eg(3)
        other_vault["topic"] = TOPIC.replace("kv-rotation-demo", "kv-other")
        other_vault["data"] = {
            **DATA, "VaultName": "kv-other",
            "Id": f"https://kv-other.vault.azure.net/certificates/partner-mtls/{VERSION}",
        }  # fmt: skip
        secret_event = {
            **eg(4),
            "eventType": SystemEventNames.KeyVaultSecretNewVersionCreatedEventName.value,
        }
        lines = [json.dumps(e) for e in (eg(1), forged, other_vault, secret_event)]
        path = tmp_path / "dl.jsonl"
        path.write_text("\n".join([*lines, "{ broken"]) + "\n", encoding="utf-8")
        ticks: list[int] = []
        with devstack.eventgrid_topic(NOWHERE) as topic:
            summary = redrive(
                iter_raw_files([path]), publisher(devstack, topic),
                allowed_vault_urls=[VAULT], progress=ticks.append,
            )  # fmt: skip

        assert summary.published == 1
        assert [e["id"] for e in topic.app.accepted] == ["eg-1"]
        assert [p.location for p in summary.malformed] == ["dl.jsonl[1]", "dl.jsonl[4]"]
        assert (
            summary.malformed[0].reason
            == "dl.jsonl[1].data.Id: is not on a Key Vault host or an allowed vault"
        )
        assert summary.malformed[1].reason.startswith("dl.jsonl[4]: invalid JSON")
        assert [p.event_id for p in summary.refused] == ["eg-3", "eg-4"]
        assert "not allow-listed" in summary.refused[0].reason
        assert "SecretNewVersionCreated" in summary.refused[1].reason
        assert sum(ticks) == 5
        assert summary.exit_code == EXIT_PROBLEMS

    def test_dry_run_validates_and_counts_without_sending(self, devstack: Devstack):
        with devstack.eventgrid_topic(NOWHERE) as topic:
            summary = redrive(
                items(eg(1), ce(2), {"id": "x"}), publisher(devstack, topic),
                allowed_vault_urls=[VAULT], dry_run=True,
            )  # fmt: skip
            requests = topic.log.entries()

        assert requests == []
        assert (summary.published, summary.batches, len(summary.malformed)) == (2, 2, 1)
        assert summary.as_dict()["dry_run"] is True
        assert summary.exit_code == EXIT_PROBLEMS

    def test_refused_credentials_stop_the_redrive_with_exit_2(self, devstack: Devstack):
        read: list[str] = []

        def backlog():
            for location, event in items(eg(1), eg(2), eg(3), eg(4)):
                read.append(location)
                yield location, event

        with devstack.eventgrid_topic(NOWHERE) as topic:
            wrong = open_publisher(
                topic.endpoint, env={}, credential=StaticTokenCredential("not-the-token"),
                ca_bundle=str(devstack.ca_bundle), retry_total=0,
            )  # fmt: skip
            # A request limit that takes one of these events at a time.
            summary = redrive(backlog(), wrong, allowed_vault_urls=[VAULT], max_request_bytes=800)
            requests = topic.log.entries()

        assert summary.exit_code == EXIT_AUTH
        assert summary.aborted is not None
        assert "HTTP 401" in summary.aborted
        assert summary.published == 0
        # eg-2 did not fit with eg-1, so [eg-1] went out (401); eg-2 was pending; no more read.
        assert read == ["dl.json[0]", "dl.json[1]"]
        assert [p.event_id for p in summary.refused] == ["eg-1", "eg-2"]
        assert all(p.reason.startswith("not sent: ") for p in summary.refused)
        assert len(requests) == 1
        assert topic.app.accepted == []

    def test_both_schemas_published_in_the_schema_they_arrived_in(self, devstack: Devstack):
        accepted = {}
        for schema, event in ((EVENTGRID, eg(1)), (CLOUDEVENTS, ce(1))):
            with devstack.eventgrid_topic(NOWHERE, input_schema=schema) as topic:
                summary = redrive(
                    items(event), publisher(devstack, topic), allowed_vault_urls=[VAULT]
                )
                accepted[schema] = topic.app.accepted[0]
            assert summary.exit_code == EXIT_ALL_PUBLISHED

        assert accepted[EVENTGRID]["eventType"] == NEW_VERSION
        assert accepted[EVENTGRID]["topic"].endswith("/topics/certrotate-replay")
        assert accepted[EVENTGRID]["eventTime"].startswith("2026-03-02T08:15:42.123456")
        assert accepted[CLOUDEVENTS]["type"] == NEW_VERSION
        assert accepted[CLOUDEVENTS]["source"] == TOPIC
        assert accepted[CLOUDEVENTS]["data"] == DATA


def test_an_input_failing_midway_publishes_what_was_read_and_exits_1(devstack: Devstack):
    def failing():
        yield "dl.json[0]", eg(1)
        raise OSError("disk went away")

    with devstack.eventgrid_topic(NOWHERE) as topic:
        summary = redrive(failing(), publisher(devstack, topic), allowed_vault_urls=[VAULT])

    assert [e["id"] for e in topic.app.accepted] == ["eg-1"]
    assert summary.stopped == "OSError: disk went away"
    assert summary.exit_code == EXIT_PROBLEMS


def test_the_key_never_reaches_a_log_line(devstack: Devstack, caplog: pytest.LogCaptureFixture):
    """The SDK's HTTP logging (headers included) runs at DEBUG; the access key is not in it."""
    caplog.set_level(logging.DEBUG)
    with devstack.eventgrid_topic(NOWHERE) as topic:
        summary = redrive(items(eg(1)), publisher(devstack, topic), allowed_vault_urls=[VAULT])
        wrong = open_publisher(topic.endpoint, env={KEY_VAR: topic.key[::-1]}, key_env=KEY_VAR,
                               ca_bundle=str(devstack.ca_bundle), retry_total=0)  # fmt: skip
        refused = redrive(items(eg(2)), wrong, allowed_vault_urls=[VAULT])

    assert summary.published == 1
    assert refused.exit_code == EXIT_AUTH
    assert any("aeg-sas-key" in r.getMessage() for r in caplog.records)  # headers were logged
    assert all(topic.key not in r.getMessage() for r in caplog.records)
    assert all(topic.key[::-1] not in r.getMessage() for r in caplog.records)


def test_cloudevents_with_call_options_log_no_sdk_noise(
    devstack: Devstack, caplog: pytest.LogCaptureFixture
):
    """The SDK hands per-call options to its CloudEvent model, which warns about each one."""
    caplog.set_level(logging.WARNING)
    with devstack.eventgrid_topic(NOWHERE, input_schema=CLOUDEVENTS) as topic:
        summary = redrive(
            items(ce(1), ce(2)), publisher(devstack, topic), allowed_vault_urls=[VAULT]
        )

    assert summary.published == 2
    assert [
        r.getMessage() for r in caplog.records if "not a known attribute" in r.getMessage()
    ] == []
