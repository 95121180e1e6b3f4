"""A small HTTPS server for the stand-ins: standard-library ``ThreadingHTTPServer`` over TLS.

Each stand-in is an ``App`` (``handle(Request) -> Response`` plus its error shape). This module
owns what they share: TLS handshakes off the accept loop, HTTP/1.1 keep-alive, fault injection
before dispatch, and the request log. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from devstack.faults import FaultInjector, FaultKind, FaultRule, LoggedRequest, RequestLog

__all__ = ["App", "Request", "Response", "StandInServer", "json_response"]

_PRE_DISPATCH = (
    FaultKind.STATUS,
    FaultKind.LATENCY,
    FaultKind.RESET,
    FaultKind.CONCURRENT_WRITE,
)


@dataclass(slots=True)
class Request:
    """One parsed request. ``query`` keeps the first value of each parameter."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty). Raises ``ValueError`` on bad JSON."""
        return json.loads(self.body) if self.body else None


@dataclass(slots=True)
class Response:
    """A response to write: status, headers and an optional body."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (``application/json; charset=utf-8``)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return Response(status, body, merged)


class App(Protocol):
    """What a stand-in provides to the server."""

    def handle(self, request: Request) -> Response: ...

    def error(self, status: int, code: str, message: str) -> Response: ...

    def simulate_concurrent_write(self, request: Request) -> None: ...

    def logged(self, request: Request) -> bool: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "certrotate-devstack"
    timeout = 30
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus delayed ACKs
    # stall every response ~40 ms (socketserver applies this to the accepted connection).
    disable_nagle_algorithm = True
    server: _TlsServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log (the request log records what matters)."""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        request = Request(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=f"https://{host}",
        )
        app = self.server.app
        counted = app.logged(request)
        if counted:
            self.server.log.started()
        try:
            rule = self.server.faults.take(request.method, request.path, _PRE_DISPATCH)
            if rule is not None and rule.kind is FaultKind.RESET:
                response = None
            else:
                response = self._apply(app, rule, request)
        finally:
            if counted:
                self.server.log.finished()
        if response is None:
            self._reset(request)
            return
        self._write(request, response)

    def _apply(self, app: App, rule: FaultRule | None, request: Request) -> Response:
        if rule is not None and rule.kind is FaultKind.LATENCY:
            time.sleep(rule.latency)  # the server simulating a slow dependency
        if rule is not None and rule.kind is FaultKind.CONCURRENT_WRITE:
            app.simulate_concurrent_write(request)
        if rule is not None and rule.kind is FaultKind.STATUS:
            response = app.error(rule.status, _fault_code(rule.status), "Injected fault.")
            if rule.retry_after is not None:
                response.headers["Retry-After"] = f"{rule.retry_after:g}"
            return response
        try:
            return app.handle(request)
        except Exception:  # a bug in a stand-in answers 500 instead of killing the connection
            return app.error(500, "InternalServerError", "The stand-in failed unexpectedly.")

    def _write(self, request: Request, response: Response) -> None:
        # Log first: a client that has its answer must find the request in the log.
        self._log(request, response.status)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if request.method != "HEAD" and response.body:
            self.wfile.write(response.body)

    def _reset(self, request: Request) -> None:
        self._log(request, 0)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()

    def _log(self, request: Request, status: int) -> None:
        if self.server.app.logged(request):
            self.server.log.append(LoggedRequest(request.method, request.path, status))

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _dispatch  # noqa: N815


def _fault_code(status: int) -> str:
    return {
        429: "TooManyRequests",
        500: "InternalServerError",
        502: "BadGateway",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
        412: "PreconditionFailed",
    }.get(status, "InjectedFault")


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive clients must not hold up shutdown

    def __init__(
        self, port: int, app: App, context: ssl.SSLContext, faults: FaultInjector, log: RequestLog
    ) -> None:
        self.app = app
        self.context = context
        self.faults = faults
        self.log = log
        super().__init__(("127.0.0.1", port), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs in the per-connection thread, not in the accept loop.
        request.settimeout(30)
        # Headers and body go out in separate writes; without NODELAY, Nagle plus delayed ACKs
        # would add ~40 ms to every response.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        try:
            super().finish_request(tls, client_address)
        except OSError:
            pass
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client hang-ups and TLS failures are not worth a traceback on stderr."""


class LoopbackListener:
    """A server of this package on loopback: ``port`` and ``url`` from its socket server."""

    _server: socketserver.TCPServer

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://127.0.0.1:{self.port}"


class StandInServer(LoopbackListener):
    """One stand-in listening on ``127.0.0.1:port`` (0 picks a free port) in a daemon thread."""

    def __init__(
        self,
        app: App,
        context: ssl.SSLContext,
        *,
        port: int = 0,
        faults: FaultInjector | None = None,
        log: RequestLog | None = None,
    ) -> None:
        self.faults = faults or FaultInjector()
        self.log = log or RequestLog()
        self._server = _TlsServer(port, app, context, self.faults, self.log)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), name="devstack", daemon=True
        )

    def start(self) -> None:
        """Start serving in the background."""
        self._thread.start()

    def close(self) -> None:
        """Close the listening socket of a server that never started."""
        self._server.server_close()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
