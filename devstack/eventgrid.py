"""An Event Grid custom topic stand-in: publish with the unmodified SDK, deliver like Event Grid.

Publishing (what ``azure.eventgrid.EventGridPublisherClient`` sends to a Basic-tier topic):
``POST /api/events?api-version=2018-01-01`` over HTTPS on loopback, authenticated by
``Authorization: Bearer <token>`` or ``aeg-sas-key: <key>``. The topic has one input schema,
as a real topic does: ``EventGridSchema`` (a JSON array, ``application/json``) or
``CloudEventSchemaV1_0`` (``application/cloudevents-batch+json``, or one object as
``application/cloudevents+json``). Answers: 200 with an empty body; 400 for a body that does not
match the input schema (wrong content type, not an array, a required field missing); 401 without
valid credentials; 413 when the body or one event exceeds 1 MiB. Error bodies have Event Grid's
shape, ``{"error": {"code", "message", "details": [{"code", "message"}]}}``.

Delivery (one event per request, batching off, as the project's subscriptions are set up): each
accepted event is queued for the subscription and delivered by ``EventGridTopic.deliver_pending``
(a synchronous pump, so tests decide when delivery happens and never wait for it). A delivery is
a POST with ``aeg-event-type: Notification``, ``aeg-subscription-name`` (upper case),
``aeg-delivery-count``, ``aeg-metadata-version`` and ``aeg-data-version``; Event Grid schema
events go as a one-element array with ``topic`` and ``metadataVersion`` stamped, CloudEvents as
one ``application/cloudevents+json`` object. 200-204 is success; 400, 401, 403 and 413 are not
retried; anything else (5xx, 429, 404, timeouts, refused connections) is retried after the
subscription's schedule (the ``sleep`` function is injectable) up to ``max_delivery_attempts``.
An event that is not delivered is dead-lettered as Event Grid does it: one blob per delivery,
``{SUBSCRIPTION-NAME}/{Y}/{M}/{D}/{H}/{guid}.json`` (UTC, not zero-padded) in the configured
container, holding a JSON array of the event plus ``deadLetterReason``, ``deliveryAttempts``,
``lastDeliveryOutcome``, ``publishTime`` and ``lastDeliveryAttemptTime`` (lower-case names for
CloudEvents). Not modelled: the time-to-live, probation, jittered timing, the validation
handshake, filters, more than one subscription. The ``deadLetterReason`` for a non-retried
status (``"NonRetriableStatus"``) and the status-to-``lastDeliveryOutcome`` mapping are
best-effort readings of the docs, not confirmed values.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient

from devstack.server import Request, Response, StandInServer, json_response
from devstack.tls import ServerTls

__all__ = [
    "CLOUDEVENTS",
    "DEFAULT_RETRY_SCHEDULE",
    "EVENTGRID",
    "MAX_BODY_BYTES",
    "MAX_EVENT_BYTES",
    "DeadLetterDestination",
    "Delivery",
    "EventGridTopic",
    "EventGridTopicApp",
    "Subscription",
]

EVENTGRID = "EventGridSchema"
CLOUDEVENTS = "CloudEventSchemaV1_0"
MAX_BODY_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024
API_VERSION = "2018-01-01"
# Event Grid's documented schedule (seconds); it then retries every 12 h up to 24 h.
DEFAULT_RETRY_SCHEDULE = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0)
_EVERY_12H = 43200.0
_NOT_RETRIED = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 413: "PayloadTooLarge"}
_EG_REQUIRED = ("id", "subject", "eventType", "eventTime", "dataVersion")
_CE_REQUIRED = ("id", "source", "type", "specversion")
_CE_DEADLETTER = ("deadletterreason", "deliveryattempts", "lastdeliveryoutcome", "publishtime")
_EG_DEADLETTER = ("deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "publishTime")


@dataclass(frozen=True, slots=True)
class DeadLetterDestination:
    """A blob container (Azure Storage or Azurite) that takes undeliverable events."""

    connection_string: str = field(repr=False)
    container: str


@dataclass(frozen=True, slots=True)
class Subscription:
    """The topic's one event subscription: where to deliver, how often to try, where to give up.

    ``retry_schedule`` holds the waits before the 2nd, 3rd, ... attempt (the last value repeats).
    """

    name: str
    endpoint: str
    max_delivery_attempts: int = 30
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    deadletter: DeadLetterDestination | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_delivery_attempts <= 30:
            raise ValueError("max_delivery_attempts must be between 1 and 30")
        if not self.name:
            raise ValueError("a subscription needs a name")

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (2 and up)."""
        schedule = self.retry_schedule or (_EVERY_12H,)
        return schedule[min(attempt - 2, len(schedule) - 1)]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one event: delivered, or dead-lettered (``deadletter_blob``), or dropped."""

    event_id: str
    attempts: int
    statuses: tuple[int | None, ...]  # one per attempt; None: no HTTP answer
    delivered: bool
    outcome: str  # "Delivered" or Event Grid's lastDeliveryOutcome
    deadletter_blob: str | None = None


@dataclass(slots=True)
class _Queued:
    event: dict[str, Any]
    schema: str
    published_at: datetime


def _error(status: int, code: str, message: str) -> Response:
    detail = {"code": code, "message": message}
    return json_response(status, {"error": {**detail, "details": [detail]}})


class EventGridTopicApp:
    """The publishing half: authenticate, check limits and the input schema, queue."""

    def __init__(
        self,
        *,
        topic_id: str,
        input_schema: str,
        token: str,
        key: str,
        clock: Callable[[], datetime],
    ) -> None:
        if input_schema not in {EVENTGRID, CLOUDEVENTS}:
            raise ValueError(f"input_schema must be {EVENTGRID} or {CLOUDEVENTS}")
        self.topic_id, self.input_schema = topic_id, input_schema
        self._token, self._key, self._clock = token, key, clock
        self._lock = threading.Lock()
        self._queue: deque[_Queued] = deque()
        self.accepted: list[dict[str, Any]] = []  # every accepted event, in order

    def error(self, status: int, code: str, message: str) -> Response:
        """Event Grid's error body."""
        return _error(status, code, message)

    def simulate_concurrent_write(self, request: Request) -> None:
        """Nothing to race with."""

    def logged(self, request: Request) -> bool:  # noqa: ARG002 - App protocol
        """Every request goes into the request log."""
        return True

    def take(self) -> list[_Queued]:
        """Everything queued for delivery, oldest first (and forget it)."""
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        return items

    def handle(self, request: Request) -> Response:
        """``POST /api/events``: 200 when every event was accepted, else Event Grid's errors."""
        if request.path.rstrip("/") != "/api/events":
            return _error(404, "NotFound", "The requested resource does not exist.")
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", "Only POST is supported.")
        if not self._authorised(request.headers):
            return _error(
                401, "Unauthorized", "The request authorization key is not authorized. Supply "
                "a valid aeg-sas-key header or an Authorization: Bearer token.",
            )  # fmt: skip
        if request.query.get("api-version") != API_VERSION:
            return _error(
                400, "BadRequest", f"The api-version query parameter must be {API_VERSION}."
            )
        if len(request.body) > MAX_BODY_BYTES:
            return _error(
                413, "RequestEntityTooLarge",
                f"The maximum size for the input event array is {MAX_BODY_BYTES} bytes; "
                f"this request has {len(request.body)}.",
            )  # fmt: skip
        try:
            events = self._events(request)
        except ValueError as exc:
            return _error(400, "BadRequest", str(exc))
        for index, event in enumerate(events):
            size = len(json.dumps(event, separators=(",", ":")).encode())
            if size > MAX_EVENT_BYTES:
                return _error(
                    413, "RequestEntityTooLarge",
                    f"Event [{index}] is {size} bytes; the maximum event size is {MAX_EVENT_BYTES}.",
                )  # fmt: skip
        now = self._clock()
        with self._lock:
            for event in events:
                stamped = self._stamp(event)
                self.accepted.append(stamped)
                self._queue.append(_Queued(stamped, self.input_schema, now))
        return Response(200)

    def _authorised(self, headers: dict[str, str]) -> bool:
        key = headers.get("aeg-sas-key")
        if key is not None:
            return key == self._key
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token == self._token

    def _events(self, request: Request) -> list[dict[str, Any]]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            body = json.loads(request.body)
        except ValueError:
            raise ValueError("The request body is not valid JSON.") from None
        if self.input_schema == EVENTGRID:
            if content_type != "application/json":
                raise ValueError(
                    f"This topic expects events in the {EVENTGRID} schema "
                    f"(Content-Type application/json), not {content_type or 'no content type'}."
                )
            return self._checked(body, _EG_REQUIRED, "EventGridEvent")
        if content_type == "application/cloudevents+json" and isinstance(body, dict):
            body = [body]
        elif content_type != "application/cloudevents-batch+json":
            raise ValueError(
                f"This topic expects events in the {CLOUDEVENTS} schema (Content-Type "
                f"application/cloudevents-batch+json), not {content_type or 'no content type'}."
            )
        events = self._checked(body, _CE_REQUIRED, "CloudEvent")
        for index, event in enumerate(events):
            if event["specversion"] != "1.0":
                raise ValueError(f"[{index}].specversion must be 1.0.")
        return events

    def _checked(self, body: object, required: Sequence[str], kind: str) -> list[dict[str, Any]]:
        if not isinstance(body, list) or not body:
            raise ValueError(f"The request body must be a non-empty JSON array of {kind}s.")
        for index, event in enumerate(body):
            if not isinstance(event, dict):
                raise ValueError(f"[{index}] must be a JSON object ({kind}).")  # noqa: TRY004
            for name in required:
                if not isinstance(event.get(name), str) or not event[name]:
                    raise ValueError(f"Required property '{name}' was not set in [{index}].")
            if kind == "EventGridEvent":
                if "data" not in event:
                    raise ValueError(f"Required property 'data' was not set in [{index}].")
                topic = event.get("topic")
                if topic not in {None, ""} and str(topic).lower() != self.topic_id.lower():
                    raise ValueError(f"[{index}].topic does not name this topic.")
        return body

    def _stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.input_schema == CLOUDEVENTS:
            return dict(event)
        return {**event, "topic": self.topic_id, "metadataVersion": "1"}


class EventGridTopic:
    """A running topic stand-in (HTTPS on 127.0.0.1) with one subscription and its delivery."""

    def __init__(
        self,
        tls: ServerTls,
        subscription: Subscription,
        *,
        topic_id: str,
        token: str,
        key: str | None = None,
        input_schema: str = EVENTGRID,
        port: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.subscription = subscription
        self.key = key or secrets.token_urlsafe(32)
        self.app = EventGridTopicApp(
            topic_id=topic_id, input_schema=input_schema, token=token, key=self.key, clock=clock
        )
        self._sleep, self._clock = sleep, clock
        self._server = StandInServer(self.app, tls.server_context(), port=port)
        self.log, self.faults = self._server.log, self._server.faults
        self.deliveries: list[Delivery] = []

    @classmethod
    @contextlib.contextmanager
    def start(
        cls, tls: ServerTls, subscription: Subscription, **kwargs: Any
    ) -> Iterator[EventGridTopic]:
        """Serve until the block ends (see ``__init__`` for the keywords)."""
        topic = cls(tls, subscription, **kwargs)
        topic._server.start()
        try:
            yield topic
        finally:
            topic._server.stop()

    @property
    def endpoint(self) -> str:
        """The topic endpoint to give ``EventGridPublisherClient``."""
        return f"{self._server.url}/api/events"

    @property
    def topic_id(self) -> str:
        """The topic's ARM id (stamped as ``topic`` on Event Grid schema events)."""
        return self.app.topic_id

    def deliver_pending(self) -> list[Delivery]:
        """Deliver everything published so far (retrying, then dead-lettering); return the results."""
        with httpx.Client(timeout=self.subscription.timeout) as client:
            results = [self._deliver(client, queued) for queued in self.app.take()]
        self.deliveries.extend(results)
        return results

    def _deliver(self, client: httpx.Client, queued: _Queued) -> Delivery:
        sub = self.subscription
        statuses: list[int | None] = []
        outcome = "Busy"
        for attempt in range(1, sub.max_delivery_attempts + 1):
            if attempt > 1:
                self._sleep(sub.wait_before(attempt))
            status, outcome = self._attempt(client, queued, attempt - 1)
            statuses.append(status)
            if outcome == "Delivered":
                return Delivery(queued.event["id"], attempt, tuple(statuses), True, outcome)
            if status in _NOT_RETRIED:
                break
        attempts = len(statuses)
        retried_out = statuses[-1] not in _NOT_RETRIED
        reason = "MaxDeliveryAttemptsExceeded" if retried_out else "NonRetriableStatus"
        blob = self._deadletter(queued, reason, attempts, outcome)
        return Delivery(queued.event["id"], attempts, tuple(statuses), False, outcome, blob)

    def _attempt(
        self, client: httpx.Client, queued: _Queued, delivered_before: int
    ) -> tuple[int | None, str]:
        event = queued.event
        headers = {
            "aeg-event-type": "Notification",
            "aeg-subscription-name": self.subscription.name.upper(),
            "aeg-delivery-count": str(delivered_before),
            "aeg-metadata-version": "1",
            "aeg-data-version": str(event.get("dataVersion") or event.get("dataversion") or ""),
        }
        if queued.schema == CLOUDEVENTS:
            headers["Content-Type"] = "application/cloudevents+json; charset=utf-8"
            body = json.dumps(event)
        else:
            headers["Content-Type"] = "application/json; charset=utf-8"
            body = json.dumps([event])
        try:
            response = client.post(self.subscription.endpoint, content=body, headers=headers)
        except httpx.TimeoutException:
            return None, "TimedOut"
        except httpx.HTTPError:
            return None, "SocketError"
        status = response.status_code
        if 200 <= status <= 204:
            return status, "Delivered"
        outcome = _NOT_RETRIED.get(status) or {404: "NotFound", 408: "TimedOut"}.get(
            status, "Busy"
        )
        return status, outcome

    def _deadletter(self, queued: _Queued, reason: str, attempts: int, outcome: str) -> str | None:
        destination = self.subscription.deadletter
        if destination is None:
            return None  # Event Grid drops what it can neither deliver nor dead-letter
        now = self._clock().astimezone(UTC)
        names = _CE_DEADLETTER if queued.schema == CLOUDEVENTS else _EG_DEADLETTER
        record = dict(queued.event)
        record.update(
            zip(names, (reason, attempts, outcome, _iso(queued.published_at)), strict=True)
        )
        last = (
            "lastdeliveryattempttime"
            if queued.schema == CLOUDEVENTS
            else "lastDeliveryAttemptTime"
        )
        record[last] = _iso(now)
        name = (
            f"{self.subscription.name.upper()}/{now.year}/{now.month}/{now.day}/{now.hour}/"
            f"{uuid.uuid4()}.json"
        )
        container = ContainerClient.from_connection_string(
            destination.connection_string, destination.container
        )
        try:
            with container:
                container.upload_blob(name, json.dumps([record]).encode(), overwrite=False)
        except AzureError:
            return None  # destination unavailable: Event Grid eventually drops the event
        return name


def _iso(value: datetime) -> str:
    """Event Grid's 7-digit fractional seconds, UTC, ``Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0Z"
