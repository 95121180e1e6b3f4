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

from collections.abc import Iterable, Iterator
from pathlib import Path

from rotation.domain.errors import InvalidEventError
from rotation.domain.model import KeyVaultEvent
from rotation.intake.jsonstream import JsonStream
from rotation.intake.schema import parse_event, vault_origins

__all__ = [
    "MAX_EVENTS",
    "MAX_PAYLOAD_BYTES",
    "iter_file_events",
    "parse_object",
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


def parse_object(
    obj: dict[str, object], *, path: str = "event", allowed_vault_urls: Iterable[str] = ()
) -> KeyVaultEvent:
    """Normalise one event object (e.g. the fields of a Functions trigger's event; the
    entrypoint converts the host's types). Error paths start with ``path``.

    Raises:
        InvalidEventError: the event is malformed or forged.
    """
    return parse_event(obj, path, vault_origins(allowed_vault_urls))


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
