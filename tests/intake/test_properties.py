"""Property tests: the intake is total over both schemas, any numbers, calendar-edge times,
Unicode confusables and case-folding characters, nesting, NUL and non-UTF-8 (issue 10)."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotation.domain.errors import InvalidEventError
from rotation.domain.model import Disposition
from rotation.intake.events import parse_payload
from rotation.intake.jsonstream import JsonStream, loads
from tests.intake.bodies import parse_bytes
from tests.intake.checks import check_error, outcome
from tests.payloads import DATA, TOPIC, VERSION

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EG = {
    "id": "eg-1", "topic": TOPIC, "subject": "partner-mtls",
    "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
    "eventTime": "2026-03-02T08:15:42.1234567Z", "data": DATA, "dataVersion": "1",
}  # fmt: skip
CE = {
    "id": "ce-1", "source": TOPIC, "specversion": "1.0",
    "type": "Microsoft.KeyVault.CertificateNearExpiry", "time": "2026-03-02T08:15:42Z",
    "data": DATA,
}  # fmt: skip
SCHEMAS = st.sampled_from([EG, CE])
# Characters that fold, normalise or look like the ASCII ones in names and hosts.
CONFUSABLES = (
    "\u017f\u212a\u212b\u0131\u0130\u0430\u0435\u043e\u0440\u0441\u0455\u0456\u0501"
    "\uff4b\uff56\uff0d\u2010\u2011\u00df\ufb06\u0345\u03c2\u1e9e\u2160\u00b2\u0663"
    "\u200b\u200d\ufeff\u00ad\u0000\t\n "
)
SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
TEXT = st.one_of(st.text(max_size=40), st.text(alphabet=CONFUSABLES, max_size=8), SURROGATES)
# Integers past Python's 4,300-digit int/str limit, built from small draws.
HUGE_DIGITS = st.builds(
    lambda lead, body, zeros: lead + body + "0" * zeros,
    st.sampled_from("123456789"),
    st.text(alphabet="0123456789", max_size=20),
    st.integers(4301, 6000),
)
NUMBERS = st.one_of(
    st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    HUGE_DIGITS, HUGE_DIGITS.map(lambda s: "-" + s), st.text(alphabet="0123456789²٣", max_size=12),
)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
TOP_KEYS = ["id", "ID", "topic", "source", "eventType", "type", "eventTime", "time", "data",
            "specversion", "deliveryAttempts", "deliveryattempts", "deadLetterReason", "subject"]  # fmt: skip
DATA_KEYS = ["Id", "id", "VaultName", "ObjectType", "ObjectName", "Version", "NBF", "EXP"]


@SETTINGS
@given(value=JSON)
def test_any_json_value_is_events_or_an_invalid_event_error(value):
    """Any decoded payload: a list of sane events, or an InvalidEventError."""
    outcome(lambda: parse_payload(value))


@SETTINGS
@given(base=SCHEMAS, key=st.sampled_from(TOP_KEYS), value=JSON)
def test_any_top_level_field_replaced(base, key, value):
    """Either schema with any field set to anything."""
    event = copy.deepcopy(base) | {key: value}
    outcome(lambda: parse_payload(event))


@SETTINGS
@given(base=SCHEMAS, key=st.sampled_from(DATA_KEYS), value=JSON)
def test_any_data_field_replaced(base, key, value):
    """Either schema with any ``data`` field set to anything."""
    event = copy.deepcopy(base)
    event["data"] = {**DATA, key: value}
    outcome(lambda: parse_payload(event))


@SETTINGS
@given(
    base=SCHEMAS,
    when=st.datetimes(min_value=datetime.min, max_value=datetime.max),  # noqa: DTZ901 - the zone comes next
    minutes=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
)
def test_times_at_any_offset_anywhere_in_the_calendar(base, when, minutes):
    """A zoned time parses to its UTC instant, or is refused on its field when that instant
    falls outside years 1-9999."""
    zone = timezone(timedelta(minutes=minutes))
    key = "time" if "specversion" in base else "eventTime"
    event = copy.deepcopy(base) | {key: when.replace(tzinfo=zone).isoformat()}

    result = outcome(lambda: parse_payload(event))

    try:
        expected = when.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        assert isinstance(result, InvalidEventError)
        assert result.path == key
    else:
        assert not isinstance(result, InvalidEventError), result
        assert result[0].event_time == expected


def _spliced(text: str, position: int, char: str, *, replace: bool) -> str:
    position %= len(text) + 1
    return text[:position] + char + text[position + (1 if replace else 0) :]


@SETTINGS
@given(
    target=st.sampled_from(["ObjectName", "VaultName", "Version", "Id-name", "Id-host", "Id-version"]),
    char=st.sampled_from(CONFUSABLES),
    position=st.integers(0, 200),
    replace=st.booleans(),
    allow=st.booleans(),
)  # fmt: skip
def test_confusables_in_names_and_hosts_never_pass_as_the_ascii_name(
    target, char, position, replace, allow
):
    """A folding or look-alike character anywhere in a name, version or host is refused, or
    (whitespace at the ends) stripped: never accepted as, or compared equal to, ASCII."""
    data = dict(DATA)
    vault = "https://kv-rotation-demo.vault.azure.net"
    head, path = data["Id"].split("/certificates/")
    name, version = path.split("/")
    if target.startswith("Id-"):
        part = target.removeprefix("Id-")
        if part == "host":
            head = "https://" + _spliced(
                head.removeprefix("https://"), position, char, replace=replace
            )
        elif part == "name":
            name = _spliced(name, position, char, replace=replace)
        else:
            version = _spliced(version, position, char, replace=replace)
        data["Id"] = f"{head}/certificates/{name}/{version}"
    else:
        data[target] = _spliced(str(data[target]), position, char, replace=replace)
    event = copy.deepcopy(EG) | {"data": data}
    allowed = [vault] if allow else []

    result = outcome(lambda: parse_payload(event, allowed_vault_urls=allowed), allowed)

    if not isinstance(result, InvalidEventError):
        (parsed,) = result
        assert (parsed.object_name, parsed.version) == ("partner-mtls", VERSION)
        assert parsed.vault_url == vault


@SETTINGS
@given(depth=st.integers(1, 50_000), opener=st.sampled_from(["[", '{"a":']))
def test_nesting_of_any_depth(depth, opener):
    """Deep nesting inside ``data`` or at the top: refused (or parsed), never a RecursionError."""
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    body = json.dumps(EG).replace(json.dumps(DATA["NBF"]), nested, 1).encode()
    outcome(lambda: parse_bytes(body))
    outcome(lambda: parse_bytes(nested.encode()))


@SETTINGS
@given(
    data=st.binary(max_size=300),
    prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00"]),
)
def test_any_bytes(data, prefix):
    """Delivery bodies of any bytes (NUL, BOMs, non-UTF-8)."""
    outcome(lambda: parse_bytes(prefix + data))


@SETTINGS
@given(text=st.text(max_size=300), huge=HUGE_DIGITS)
def test_jsonstream_yields_and_never_raises(text, huge):
    """Any text (with a huge integer in it) streams to values or errors, then ends."""
    stream = JsonStream(io.StringIO(text + "\n" + huge + "\n" + text), "f")
    for _, value in stream:
        if isinstance(value, InvalidEventError):
            check_error(value)


@SETTINGS
@given(huge=HUGE_DIGITS, negative=st.booleans())
def test_loads_reads_integers_of_any_size(huge, negative):
    """Beyond the 4,300-digit limit an integer becomes the float it rounds to (+-inf)."""
    value = loads(("-" if negative else "") + huge)

    assert value == (float("-inf") if negative else float("inf"))


@pytest.mark.parametrize("base", [EG, CE], ids=["eventgrid", "cloudevents"])
def test_the_unmutated_events_parse(base):
    """Guard for the properties above: the bases are accepted (so mutations are meaningful)."""
    (parsed,) = parse_payload(copy.deepcopy(base))

    assert parsed.disposition is not Disposition.IGNORE
