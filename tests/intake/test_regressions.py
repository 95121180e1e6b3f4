"""Issue 10, one regression test per cause: each failed (crashed, or accepted) on the old code.

Intake causes (numbers, times, huge JSON integers, Unicode case folding) are checked at the
library and at the Functions trigger; the stream causes (a poison line stops replay, wrong
audit fields for a malformed event, half-written ``--json`` output) through the CLI.
"""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import azure.functions as func
import pytest
from click.testing import CliRunner

from rotation import bootstrap
from rotation.domain.errors import InvalidEventError
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.entrypoints.cli import cli
from rotation.entrypoints.functions import on_key_vault_event
from rotation.entrypoints.invocation import from_function_event
from rotation.entrypoints.replay import event_stream
from rotation.intake.events import iter_file_events, parse_payload
from rotation.intake.jsonstream import JsonStream
from tests.intake.bodies import parse_bytes
from tests.payloads import DATA, TOPIC, VERSION

HUGE = "9" * 5000  # beyond Python's 4,300-digit int/str conversion limit
VAULT = "https://kv-rotation-demo.vault.azure.net"
EG = {
    "id": "eg-1",
    "topic": TOPIC,
    "subject": "partner-mtls",
    "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
    "eventTime": "2026-03-02T08:15:42.1234567Z",
    "data": DATA,
    "dataVersion": "1",
}
CE = {
    "id": "ce-1",
    "source": TOPIC,
    "specversion": "1.0",
    "type": "Microsoft.KeyVault.CertificateNewVersionCreated",
    "time": "2026-03-02T08:15:42.1234567Z",
    "data": DATA,
}
EDGES = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]


def event(base: dict[str, Any] = EG, **changes: object) -> dict[str, object]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


def with_data(**changes: object) -> dict[str, object]:
    out = event()
    out["data"] = {**DATA, **changes}
    return out


class TestNumbers:
    @pytest.mark.parametrize(
        "attempts",
        ["²", "٣", pytest.param(HUGE, id="5000-digits"), "-1", pytest.param(10**40, id="1e40")],
    )
    @pytest.mark.parametrize("base", [EG, CE], ids=["eventgrid", "cloudevents"])
    def test_delivery_attempts_int_refuses_reads_as_absent(self, base, attempts):
        """A digit-like count int() refuses (or out of range) is absent, never a ValueError."""
        key = "deliveryattempts" if base is CE else "deliveryAttempts"

        (parsed,) = parse_payload(event(base, **{key: attempts}))

        assert parsed.version == VERSION
        assert parsed.deadletter is None  # the only dead-letter field was unusable

    def test_cloudevents_extension_through_the_trigger_is_handled(self, monkeypatch):
        """The trigger path: `deliveryattempts: "²"` no longer answers 500 (redelivery loop)."""
        handled: list[KeyVaultEvent] = []

        class Handler:
            def handle(self, parsed: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
                handled.append(parsed)
                return AuditRecord(
                    event="rotation.applied", decision=Decision.APPLIED, trigger=trigger
                )

        monkeypatch.setattr(bootstrap, "get_handler", Handler)
        cloud = func.CloudEvent(
            id="ce-1", source=TOPIC, type=str(CE["type"]), specversion="1.0", data=DATA,
            deliveryattempts="²",
        )  # fmt: skip

        on_key_vault_event.build().get_user_function()(cloud)

        assert [e.version for e in handled] == [VERSION]


class TestTimes:
    @pytest.mark.parametrize("when", EDGES)
    @pytest.mark.parametrize("base", [EG, CE], ids=["eventgrid", "cloudevents"])
    def test_calendar_edge_with_offset_is_invalid_naming_the_field(self, base, when):
        """`astimezone(UTC)` overflowed (OverflowError); now an InvalidEventError on the field."""
        key = "time" if base is CE else "eventTime"

        with pytest.raises(InvalidEventError) as info:
            parse_payload(event(base, **{key: when}))

        assert info.value.path == key
        assert "out of range" in info.value.reason

    @pytest.mark.parametrize("hours", [5, -5])
    def test_trigger_datetime_at_the_edge_is_malformed_not_a_500(self, hours):
        """The worker hands a datetime: the same edge is refused, not an OverflowError."""
        edge = datetime(1, 1, 1) if hours > 0 else datetime(9999, 12, 31, 23, 59, 59)
        cloud = func.CloudEvent(
            id="ce-1", source=TOPIC, type=str(CE["type"]), specversion="1.0", data=DATA,
            time=edge.replace(tzinfo=timezone(timedelta(hours=hours))),
        )  # fmt: skip

        with pytest.raises(InvalidEventError) as info:
            from_function_event(cloud)

        assert info.value.path == "event.time"
        assert info.value.event_id == "ce-1"

    def test_ignored_event_with_an_edge_time_still_parses(self):
        """An event certrotate does not act on keeps parsing, without its time."""
        other = event(eventType="Microsoft.KeyVault.SecretNewVersionCreated", eventTime=EDGES[0])

        (parsed,) = parse_payload(other)

        assert parsed.event_time is None


class TestHugeJsonIntegers:
    def test_jsonstream_reads_past_a_huge_integer(self):
        """JsonStream caught only JSONDecodeError: the int-limit ValueError escaped."""
        text = f'{{"n": {HUGE}}}\n{{"n": 1}}\n'

        values = [v for _, v in JsonStream(io.StringIO(text), "f")]

        assert values == [{"n": float("inf")}, {"n": 1}]

    def test_in_an_array_the_stream_goes_on_too(self):
        """In an array the value's boundaries stay known, so the next element is read."""
        text = f'[{json.dumps(event())}, {{"NBF": -{HUGE}}}, {json.dumps(event(id="eg-2"))}]'

        values = [v for _, v in JsonStream(io.StringIO(text), "f")]

        assert len(values) == 3
        assert values[1] == {"NBF": float("-inf")}

    def test_parse_bytes_with_a_huge_nbf_names_the_field(self):
        """A delivery body: the huge NBF is out of range for epoch seconds, by field."""
        body = json.dumps(with_data(NBF=0)).replace('"NBF": 0', f'"NBF": {HUGE}').encode()

        with pytest.raises(InvalidEventError) as info:
            parse_bytes(body)

        assert info.value.path == "data.NBF"

    def test_events_json_output_is_complete_and_the_rest_of_the_file_is_read(self, tmp_path):
        """`certrotate events --json` printed a traceback and half an array; now all of it."""
        path = tmp_path / "e.jsonl"
        path.write_text(
            json.dumps(event()) + "\n"
            + json.dumps(with_data(NBF=0)).replace('"NBF": 0', f'"NBF": {HUGE}') + "\n"
            + json.dumps(event(id="eg-3")) + "\n",
            encoding="utf-8",
        )  # fmt: skip

        result = CliRunner().invoke(cli, ["events", "--json", "--vault", VAULT, str(path)])

        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert [e["event_id"] for e in json.loads(result.stdout)] == ["eg-1", "eg-3"]
        assert "e.jsonl[1].data.NBF" in result.stderr
        assert "1 malformed event(s)" in result.stderr


class TestUnicodeFolding:
    def test_long_s_path_segment_is_not_the_certificate_name(self):
        """`partner-mtlſ` (U+017F) casefolds to `partner-mtls`: it was accepted as the name."""
        forged = with_data(Id=DATA["Id"].replace("partner-mtls", "partner-mtl\u017f"))

        with pytest.raises(InvalidEventError) as info:
            parse_payload(forged)

        assert info.value.path == "data.Id"

    def test_kelvin_sign_host_does_not_match_the_vault(self):
        """`\u212av-rotation-demo.vault.azure.net` (Kelvin sign) lower-cases to `kv-…`."""
        forged = with_data(Id=DATA["Id"].replace("https://kv", "https://\u212av"))

        with pytest.raises(InvalidEventError) as info:
            parse_payload(forged)

        assert info.value.path == "data.Id"

    def test_kelvin_sign_host_does_not_match_an_allow_listed_origin(self):
        """The allow-list path (devstack-style origins) compares ASCII only as well."""
        forged = with_data(Id=DATA["Id"].replace("https://kv", "https://\u212av"))

        with pytest.raises(InvalidEventError):
            parse_payload(forged, allowed_vault_urls=[VAULT])

    @pytest.mark.parametrize(
        ("field", "value"),
        [("VaultName", "kv-rotation-demo\u212a"), ("ObjectName", "partner-mtl\u017f"),
         ("Version", VERSION[:-1] + "\u212a")],
    )  # fmt: skip
    def test_non_ascii_names_are_refused_before_any_comparison(self, field, value):
        """Names and versions are ASCII by Azure's rules, whatever they casefold to."""
        with pytest.raises(InvalidEventError) as info:
            parse_payload(with_data(**{field: value}))

        assert info.value.path in {f"data.{field}", "data.Id"}

    def test_long_s_in_the_event_type_is_not_a_certificate_event(self):
        """`Microſoft.KeyVault.Certificate…` casefolded into a rotate disposition."""
        (parsed,) = parse_payload(
            event(eventType="Micro\u017foft.KeyVault.CertificateNewVersionCreated")
        )

        assert str(parsed.disposition) == "ignore"


def _versioned(version: str, event_id: str) -> dict[str, object]:
    out = event(id=event_id)
    out["data"] = {
        **DATA,
        "Version": version,
        "Id": DATA["Id"].replace(VERSION, version),
    }
    return out


class TestReplayGoesOn:
    def test_poison_line_in_the_middle_every_valid_event_is_handled(self, tmp_path, replay_env):
        """`replay` on JSON Lines stopped at the huge-integer line; now it handles the rest."""
        path = tmp_path / "poison.jsonl"
        poison = json.dumps(_versioned("b2", "eg-b")).replace(
            '"NBF": 1772438400', f'"NBF": {HUGE}'
        )
        path.write_text(
            "\n".join([json.dumps(_versioned("a1", "eg-a")), poison, '{"broken": ',
                       json.dumps(_versioned("c3", "eg-c"))]) + "\n",
            encoding="utf-8",
        )  # fmt: skip

        result = CliRunner(env=replay_env.env).invoke(cli, ["replay", "--json", str(path)])

        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert result.exit_code == 1, result.output
        assert [e.version for e in replay_env.service.handled] == ["a1", "c3"]
        assert [x["decision"] for x in lines] == ["applied", "malformed", "malformed", "applied"]
        assert "replay summary" in result.stderr

    def test_malformed_record_carries_its_own_id_and_a_fresh_correlation(
        self, tmp_path, replay_env
    ):
        """The record for a malformed event carried the previous event's ids; no longer."""
        bad = _versioned("b2", "eg-bad")
        bad["data"]["Id"] = "https://evil.example.com/certificates/partner-mtls/b2"  # type: ignore[index]
        path = tmp_path / "mixed.jsonl"
        path.write_text(
            "\n".join(json.dumps(e) for e in [_versioned("a1", "eg-good"), bad]) + "\n",
            encoding="utf-8",
        )

        result = CliRunner(env=replay_env.env).invoke(cli, ["replay", "--json", str(path)])

        assert result.exit_code == 1
        ((record, context),) = replay_env.sink.seen
        assert record.event == "event.malformed"
        assert record.event_id == "eg-bad"
        assert context["eventgrid_event_id"] == "eg-bad"
        assert record.correlation_id == context["correlation_id"] == context["rotation_id"]
        assert json.loads(result.stdout.splitlines()[1])["event_id"] == "eg-bad"

    def test_malformed_record_of_an_event_without_an_id_binds_none_of_the_previous(
        self, tmp_path, replay_env
    ):
        """No readable id: the context holds no eventgrid_event_id at all (not the last one)."""
        path = tmp_path / "mixed.jsonl"
        path.write_text(
            json.dumps(_versioned("a1", "eg-good")) + "\n" + '{"eventType": 7}\n', encoding="utf-8"
        )

        CliRunner(env=replay_env.env).invoke(cli, ["replay", str(path)])

        ((record, context),) = replay_env.sink.seen
        assert record.event_id is None
        assert "eventgrid_event_id" not in context

    def test_an_unreadable_file_is_one_malformed_item_and_the_next_file_is_read(self, tmp_path):
        """A file that cannot be read (gone since the command checked it) no longer ends the
        stream: it is one malformed item at its own location, then the next file is read."""
        gone = tmp_path / "gone.json"
        good = tmp_path / "good.json"
        good.write_text(json.dumps([_versioned("c3", "eg-c")]), encoding="utf-8")

        items = list(event_stream((gone, good), None, "", (VAULT,)))

        assert [location for location, _ in items] == ["gone.json", "good.json[0]"]
        assert isinstance(items[0][1], InvalidEventError)
        assert "cannot be read" in str(items[0][1])
        assert isinstance(items[1][1], KeyVaultEvent)


def test_iter_file_events_errors_carry_the_event_id(tmp_path):
    """Dead-letter replay and `replay FILE` share this reader: each error knows its event."""
    path = tmp_path / "dl.json"
    path.write_text(json.dumps([with_data(Version="x/y") | {"id": "dl-1"}]), encoding="utf-8")

    ((location, item),) = list(iter_file_events(path))

    assert location == "dl.json[0]"
    assert isinstance(item, InvalidEventError)
    assert item.event_id == "dl-1"


def test_datetime_min_utc_still_parses():
    """Guard: the edge handling refuses only what really overflows."""
    (parsed,) = parse_payload(event(eventTime="0001-01-01T05:00:00+05:00"))

    assert parsed.event_time == datetime.min.replace(tzinfo=UTC)
