"""Event intake: turn Event Grid deliveries into trusted ``KeyVaultEvent``s, or refuse them.

Accepted shapes: the Event Grid schema (object or array), CloudEvents 1.0 structured mode (object
or batch array), and dead-letter blobs (arrays whose events carry ``deadLetterReason`` /
``deliveryAttempts`` / ``lastDeliveryOutcome``, or their CloudEvents lower-case spellings).
Tolerant of PascalCase or camelCase ``data`` keys, ``NBF``/``EXP`` as int, numeric string, null
or absent, 7-digit fractional seconds and unknown fields; strict about what certrotate acts on: a
certificate event's ``data.Id`` must be an https Key Vault URL whose host's first label is
``VaultName`` (or whose origin is an allow-listed vault URL, e.g. the local devstack), naming
the same certificate and version as ``ObjectName``/``Version``. Anything else is an
``InvalidEventError`` whose message names the field path and never echoes the payload.

Limits: ``MAX_PAYLOAD_BYTES`` (1 MiB, Event Grid's own largest batch) per delivery or per event in
a file, ``MAX_EVENTS`` (5000, Event Grid's largest batch) per payload.

Total: every input gives events or an ``InvalidEventError`` (carrying the event's own ``id`` when
readable), never another exception: JSON integers of any size decode (``jsonstream.loads``),
nesting and lone surrogates are refused, and names and hosts are checked as ASCII by Azure's
rules before any comparison (``rotation.intake.schema``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import azure.functions as func

from rotation.domain.errors import InvalidEventError
from rotation.domain.model import KeyVaultEvent
from rotation.intake.jsonstream import JsonStream, loads
from rotation.intake.schema import event_id_of, parse_event, vault_origins

__all__ = [
    "MAX_EVENTS",
    "MAX_PAYLOAD_BYTES",
    "from_function_event",
    "iter_file_events",
    "parse_bytes",
    "parse_payload",
]

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_EVENTS = 5000


def parse_payload(
    payload: object, *, allowed_vault_urls: Iterable[str] = (), max_events: int = MAX_EVENTS
) -> list[KeyVaultEvent]:
    """Normalise an already-decoded delivery (one event object, or an array of them).

    Raises:
        InvalidEventError: the payload or any event in it is malformed, forged or too many.
    """
    origins = vault_origins(allowed_vault_urls)
    if isinstance(payload, dict):
        return [parse_event(payload, "", origins)]
    if not isinstance(payload, list):
        raise InvalidEventError("payload must be a JSON object or an array of events")
    if len(payload) > max_events:
        raise InvalidEventError(f"payload holds {len(payload)} events; the limit is {max_events}")
    return [parse_event(item, f"[{i}]", origins) for i, item in enumerate(payload)]


def parse_bytes(
    data: bytes,
    *,
    allowed_vault_urls: Iterable[str] = (),
    max_bytes: int = MAX_PAYLOAD_BYTES,
    max_events: int = MAX_EVENTS,
) -> list[KeyVaultEvent]:
    """Decode one delivery body (UTF-8 JSON, at most ``max_bytes``) and normalise it.

    Raises:
        InvalidEventError: too large, not UTF-8 JSON, or malformed (see ``parse_payload``).
    """
    if len(data) > max_bytes:
        raise InvalidEventError(f"payload is {len(data)} bytes; the limit is {max_bytes}")
    try:
        payload = loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidEventError("payload is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"payload is not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InvalidEventError("payload is nested too deeply") from None
    return parse_payload(payload, allowed_vault_urls=allowed_vault_urls, max_events=max_events)


def from_function_event(
    event: func.EventGridEvent | func.CloudEvent, *, allowed_vault_urls: Iterable[str] = ()
) -> KeyVaultEvent:
    """Normalise the object the Functions Event Grid trigger hands the function.

    Raises:
        InvalidEventError: the event is malformed or forged.
    """
    obj: dict[str, object]
    if isinstance(event, func.CloudEvent):
        obj = {**event.extension_attrs, "specversion": event.specversion, "id": event.id}
        obj |= {"source": event.source, "type": event.type, "time": event.time}
    else:
        obj = {"id": event.id, "topic": event.topic, "eventType": event.event_type}
        obj["eventTime"] = event.event_time
    try:
        data = event.get_json()
    except (ValueError, RecursionError):  # the host's own JSON decoding of data failed
        raise InvalidEventError(
            "is not JSON", path="event.data", event_id=event_id_of(obj)
        ) from None
    obj |= {"subject": event.subject, "data": data}
    return parse_event(obj, "event", vault_origins(allowed_vault_urls))


def iter_file_events(
    path: str | Path, *, allowed_vault_urls: Iterable[str] = ()
) -> Iterator[tuple[str, KeyVaultEvent | InvalidEventError]]:
    """Stream the events of a file in constant memory, with a location like ``events.json[12]``.

    Reads a JSON array (e.g. a dead-letter blob), a single object, or JSON Lines / concatenated
    values. A malformed event is yielded as an ``InvalidEventError`` and reading goes on; broken
    JSON syntax ends a JSON array (its boundaries are lost) but only skips a line of JSON Lines.
    Each event is capped at ``MAX_PAYLOAD_BYTES``. ``OSError`` propagates.
    """
    origins = vault_origins(allowed_vault_urls)
    name = Path(path).name
    with Path(path).open(encoding="utf-8-sig", errors="replace") as stream:
        for location, value in JsonStream(stream, name, max_value_chars=MAX_PAYLOAD_BYTES):
            if isinstance(value, InvalidEventError):
                yield location, value
                continue
            try:
                yield location, parse_event(value, "", origins)
            except InvalidEventError as exc:
                yield location, exc
