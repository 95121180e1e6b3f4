"""A local stand-in for the Functions host's Event Grid webhook, for end-to-end tests.

``FunctionsWebhook`` listens on loopback (plain HTTP) and does what the host's Event Grid
extension does with a delivery: no ``aeg-event-type`` header → 400;
``Notification`` → each element of the body (an array, or one object) becomes the trigger's
argument through azure-functions' own converter (``EventGridEventInConverter.decode``, which
builds ``func.EventGridEvent`` or ``func.CloudEvent``) and the registered user function of
``on_key_vault_event`` runs once per event; 202 when every invocation returned, 500 (with the
first exception's text) when one raised. Every delivery's headers and answer are recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from rotation.entrypoints.functions import bp

__all__ = ["FunctionsWebhook", "Received", "registered_trigger"]


def registered_trigger(name: str = "on_key_vault_event") -> Callable[[Any], None]:
    """The user function the blueprint registered under ``name`` (as the host indexes it)."""
    for function in bp._function_builders:
        built = function.build()
        if built.get_function_name() == name:
            return built.get_user_function()
    raise LookupError(name)


@dataclass(frozen=True)
class Received:
    """One delivery the webhook answered."""

    headers: dict[str, str]
    body: Any
    status: int
    error: str | None


class FunctionsWebhook:
    """``http://127.0.0.1:PORT/runtime/webhooks/EventGrid?functionName=on_key_vault_event``."""

    def __init__(self, function: Callable[[Any], None]) -> None:
        self.function = function
        self.received: list[Received] = []
        self.refuse_with: int | None = None  # answer this status without invoking anything
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, error, body = webhook._invoke(headers, raw)
                webhook.received.append(Received(headers, body, status, error))
                payload = (error or "").encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return (
            f"http://127.0.0.1:{port}/runtime/webhooks/EventGrid?functionName=on_key_vault_event"
        )

    def _invoke(self, headers: dict[str, str], raw: bytes) -> tuple[int, str | None, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, "body is not JSON", None
        if self.refuse_with is not None:
            return self.refuse_with, "refused by the test", body
        if headers.get("aeg-event-type") != "Notification":
            return 400, "aeg-event-type header missing or not Notification", body
        first_error = None
        for element in body if isinstance(body, list) else [body]:
            event = EventGridEventInConverter.decode(
                meta.Datum(json.dumps(element), "json"), trigger_metadata=None
            )
            try:
                self.function(event)
            except Exception as exc:  # the host turns any exception into a 500
                first_error = first_error or f"{type(exc).__name__}: {exc}"
        return (500, first_error, body) if first_error else (202, None, body)

    @classmethod
    @contextmanager
    def serve(cls, function: Callable[[Any], None]) -> Iterator[FunctionsWebhook]:
        webhook = cls(function)
        thread = threading.Thread(target=webhook._server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        try:
            yield webhook
        finally:
            webhook._server.shutdown()
            webhook._server.server_close()
            thread.join(timeout=5)
