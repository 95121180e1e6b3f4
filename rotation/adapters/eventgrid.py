"""Publish events to an Event Grid topic with ``azure.eventgrid.EventGridPublisherClient``.

The only code that knows ``azure.eventgrid``. Each event goes out in the schema it arrived in:
the Event Grid schema as ``azure.eventgrid.EventGridEvent``, CloudEvents 1.0 as
``azure.core.messaging.CloudEvent``; ``send`` takes one batch of one schema. Authentication is
a ``TokenCredential`` (``DefaultAzureCredential`` in Azure: the identity needs the "EventGrid
Data Sender" role on the topic) or the topic's access key read from an environment variable
whose *name* the operator gives; the key itself never appears on a command line, in a message
or a ``repr``.

SDK errors become the domain's ``DependencyError`` family, with the service's own error code and
message (Event Grid's ``{"error": {"code", "message"}}``), never a credential:
401/403 ``AuthorizationError``; 429/5xx and connection failures (after the SDK's retries)
``TransientDependencyError``; any other refusal (400 bad schema, 413 too large) ``DependencyError``.

Batching within Event Grid's size limits is the re-drive's job (``rotation.entrypoints.redrive``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from rotation.adapters.errors import EVENT_GRID, translate
from rotation.domain.errors import (
    AuthorizationError,
    ConfigError,
    DependencyError,
    TransientDependencyError,
)
from rotation.domain.model import OutgoingEvent
from rotation.logconfig import redact

__all__ = ["EventGridPublisher", "open_publisher", "to_sdk"]

_SERVICE = "event grid"
_CE_ATTRIBUTES = {
    "id", "source", "type", "specversion", "time", "subject", "data", "data_base64",
    "datacontenttype", "dataschema",
}  # fmt: skip
# The SDK hands per-call keywords to its CloudEvent model too, which logs each as unknown.
_SDK_SERIALIZER_LOGGER = "azure.eventgrid._legacy._generated._serialization"


def to_sdk(event: OutgoingEvent) -> EventGridEvent | CloudEvent[Any]:
    """The SDK model for ``event``: ``EventGridEvent`` or ``azure.core.messaging.CloudEvent``.

    Field names are matched case-insensitively (as the intake reads them). The Event Grid
    schema's ``topic`` is left out: the topic stamps its own. Raises ``ValueError`` when the SDK
    refuses the envelope (e.g. a CloudEvents extension name that is not lower-case alphanumeric).
    """
    folded = {str(k).strip().casefold(): v for k, v in event.fields.items()}
    if event.schema == "eventgrid":
        return EventGridEvent(
            subject=str(folded.get("subject") or ""),
            event_type=str(folded.get("eventtype")),
            data=folded.get("data"),
            data_version=str(folded.get("dataversion") or "1"),
            id=str(folded.get("id")),
            event_time=event.event_time or folded.get("eventtime"),
        )
    extensions = {k: v for k, v in folded.items() if k not in _CE_ATTRIBUTES}
    return CloudEvent(
        source=str(folded.get("source")),
        type=str(folded.get("type")),
        specversion="1.0",
        id=str(folded.get("id")),
        time=event.event_time,
        subject=folded.get("subject"),
        data=folded.get("data"),
        datacontenttype=folded.get("datacontenttype"),
        dataschema=folded.get("dataschema"),
        extensions=extensions or None,
    )


class _DropUnknownKeyword(logging.Filter):
    """Drops the SDK's "connection_verify is not a known attribute" lines for our call options."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and args[0] in _CALL_OPTIONS)


_CALL_OPTIONS = frozenset({"connection_verify", "retry_total"})
_FILTER = _DropUnknownKeyword()


class EventGridPublisher:
    """Sends batches to one Event Grid topic (Basic tier) through ``EventGridPublisherClient``."""

    def __init__(
        self, client: EventGridPublisherClient, endpoint: str, **call_options: Any
    ) -> None:
        self._client, self.endpoint, self._options = client, endpoint, call_options
        if call_options:
            logging.getLogger(_SDK_SERIALIZER_LOGGER).addFilter(_FILTER)  # once: same object

    def __repr__(self) -> str:
        return f"EventGridPublisher(endpoint={self.endpoint!r})"

    def send(self, batch: Sequence[OutgoingEvent]) -> None:
        """Publish one batch (all of one schema) in one request.

        Raises:
            AuthorizationError: 401/403, or no token could be obtained.
            TransientDependencyError: 429/5xx or no connection (after the SDK's retries).
            DependencyError: Event Grid refused the batch (400 bad schema, 413 too large, ...).
            ValueError: a batch mixes schemas or the SDK refuses an envelope.
        """
        if not batch:
            return
        if len({e.schema for e in batch}) != 1:
            raise ValueError("a batch must hold events of one schema")
        models: list[Any] = [to_sdk(e) for e in batch]
        try:
            self._client.send(models, **self._options)
        except AzureError as exc:
            raise _translate(exc, self.endpoint) from exc

    def close(self) -> None:
        """Close the SDK client's session."""
        self._client.close()


def open_publisher(
    endpoint: str,
    *,
    env: Mapping[str, str],
    key_env: str | None = None,
    credential: Any = None,
    ca_bundle: str | None = None,
    retry_total: int | None = None,
) -> EventGridPublisher:
    """A publisher for the topic at ``endpoint`` (``https://{topic}.{region}-1.eventgrid.azure.net/api/events``).

    With ``key_env`` the access key is read from ``env[key_env]``; otherwise ``credential`` (a
    ``TokenCredential``; the caller builds ``DefaultAzureCredential``) is used. ``ca_bundle``
    trusts a local CA (the devstack only); ``retry_total`` overrides the SDK's retry count.

    Raises:
        ConfigError: the endpoint is not an https URL, the key variable is unset or empty, or
            neither a key variable nor a credential was given (messages name the variable,
            never its value).
    """
    parts = urlsplit(endpoint.strip())
    problems = []
    if parts.scheme.lower() != "https" or not parts.hostname or parts.query or parts.fragment:
        problems.append("the Event Grid topic endpoint must be an https URL without a query")
    if key_env is not None:
        key = env.get(key_env, "").strip()
        if not key:
            problems.append(f"{key_env} is not set: it must hold the topic's access key")
        auth: Any = AzureKeyCredential(key) if key else None
    else:
        auth = credential
        if auth is None:
            problems.append("give a token credential or the name of a key variable")
    if problems:
        raise ConfigError(problems)
    client = EventGridPublisherClient(endpoint.strip(), auth)
    options: dict[str, Any] = {}
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    if retry_total is not None:
        options["retry_total"] = retry_total
    return EventGridPublisher(client, endpoint.strip(), **options)


def _translate(exc: AzureError, endpoint: str) -> DependencyError:
    host = urlsplit(endpoint).hostname or "the topic"
    detail = _service_message(exc)
    status = getattr(exc, "status_code", None)
    error = translate(exc, service=EVENT_GRID, operation="publish", name=host)
    if isinstance(error, AuthorizationError):
        why = f"HTTP {status}" if status else "no token"
        return AuthorizationError(
            f"Event Grid topic {host} refused the credentials ({why}{detail})",
            service=_SERVICE, operation="publish", status_code=status,
        )  # fmt: skip
    kind = (
        TransientDependencyError
        if isinstance(error, TransientDependencyError)
        else DependencyError
    )
    what = f"HTTP {status}" if status else type(exc).__name__
    return kind(
        f"Event Grid topic {host} refused the batch ({what}{detail})",
        service=_SERVICE, operation="publish", status_code=status,
    )  # fmt: skip


def _service_message(exc: AzureError) -> str:
    """``: {code}: {message}`` from Event Grid's error body (redacted), or nothing."""
    if not isinstance(exc, HttpResponseError) or exc.error is None:
        return ""
    code, message = exc.error.code or "", exc.error.message or ""
    text = ": ".join(part for part in (code, message) if part)
    return f": {redact(text)}" if text else ""
