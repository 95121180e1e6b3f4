"""Re-drive events through Event Grid (``certrotate replay --to-topic``): filter, batch, publish.

Where ``certrotate replay`` rotates in the operator's process, a re-drive hands dead-lettered
events back to Event Grid, so that they reach the *deployed* function with Event Grid's own
delivery semantics (retries, dead-lettering, one invocation per event, the app's identity).

``redrive`` takes raw events (``(location, decoded JSON value or InvalidEventError)``, from
``iter_raw_files`` or ``iter_raw_deadletter``) and, for each:

1. parses it with the same intake as the Functions trigger; a malformed event is reported (as
   ``certrotate events`` reports it: ``location.field: rule``) and **never published**;
2. keeps only Key Vault certificate events (the event types of
   ``azure.eventgrid.SystemEventNames`` certrotate acts on) for vaults in the allow-list; other
   events are *refused* locally, with the reason;
3. strips the dead-letter fields (``deadLetterReason``, ``deliveryAttempts``, ...), keeps the
   schema it arrived in (Event Grid schema: its envelope fields; CloudEvents: every attribute
   and extension), and batches per schema within Event Grid's limits
   (1 MiB per request, 1 MiB per event: an event that is too big alone is refused locally);
4. publishes each batch through a ``Publisher`` (``rotation.adapters.eventgrid``). A refused
   batch of several events is re-sent one event at a time, so each refusal carries Event Grid's
   reason for *that* event; a transient failure (after the SDK's retries) refuses the batch with
   the reason; refused credentials stop the re-drive (``aborted``, exit code 2): what is
   pending is refused as "not sent" and no more input is read.

The result is a ``RedriveSummary``: published, refused (with reasons), malformed, and
``exit_code``: 0 all published, 1 any refused or malformed, 2 authentication failed (usage
errors are the caller's ``ConfigError``/click errors, also 2). ``dry_run`` does steps 1-3 and
counts what would be published without sending anything. Memory: one batch per schema, plus
one line per refused or malformed event.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from azure.eventgrid import SystemEventNames

from rotation.domain.bindings import vault_key
from rotation.domain.errors import (
    AuthorizationError,
    DependencyError,
    InvalidEventError,
    RotationError,
)
from rotation.domain.model import OutgoingEvent
from rotation.intake.events import MAX_PAYLOAD_BYTES
from rotation.intake.jsonstream import JsonStream
from rotation.intake.schema import parse_event, vault_origins
from rotation.logconfig import redact

if TYPE_CHECKING:
    from rotation.adapters.blobs import DeadLetterBlobSource

__all__ = [
    "ACTED_ON",
    "EXIT_ALL_PUBLISHED",
    "EXIT_AUTH",
    "EXIT_PROBLEMS",
    "MAX_EVENT_BYTES",
    "MAX_REQUEST_BYTES",
    "OutgoingEvent",
    "Problem",
    "Publisher",
    "RawItem",
    "RedriveSummary",
    "iter_raw_deadletter",
    "iter_raw_files",
    "redrive",
    "wire_size",
]

MAX_REQUEST_BYTES = 1024 * 1024  # Event Grid: an event array of at most 1 MB per publish request
MAX_EVENT_BYTES = 1024 * 1024  # ... and at most 1 MB per event
EXIT_ALL_PUBLISHED, EXIT_PROBLEMS, EXIT_AUTH = 0, 1, 2
# The Key Vault certificate events certrotate acts on (the intake's rotate/alert dispositions).
ACTED_ON = frozenset(
    str(name.value).casefold()
    for name in (
        SystemEventNames.KeyVaultCertificateNewVersionCreatedEventName,
        SystemEventNames.KeyVaultCertificateNearExpiryEventName,
        SystemEventNames.KeyVaultCertificateExpiredEventName,
    )
)
_DEADLETTER_FIELDS = frozenset(
    name.casefold()
    for name in (
        "deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "publishTime",
        "lastDeliveryAttemptTime", "metadataVersion",
    )
)  # fmt: skip
_SLACK = 64  # per event: the SDK's time format (e.g. 7 fractional digits become 3 or 6)
_BAD_REQUEST = 400
_SPOOL = "blob.json"

RawItem = tuple[str, object]


class Publisher(Protocol):
    """Sends one batch (one schema) to an Event Grid topic in one request.

    Raises ``AuthorizationError`` (credentials refused), ``DependencyError`` (refused, with the
    service's reason; ``TransientDependencyError`` when retrying later may help) or
    ``ValueError`` (the SDK cannot represent an event).
    """

    def send(self, batch: Sequence[OutgoingEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class Problem:
    """A refused or malformed event: where it came from, its id (when known) and why."""

    location: str
    event_id: str | None
    reason: str


@dataclass(slots=True)
class RedriveSummary:
    """What a re-drive did (or, with ``dry_run``, would do)."""

    dry_run: bool
    published: int = 0
    batches: int = 0
    refused: list[Problem] = field(default_factory=list)
    malformed: list[Problem] = field(default_factory=list)
    aborted: str | None = None  # credentials refused: nothing more was sent
    stopped: str | None = None  # an input failed (unreadable file, dead-letter listing)

    @property
    def exit_code(self) -> int:
        """0 all published; 1 any refused or malformed, or an input failed; 2 credentials refused."""
        if self.aborted is not None:
            return EXIT_AUTH
        problems = self.refused or self.malformed or self.stopped is not None
        return EXIT_PROBLEMS if problems else EXIT_ALL_PUBLISHED

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "dry_run": self.dry_run,
            "published": self.published,
            "batches": self.batches,
            "refused": [_problem(p) for p in self.refused],
            "malformed": [_problem(p) for p in self.malformed],
            "aborted": self.aborted,
            "stopped": self.stopped,
            "exit_code": self.exit_code,
        }


def _problem(p: Problem) -> dict[str, Any]:
    return {"location": p.location, "event_id": p.event_id, "reason": p.reason}


def wire_size(event: OutgoingEvent) -> int:
    """Bytes ``event`` takes in a publish request: an upper estimate.

    The SDK serialises with ``json.dumps`` defaults (``", "``/``": "`` separators, ASCII
    escapes), so this does too, over every field (the Event Grid schema model sends only its
    envelope fields, so extra fields only make the estimate larger), plus a margin for the
    SDK's own time format.
    """
    fields = {k: v for k, v in event.fields.items() if k.strip().casefold() != "topic"}
    return len(json.dumps(fields, default=str).encode()) + _SLACK


def iter_raw_files(paths: Iterable[str | Path]) -> Iterator[RawItem]:
    """Every JSON value in the files (arrays, objects, JSON Lines), ``name[i]`` locations.

    Raises:
        OSError: a file cannot be read.
    """
    for path in paths:
        with Path(path).open(encoding="utf-8-sig", errors="replace") as stream:
            yield from JsonStream(stream, Path(path).name, max_value_chars=MAX_PAYLOAD_BYTES)


def iter_raw_deadletter(source: DeadLetterBlobSource, prefix: str = "") -> Iterator[RawItem]:
    """Every event in the dead-letter blobs under ``prefix``, one blob at a time spooled to disk
    (like ``DeadLetterBlobSource.iter_events``), with ``{container}/{blob}[i]`` locations.

    Raises:
        DependencyError: listing or downloading failed.
    """
    with tempfile.TemporaryDirectory(prefix="certrotate-redrive-") as tmp:
        spool = Path(tmp) / _SPOOL
        for name in source.list_blob_names(prefix):
            with spool.open("wb") as stream:
                source.download(name, stream)
            for location, value in iter_raw_files([spool]):
                yield f"{source.container_name}/{name}{location.removeprefix(_SPOOL)}", value


def _located(location: str, error: InvalidEventError) -> str:
    """``location.field: rule``, as ``certrotate events`` prints a malformed event."""
    path = error.path
    where = f"{location}{'' if path.startswith('[') or not path else '.'}{path}"
    return f"{where}: {error.reason}"


class _Batcher:
    def __init__(
        self,
        publisher: Publisher,
        summary: RedriveSummary,
        progress: Callable[[int], None],
        max_request_bytes: int,
    ) -> None:
        self._publisher, self._summary, self._progress = publisher, summary, progress
        self._max = max_request_bytes
        self._pending: dict[str, tuple[list[OutgoingEvent], int]] = {}

    def add(self, event: OutgoingEvent, size: int) -> None:
        batch, used = self._pending.get(event.schema, ([], 2))  # "[" and "]"
        if batch and used + size + 2 > self._max:  # ", " between events
            self._flush(event.schema)
            batch, used = [], 2
        batch.append(event)
        self._pending[event.schema] = (batch, used + size + (2 if len(batch) > 1 else 0))

    def finish(self) -> None:
        for schema in list(self._pending):
            self._flush(schema)

    def _flush(self, schema: str) -> None:
        batch, _ = self._pending.pop(schema, ([], 0))
        if batch:
            self._send(batch, split_on_refusal=True)
            self._progress(len(batch))

    def _send(self, batch: list[OutgoingEvent], *, split_on_refusal: bool) -> None:
        summary = self._summary
        if summary.aborted is not None:
            self._refuse(batch, f"not sent: {summary.aborted}")
            return
        if summary.dry_run:
            summary.published += len(batch)
            summary.batches += 1
            return
        try:
            self._publisher.send(batch)
        except AuthorizationError as exc:
            summary.aborted = str(redact(str(exc)))
            self._refuse(batch, f"not sent: {summary.aborted}")
            return
        except (DependencyError, ValueError) as exc:
            transient = isinstance(exc, DependencyError) and exc.retryable
            if split_on_refusal and len(batch) > 1 and not transient:
                for event in batch:  # find out which events Event Grid refuses, and why
                    self._send([event], split_on_refusal=False)
                return
            self._refuse(batch, str(redact(str(exc))))
            return
        summary.published += len(batch)
        summary.batches += 1

    def _refuse(self, batch: Sequence[OutgoingEvent], reason: str) -> None:
        self._summary.refused.extend(Problem(e.location, e.event_id, reason) for e in batch)


def redrive(
    items: Iterable[RawItem],
    publisher: Publisher,
    *,
    allowed_vault_urls: Iterable[str],
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    max_event_bytes: int = MAX_EVENT_BYTES,
) -> RedriveSummary:
    """Publish every well-formed, allow-listed certificate event in ``items`` (see the module doc).

    ``progress(n)`` is called as ``n`` more events are settled (published, refused or
    malformed). Never raises for an event, a batch or an input: every outcome is in the
    summary. When reading ``items`` fails (``OSError``, ``RotationError``: an unreadable file,
    a dead-letter container that cannot be listed), what was read is still published and
    ``stopped`` says why the rest was not.
    """
    allowed = list(allowed_vault_urls)
    origins = vault_origins(allowed)
    vaults = {key for url in allowed if (key := vault_key(url))}
    summary = RedriveSummary(dry_run=dry_run)
    tick = progress or (lambda _n: None)
    batcher = _Batcher(publisher, summary, tick, max_request_bytes)
    for location, value in _guarded(items, summary):
        outgoing = _admit(location, value, origins, vaults, summary)
        if outgoing is None:
            tick(1)
            continue
        size = wire_size(outgoing)
        if size > max_event_bytes or size + 2 > max_request_bytes:
            reason = f"the event is about {size} bytes; Event Grid takes at most {max_event_bytes}"
            summary.refused.append(Problem(location, outgoing.event_id, reason))
            tick(1)
            continue
        batcher.add(outgoing, size)
        if summary.aborted is not None:
            break  # credentials refused: read no further (a backlog can be large)
    batcher.finish()
    return summary


def _guarded(items: Iterable[RawItem], summary: RedriveSummary) -> Iterator[RawItem]:
    """``items``, ending (with ``summary.stopped`` set) when reading them fails."""
    try:
        yield from items
    except (OSError, RotationError) as exc:
        summary.stopped = str(redact(f"{type(exc).__name__}: {exc}"))


def _admit(
    location: str,
    value: object,
    origins: frozenset[str],
    vaults: set[str],
    summary: RedriveSummary,
) -> OutgoingEvent | None:
    """The event to publish, or None after recording in ``summary`` why it is not published."""
    if isinstance(value, InvalidEventError):
        summary.malformed.append(Problem(location, None, _located(location, value)))
        return None
    try:
        event = parse_event(value, "", origins)
    except InvalidEventError as exc:
        summary.malformed.append(Problem(location, _id_of(value), _located(location, exc)))
        return None
    if event.event_type.casefold() not in ACTED_ON:
        why = f"not a Key Vault certificate event certrotate acts on ({event.event_type[:80]})"
        summary.refused.append(Problem(location, event.event_id or None, why))
        return None
    if vault_key(event.vault_url) not in vaults:
        why = f"vault {event.vault_url} is not allow-listed (ROTATION_VAULTS)"
        summary.refused.append(Problem(location, event.event_id, why))
        return None
    assert isinstance(value, dict)  # noqa: S101 - parse_event accepted it, so it is an object
    fields = {
        k: v for k, v in value.items() if str(k).strip().casefold() not in _DEADLETTER_FIELDS
    }
    return OutgoingEvent(location, event.event_id, event.schema, fields, event.event_time)


def _id_of(value: object) -> str | None:
    raw = value.get("id") if isinstance(value, dict) else None
    return raw[:128] if isinstance(raw, str) else None
