"""A gateway stand-in: an HTTPS server on loopback that admits mTLS callers by thumbprint.

API Management checks an inbound caller's certificate with the ``validate-client-certificate``
policy; the inbound rotation keeps that policy's ``<identity thumbprint="..."/>`` list in step with
Key Vault. ``Gateway`` is the caller's side of that story: a TLS server on ``127.0.0.1`` (a free
port) that asks every caller for a certificate and admits a request only when the SHA-1 thumbprint
of the presented leaf is one of the thumbprints a provider returns *at that moment*. A test can
then show that a caller with a renewed certificate is refused before the rotation and admitted
after it, with no restart in between.

    with Gateway(policy_thumbprints(stack, PolicyScope("apim-devstack-1")), stack.tls) as gw:
        assert call(gw, client) == 200

How the TLS layer behaves, and why pyOpenSSL
--------------------------------------------
APIM's gateway *negotiates* the client certificate (it sends a CertificateRequest) and leaves the
verdict to the policy: a certificate from any issuer completes the handshake, and the policy's
identities decide. Python's ``ssl`` cannot do that: ``CERT_REQUIRED``/``CERT_OPTIONAL`` verify the
chain against loaded CAs and abort the handshake when it does not build, and it has no verify
callback. pyOpenSSL (already used by the canary) has one: the server sends a CertificateRequest
(``VERIFY_PEER``), the callback accepts every chain, and the handshake completes with or without
a certificate. So every refusal here is an HTTP answer, never a TLS alert.

Answers (one request per connection, then ``Connection: close``):

* 200 with ``{"statusCode": 200, "thumbprint": "..."}`` when the leaf's thumbprint is one of the
  provider's (compared case-insensitively).
* 401 with ``{"statusCode": 401, "message": "Invalid client certificate"}`` when it is not, or when
  the caller presented no certificate. APIM's documentation does not spell out the response of a
  failed ``validate-client-certificate``; this is the stand-in's APIM-like choice (the status and
  body shape of APIM's other validation failures).
* 500 with ``{"statusCode": 500, "message": "..."}`` when the provider fails (a policy that does
  not parse, say), so a broken policy is never mistaken for a refusal.

The other claims of the policy (``validate-trust``, validity dates, revocation, subject...) are
not checked: the stand-in enforces the thumbprint identities only, the part the rotation edits.
Each request is recorded in ``Gateway.calls`` (thumbprint or None, status).

Reading a policy from the devstack
----------------------------------
``policy_thumbprints(stack, scope)`` is a provider that reads the policy stored in the ARM
stand-in on every request (through ``stored_policy``, the one function that knows where the state
keeps policies) and returns its thumbprint identities (``rotation.domain.policies``). It reads one
scope's document: APIM composes the effective policy of an operation from the global, product,
API and operation documents (``<base />``), which the stand-in does not do.

The client
----------
``call(gateway, identity)`` makes one request presenting ``identity`` (an ``Issued`` certificate
with its key, a PEM bundle with the key and certificates, or None for no certificate) and returns
the status. It uses the standard library's ``ssl``, which loads a client certificate from files
only: the key is written to a private temporary directory (0700, the file 0600) for the
duration of the handshake and removed with it.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import select
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL, crypto

from devstack.pki import Issued
from devstack.server import LoopbackListener
from rotation.domain.policies import find_thumbprints

if TYPE_CHECKING:
    from devstack.stack import Devstack
    from devstack.tls import ServerTls

__all__ = [
    "REFUSED",
    "Gateway",
    "GatewayCall",
    "PolicyScope",
    "call",
    "policy_thumbprints",
    "stored_policy",
    "thumbprint_of",
]

REFUSED = 401
_REFUSAL = {"statusCode": REFUSED, "message": "Invalid client certificate"}
_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_T = TypeVar("_T")

ThumbprintProvider = Callable[[], Iterable[str]]


def thumbprint_of(certificate: x509.Certificate) -> str:
    """The SHA-1 thumbprint of ``certificate`` (upper-case hex), as APIM shows it."""
    return certificate.fingerprint(hashes.SHA1()).hex().upper()


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One request the gateway answered: the presented leaf's thumbprint (None: no certificate),
    the method and path, and the status it got."""

    thumbprint: str | None
    method: str
    path: str
    status: int


class _GatewayServer(socketserver.ThreadingTCPServer):
    # Connection threads are joined by server_close (non-daemon + block_on_close): each one is
    # bounded by io_timeout, and nothing is left running when the context exits.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = False

    def __init__(self, port: int, serve: Callable[[socket.socket], None]) -> None:
        self.serve = serve
        super().__init__(("127.0.0.1", port), socketserver.BaseRequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        del client_address
        self.serve(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client hang-ups and TLS failures are not worth a traceback on stderr."""


class Gateway(LoopbackListener):
    """The gateway stand-in (see the module docstring); a context manager that serves until exit.

    ``thumbprints`` is asked on every request; ``tls`` is the devstack's server TLS (its
    certificate is presented, its ``ca_pem`` is what callers trust); ``port`` 0 picks a free one;
    ``io_timeout`` bounds each connection (handshake, request, answer).
    """

    def __init__(
        self,
        thumbprints: ThumbprintProvider,
        tls: ServerTls,
        *,
        port: int = 0,
        io_timeout: float = 10.0,
    ) -> None:
        self.ca_pem: Path = tls.ca_pem
        self.calls: list[GatewayCall] = []
        self._thumbprints = thumbprints
        self._io_timeout = io_timeout
        self._context = _server_context(tls)
        self._server = _GatewayServer(port, self._serve)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="devstack-gateway", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, wait for open connections to finish, close the listening socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    # --- the policy decision -------------------------------------------------------------------

    def decide(self, leaf: x509.Certificate | None) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for a request presenting ``leaf`` (None: no certificate)."""
        if leaf is None:
            return REFUSED, dict(_REFUSAL)
        thumbprint = thumbprint_of(leaf)
        try:
            allowed = {value.upper() for value in self._thumbprints()}
        except Exception as exc:  # the stand-in answers 500 instead of refusing by accident
            message = f"The gateway could not read its policy ({type(exc).__name__})."
            return 500, {"statusCode": 500, "message": message}
        if thumbprint in allowed:
            return 200, {"statusCode": 200, "thumbprint": thumbprint}
        return REFUSED, dict(_REFUSAL)

    # --- one connection --------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + self._io_timeout
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = SSL.Connection(self._context, sock)
        conn.set_accept_state()
        try:
            _wait_for(sock, deadline, conn.do_handshake)
            head = _read_request(conn, sock, deadline)
            if head is None:
                return
            method, path = head
            peer = conn.get_peer_certificate()
            leaf = peer.to_cryptography() if peer is not None else None
            status, payload = self.decide(leaf)
            self.calls.append(
                GatewayCall(thumbprint_of(leaf) if leaf else None, method, path, status)
            )
            _send_all(conn, sock, deadline, _response(status, payload))
            with contextlib.suppress(SSL.Error, OSError, TimeoutError):
                _wait_for(sock, deadline, conn.shutdown)
        except (SSL.Error, OSError, TimeoutError, ValueError):
            return


def _server_context(tls: ServerTls) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.use_certificate_file(str(tls.cert_pem))
    context.use_privatekey_file(str(tls.key_pem))
    context.set_session_id(b"certrotate-devstack-gateway")
    # VERIFY_PEER without FAIL_IF_NO_PEER_CERT: ask for a certificate, accept any (or none); the
    # policy decides. See the module docstring.
    context.set_verify(SSL.VERIFY_PEER, _accept_any)
    return context


def _accept_any(
    _conn: SSL.Connection, _cert: crypto.X509, _errno: int, _depth: int, _ok: int
) -> bool:
    return True


def _wait_for(sock: socket.socket, deadline: float, operation: Callable[[], _T]) -> _T:
    """Run a non-blocking pyOpenSSL operation, waiting for the socket until ``deadline``."""
    while True:
        try:
            return operation()
        except SSL.WantReadError:
            readable, writable = [sock], []
        except SSL.WantWriteError:
            readable, writable = [], [sock]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the caller is too slow")
        select.select(readable, writable, [], remaining)


def _read_request(
    conn: SSL.Connection, sock: socket.socket, deadline: float
) -> tuple[str, str] | None:
    """The request's method and path (its body read and dropped); None when the caller left."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            raise ValueError("request head too large")
        try:
            data += _wait_for(sock, deadline, lambda: conn.recv(16384))
        except (SSL.ZeroReturnError, SSL.SysCallError):
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > _MAX_BODY:
        raise ValueError("request body too large")
    while len(body) < length:
        body += _wait_for(sock, deadline, lambda: conn.recv(16384))
    return method, path


def _response(status: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    reason = http.client.responses.get(status, "Unknown")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _send_all(conn: SSL.Connection, sock: socket.socket, deadline: float, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = _wait_for(sock, deadline, functools.partial(conn.send, view))
        view = view[sent:]


# --- the policy stored in a running devstack --------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyScope:
    """Where a policy document lives in one APIM service: the global policy (no ids), a product's
    (``product``), an API's (``api``) or an operation's (``api`` and ``operation``).

    Raises:
        ValueError: an operation without its API, or a product together with an API.
    """

    service: str
    api: str | None = None
    operation: str | None = None
    product: str | None = None

    def __post_init__(self) -> None:
        if not self.service:
            raise ValueError("a policy scope needs the APIM service name")
        if self.operation is not None and self.api is None:
            raise ValueError(f"operation {self.operation!r} needs its API id")
        if self.product is not None and self.api is not None:
            raise ValueError("a policy scope is a product or an API, not both")


def _policy_slot(scope: PolicyScope) -> tuple[str, str]:
    """Where ``scope``'s policy is stored in ``ApimService``: the store's kind and the key
    (global ``""`` and APIs in ``policies``, products in ``product_policies``, operations in
    ``operation_policies`` as ``{api}/{operation}``)."""
    if scope.product is not None:
        return "product_policies", scope.product.lower()
    if scope.operation is not None:
        return "operation_policies", f"{scope.api}/{scope.operation}".lower()
    return "policies", (scope.api or "").lower()


def stored_policy(stack: Devstack, scope: PolicyScope) -> str | None:
    """The policy text stored for ``scope`` in the ARM stand-in (as written); None when none is.

    Raises:
        KeyError: the stack has no APIM service of that name.
    """
    kind, key = _policy_slot(scope)
    with stack.state.lock:
        service = stack.state.service(scope.service)
        if service is None:
            raise KeyError(f"no APIM service {scope.service!r} in the devstack")
        entity = service.store(kind).get(key)
        return None if entity is None else str(entity.properties["value"])


def policy_thumbprints(stack: Devstack, scope: PolicyScope) -> Callable[[], tuple[str, ...]]:
    """A provider for ``Gateway``: the thumbprint identities of ``scope``'s stored policy, read
    afresh on every call (none when no policy is stored: every caller is refused).

    The provider raises ``rotation.domain.policies.PolicyDocumentError`` on a document that does
    not parse (the gateway then answers 500).
    """

    def read() -> tuple[str, ...]:
        text = stored_policy(stack, scope)
        if text is None:
            return ()
        return tuple(pinned.thumbprint for pinned in find_thumbprints(text))

    return read


# --- the client -----------------------------------------------------------------------------


def call(
    gateway: Gateway,
    identity: Issued | bytes | None,
    *,
    path: str = "/",
    timeout: float = 10.0,
) -> int:
    """GET ``path`` on ``gateway`` presenting ``identity`` and return the status.

    ``identity``: an ``Issued`` certificate with its key, a PEM bundle holding the private key
    and the certificates (leaf first), or None to present no certificate. The gateway's
    certificate is verified against ``gateway.ca_pem``.

    Raises:
        ssl.SSLError: the TLS handshake failed (a PEM bundle without a key, say).
        OSError: the gateway cannot be reached.
    """
    context = ssl.create_default_context(cafile=str(gateway.ca_pem))
    if identity is not None:
        pem = identity.key_pem + identity.pem if isinstance(identity, Issued) else identity
        with tempfile.TemporaryDirectory(prefix="gateway-client-") as directory:
            bundle = Path(directory) / "client.pem"
            fd = os.open(bundle, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
            context.load_cert_chain(bundle)
    connection = http.client.HTTPSConnection(
        "127.0.0.1", gateway.port, context=context, timeout=timeout
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
