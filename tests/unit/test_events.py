"""Intake: every accepted shape parses, every forged or broken shape is refused clearly."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotation.domain.errors import InvalidEventError
from rotation.domain.model import Disposition
from rotation.entrypoints.invocation import from_function_event
from rotation.intake import jsonstream
from rotation.intake.events import MAX_PAYLOAD_BYTES, iter_file_events, parse_payload
from rotation.intake.jsonstream import JsonStream
from tests.payloads import DATA, TOPIC, VERSION

# Wire reference A.4: Event Grid schema, delivered as an array even for one event.
A4: list[dict[str, Any]] = [
    {
        "id": "6b0f9a52-3c1e-4d7a-9e2b-41c5d8f0a7e3",
        "topic": TOPIC,
        "subject": "partner-mtls",
        "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "eventTime": "2026-03-02T08:15:42.1234567Z",
        "data": DATA,
        "dataVersion": "1",
        "metadataVersion": "1",
    }
]
# Wire reference A.5: CloudEvents 1.0 structured mode.
A5 = {
    "id": "6b0f9a52-3c1e-4d7a-9e2b-41c5d8f0a7e3",
    "source": TOPIC,
    "specversion": "1.0",
    "type": "Microsoft.KeyVault.CertificateNearExpiry",
    "subject": "partner-mtls",
    "time": "2026-03-02T08:15:42.1234567Z",
    "data": DATA,
}
# Wire reference B: a dead-letter blob (Event Grid schema).
DEADLETTER = [
    {
        **A4[0],
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 30,
        "lastDeliveryOutcome": "TimedOut",
        "publishTime": "2026-03-02T08:15:42.5000000Z",
        "lastDeliveryAttemptTime": "2026-03-03T08:16:10.0000000Z",
    }
]
VALIDATION = [
    {
        "id": "9a1e",
        "topic": TOPIC,
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-03-02T08:00:00.0000000Z",
        "data": {"validationCode": "0c2f9e1a", "validationUrl": "https://rp.example:553/x"},
        "dataVersion": "1",
        "metadataVersion": "1",
    }
]


def eg(**data_changes: object) -> dict[str, Any]:
    """A fresh A.4 event with its data changed (None deletes a key)."""
    event = copy.deepcopy(A4[0])
    for key, value in data_changes.items():
        if value is None:
            event["data"].pop(key, None)
        else:
            event["data"][key] = value
    return event


def refused(payload: object, **kwargs: Any) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as info:
        parse_payload(payload, **kwargs)
    return info.value


class TestAcceptedShapes:
    def test_event_grid_array_from_the_wire_reference(self):
        """A.4 parses to one rotate event with every field normalised."""
        (event,) = parse_payload(A4)

        assert event.event_id == "6b0f9a52-3c1e-4d7a-9e2b-41c5d8f0a7e3"
        assert event.schema == "eventgrid"
        assert event.disposition is Disposition.ROTATE
        assert event.vault_url == "https://kv-rotation-demo.vault.azure.net"
        assert (event.vault_name, event.object_type) == ("kv-rotation-demo", "Certificate")
        assert (event.object_name, event.version) == ("partner-mtls", VERSION)
        assert event.not_before == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
        assert event.expires == datetime.fromtimestamp(1804060800, tz=UTC)
        assert event.event_time == datetime(2026, 3, 2, 8, 15, 42, 123456, tzinfo=UTC)
        assert event.deadletter is None

    def test_event_grid_single_object(self):
        """An unwrapped Event Grid object is one event."""
        (event,) = parse_payload(A4[0])

        assert event.disposition is Disposition.ROTATE

    def test_cloudevents_object_from_the_wire_reference(self):
        """A.5 parses as a CloudEvents alert (near expiry)."""
        (event,) = parse_payload(A5)

        assert event.schema == "cloudevents"
        assert event.disposition is Disposition.ALERT
        assert event.event_time == datetime(2026, 3, 2, 8, 15, 42, 123456, tzinfo=UTC)

    def test_cloudevents_batch_array(self):
        """A CloudEvents batch is an array of structured events."""
        expired = {**A5, "type": "Microsoft.KeyVault.CertificateExpired"}

        events = parse_payload([A5, expired])

        assert [e.disposition for e in events] == [Disposition.ALERT, Disposition.ALERT]

    def test_dead_letter_blob_keeps_delivery_metadata(self):
        """Dead-letter fields become DeadLetterInfo; the event itself parses as usual."""
        (event,) = parse_payload(DEADLETTER)

        assert event.deadletter is not None
        assert event.deadletter.reason == "MaxDeliveryAttemptsExceeded"
        assert event.deadletter.attempts == 30
        assert event.deadletter.last_outcome == "TimedOut"
        assert event.disposition is Disposition.ROTATE

    def test_cloudevents_dead_letter_lower_case_fields(self):
        """CloudEvents dead-letter extensions are spelt in lower case."""
        blob = [{**A5, "deadletterreason": "TimeToLiveExceeded", "deliveryattempts": "3"}]

        (event,) = parse_payload(blob)

        assert event.deadletter is not None
        assert (event.deadletter.reason, event.deadletter.attempts) == ("TimeToLiveExceeded", 3)
        assert event.deadletter.last_outcome is None

    def test_camel_case_data_keys(self):
        """The old camelCase data spelling is accepted (case-insensitive lookup)."""
        event = eg()
        event["data"] = {k[0].lower() + k[1:]: v for k, v in DATA.items()}

        (parsed,) = parse_payload(event)

        assert parsed.version == VERSION

    def test_padded_keys_and_values_from_the_doc_typos(self):
        """`"ObjectName "` and `" version"` (doc typos) are trimmed."""
        event = eg(ObjectName=None, Version=f" {VERSION}")
        event["data"]["ObjectName "] = "partner-mtls"

        (parsed,) = parse_payload(event)

        assert (parsed.object_name, parsed.version) == ("partner-mtls", VERSION)

    @pytest.mark.parametrize(
        ("nbf", "expected"),
        [
            (1772438400, datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
            ("1772438400", datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
            (None, None),
        ],
    )
    def test_nbf_as_int_numeric_string_or_null(self, nbf, expected):
        """NBF/EXP may be int, numeric string or null."""
        event = eg()
        event["data"]["NBF"] = nbf

        (parsed,) = parse_payload(event)

        assert parsed.not_before == expected

    def test_absent_exp(self):
        """An object without expiry has EXP absent."""
        (parsed,) = parse_payload(eg(EXP=None, NBF=None))

        assert (parsed.not_before, parsed.expires) == (None, None)

    def test_unknown_extra_fields_are_ignored(self):
        """New fields Event Grid may add do not break intake."""
        event = eg(Tags={"x": 1})
        event["newEnvelopeField"] = [1, 2]

        assert len(parse_payload(event)) == 1

    @pytest.mark.parametrize(
        "suffix", ["vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net"]
    )
    def test_sovereign_cloud_hosts(self, suffix):
        """Public, China and US Government Key Vault hosts are all Key Vault hosts."""
        event = eg(Id=f"https://kv-rotation-demo.{suffix}/certificates/partner-mtls/{VERSION}")

        (parsed,) = parse_payload(event)

        assert parsed.vault_url == f"https://kv-rotation-demo.{suffix}"

    def test_mixed_case_vault_name(self):
        """VaultName keeps the resource's casing while the Id host is lower case."""
        event = eg(
            VaultName="Contoso-KV-01",
            Id=f"https://contoso-kv-01.vault.azure.net/certificates/partner-mtls/{VERSION}",
        )
        event["topic"] = TOPIC.replace("kv-rotation-demo", "Contoso-KV-01")

        (parsed,) = parse_payload(event)

        assert (parsed.vault_name, parsed.vault_url) == (
            "Contoso-KV-01",
            "https://contoso-kv-01.vault.azure.net",
        )

    def test_allowed_vault_url_accepts_the_local_devstack(self):
        """An Id on an allow-listed vault origin (127.0.0.1:PORT) is accepted."""
        event = eg(Id=f"https://127.0.0.1:8443/certificates/partner-mtls/{VERSION}")

        (parsed,) = parse_payload(event, allowed_vault_urls=["https://127.0.0.1:8443/"])

        assert parsed.vault_url == "https://127.0.0.1:8443"

    @pytest.mark.parametrize(
        "event_type",
        [
            "Microsoft.KeyVault.SecretNewVersionCreated",
            "Microsoft.KeyVault.KeyNearExpiry",
            "Microsoft.KeyVault.VaultAccessPolicyChanged",
            "Microsoft.Storage.BlobCreated",
        ],
    )
    def test_other_event_types_are_ignored(self, event_type):
        """Only certificate events act; everything else is `ignore`."""
        event = eg()
        event["eventType"] = event_type

        (parsed,) = parse_payload(event)

        assert parsed.disposition is Disposition.IGNORE

    def test_subscription_validation_event_is_ignored_with_empty_fields(self):
        """The validation handshake event is ignored, fields filled as best they can be."""
        (parsed,) = parse_payload(VALIDATION)

        assert parsed.disposition is Disposition.IGNORE
        assert (parsed.vault_url, parsed.object_name, parsed.version) == ("", "", "")


class TestFunctionEvents:
    def test_event_grid_event_from_the_functions_worker(self):
        """func.EventGridEvent (already-parsed time) normalises like the raw JSON."""
        event = func.EventGridEvent(
            id="e1", data=DATA, topic=TOPIC, subject="partner-mtls",
            event_type="Microsoft.KeyVault.CertificateNewVersionCreated",
            event_time=datetime(2026, 3, 2, 8, 15, 42, tzinfo=UTC), data_version="1",
        )  # fmt: skip

        parsed = from_function_event(event)

        assert (parsed.event_id, parsed.version, parsed.schema) == ("e1", VERSION, "eventgrid")
        assert parsed.event_time == datetime(2026, 3, 2, 8, 15, 42, tzinfo=UTC)

    def test_cloud_event_from_the_functions_worker_keeps_extensions(self):
        """func.CloudEvent with dead-letter extensions keeps them."""
        event = func.CloudEvent(
            id="c1", source=TOPIC, type="Microsoft.KeyVault.CertificateNewVersionCreated",
            specversion="1.0", data=DATA, deadletterreason="MaxDeliveryAttemptsExceeded",
        )  # fmt: skip

        parsed = from_function_event(event)

        assert parsed.schema == "cloudevents"
        assert parsed.deadletter is not None
        assert parsed.deadletter.reason == "MaxDeliveryAttemptsExceeded"

    def test_forged_function_event_is_refused_with_a_path(self):
        """The trigger path applies the same strict rules."""
        event = func.EventGridEvent(
            id="e1", data={**DATA, "Id": DATA["Id"].replace("https", "http")}, topic=TOPIC,
            subject="", event_type="Microsoft.KeyVault.CertificateNewVersionCreated",
            event_time=None, data_version="1",
        )  # fmt: skip

        with pytest.raises(InvalidEventError) as info:
            from_function_event(event)

        assert info.value.path == "event.data.Id"


class TestMalformed:
    def test_missing_event_type(self):
        """An event without eventType is malformed, naming the field."""
        event = eg()
        del event["eventType"]

        assert refused([event]).path == "[0].eventType"

    def test_non_https_id(self):
        """data.Id must be https."""
        error = refused([eg(Id=DATA["Id"].replace("https:", "http:"))])

        assert error.path == "[0].data.Id"
        assert "https" in error.reason

    def test_host_not_matching_vault_name(self):
        """A forged Id on another vault's host is refused."""
        forged = eg(Id=f"https://attacker.vault.azure.net/certificates/partner-mtls/{VERSION}")

        assert "VaultName" in refused([forged]).reason

    def test_host_not_a_key_vault_host(self):
        """An Id on a look-alike host is refused."""
        forged = eg(
            Id=f"https://kv-rotation-demo.vault.azure.net.evil.example/certificates/partner-mtls/{VERSION}"
        )

        assert refused([forged]).path == "[0].data.Id"

    def test_port_on_a_key_vault_host(self):
        """A Key Vault host with an explicit port is not a real Key Vault URL."""
        forged = eg(
            Id=f"https://kv-rotation-demo.vault.azure.net:8443/certificates/partner-mtls/{VERSION}"
        )

        assert refused([forged]).path == "[0].data.Id"

    def test_devstack_origin_without_allow_list(self):
        """127.0.0.1 is only a vault when allow-listed."""
        event = eg(Id=f"https://127.0.0.1:8443/certificates/partner-mtls/{VERSION}")

        assert refused([event]).path == "[0].data.Id"

    def test_name_mismatch(self):
        """Id must name ObjectName."""
        error = refused([eg(ObjectName="other-cert")])

        assert (error.path, error.reason) == ("[0].data.Id", "names another ObjectName")

    def test_version_mismatch(self):
        """Id must name Version."""
        error = refused([eg(Version="0" * 32)])

        assert (error.path, error.reason) == ("[0].data.Id", "names another Version")

    def test_secret_path_in_a_certificate_event(self):
        """A certificate event whose Id points at /secrets/ is malformed."""
        event = eg(Id=f"https://kv-rotation-demo.vault.azure.net/secrets/partner-mtls/{VERSION}")

        assert "/certificates/" in refused([event]).reason

    def test_object_type_mismatch(self):
        """A certificate event must say ObjectType Certificate."""
        assert refused([eg(ObjectType="Secret")]).path == "[0].data.ObjectType"

    def test_topic_naming_another_vault(self):
        """The envelope's vault (topic) must agree with VaultName."""
        event = eg()
        event["topic"] = TOPIC.replace("kv-rotation-demo", "kv-other")

        assert refused([event]).path == "[0].topic"

    def test_query_string_in_id(self):
        """An Id with a query or fragment is refused, and the message does not echo it."""
        event = eg(Id=DATA["Id"] + "?sig=SuperSecretSignature123")

        error = refused([event])

        assert "SuperSecretSignature123" not in str(error)

    @pytest.mark.parametrize("nbf", [True, "soon", -5, 10**20, {"x": 1}])
    def test_bad_epoch_values(self, nbf):
        """NBF must be a plausible epoch number."""
        assert refused([eg(NBF=nbf)]).path == "[0].data.NBF"

    def test_bad_event_time(self):
        """eventTime must be an ISO time with a zone."""
        event = eg()
        event["eventTime"] = "2026-03-02T08:15:42"

        assert refused([event]).path == "[0].eventTime"

    def test_missing_data(self):
        """A certificate event needs a data object."""
        event = eg()
        event["data"] = [1]

        assert refused([event]).path == "[0].data"

    def test_conflicting_duplicate_keys(self):
        """`Id` and `id` with different values are ambiguous, so refused."""
        event = eg(id="https://attacker.vault.azure.net/certificates/partner-mtls/x")

        assert "duplicate" in refused([event]).reason

    @pytest.mark.parametrize("payload", [None, 3, "text", [1]])
    def test_payload_not_an_object_or_array_of_objects(self, payload):
        """Anything but an event object or an array of them is refused."""
        assert isinstance(refused(payload), InvalidEventError)

    def test_too_many_events(self):
        """A payload beyond max_events is refused before parsing any event."""
        assert "limit" in refused(A4 * 3, max_events=2).reason


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


class TestProperties:
    @given(payload=_json)
    @settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
    def test_arbitrary_json_raises_only_invalid_event_error(self, payload):
        """No JSON value makes intake raise anything but InvalidEventError."""
        with contextlib.suppress(InvalidEventError):
            parse_payload(payload)

    @given(
        key=st.sampled_from(sorted(DATA)),
        value=_json,
        event_type=st.sampled_from(
            [
                "Microsoft.KeyVault.CertificateNewVersionCreated",
                "Microsoft.KeyVault.SecretNearExpiry",
            ]
        ),
    )
    @settings(max_examples=200)
    def test_mutated_key_vault_events_raise_only_invalid_event_error(self, key, value, event_type):
        """Any value in any data field parses or is refused, never crashes."""
        event = eg()
        event["data"][key] = value
        event["eventType"] = event_type

        with contextlib.suppress(InvalidEventError):
            parse_payload([event])

    @given(values=st.lists(_json, max_size=6), chunk=st.integers(min_value=1, max_value=9))
    @settings(max_examples=150)
    def test_stream_reads_arrays_across_any_chunk_boundary(self, values, chunk):
        """Streaming an array with tiny reads yields exactly what json.loads sees."""
        text = json.dumps(values, indent=1)
        original = jsonstream._CHUNK
        jsonstream._CHUNK = chunk
        try:
            got = [v for _, v in JsonStream(io.StringIO(text), "x")]
        finally:
            jsonstream._CHUNK = original

        assert got == values


class TestFileEvents:
    def test_json_lines_go_on_after_a_bad_line(self, tmp_path):
        """A broken line is reported at its index and the next lines still parse."""
        path = tmp_path / "events.jsonl"
        path.write_text(f"{json.dumps(A4[0])}\n{{broken\n{json.dumps(A5)}\n")

        results = list(iter_file_events(path))

        assert [loc for loc, _ in results] == [
            "events.jsonl[0]",
            "events.jsonl[1]",
            "events.jsonl[2]",
        ]
        assert [type(item).__name__ for _, item in results] == [
            "KeyVaultEvent",
            "InvalidEventError",
            "KeyVaultEvent",
        ]

    def test_array_goes_on_after_a_malformed_event(self, tmp_path):
        """A semantically bad event in an array does not stop the rest."""
        path = tmp_path / "events.json"
        path.write_text(json.dumps([eg(Version="0" * 32), A5, *DEADLETTER]))

        results = list(iter_file_events(path))

        assert isinstance(results[0][1], InvalidEventError)
        assert results[0][1].path == "data.Id"
        assert [loc for loc, _ in results[1:]] == ["events.json[1]", "events.json[2]"]

    def test_single_object_file(self, tmp_path):
        """A file holding one event object yields it."""
        path = tmp_path / "one.json"
        path.write_text(json.dumps(A5, indent=2))

        ((location, event),) = list(iter_file_events(path))

        assert location == "one.json[0]"
        assert not isinstance(event, InvalidEventError)

    def test_empty_array(self, tmp_path):
        """An empty array is no events and no error."""
        path = tmp_path / "empty.json"
        path.write_text(" [ ] ")

        assert list(iter_file_events(path)) == []

    def test_oversized_event_is_refused(self, tmp_path):
        """One event over the per-event cap is an error, not a memory blow-up."""
        path = tmp_path / "big.jsonl"
        path.write_text(
            json.dumps({"eventType": "x", "pad": "a" * (MAX_PAYLOAD_BYTES + 10)})
            + "\n"
            + json.dumps(A5)
            + "\n"
        )

        results = list(iter_file_events(path))

        assert "larger than" in str(results[0][1])
        assert not isinstance(results[-1][1], InvalidEventError)

    def test_large_array_streams_in_constant_memory(self, tmp_path):
        """20,000 events (~10 MB) stream with a peak far below the file size."""
        path = tmp_path / "many.json"
        with path.open("w") as out:
            out.write("[")
            for i in range(20_000):
                out.write(("," if i else "") + json.dumps({**A4[0], "id": str(i)}))
            out.write("]")
        size = path.stat().st_size

        tracemalloc.start()
        count = sum(
            1 for _, event in iter_file_events(path) if not isinstance(event, InvalidEventError)
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        assert count == 20_000
        assert peak < size / 10
