"""Real mTLS servers for the canary tests: nginx (Debian package) and Python's ``ssl`` module.

Both listen on loopback, require a client certificate issued by the "backend CA" they are given,
and answer ``200 ok`` to an accepted client. They refuse differently, as real backends do:

- nginx (``ssl_verify_client on``) completes the handshake whatever the client presents and
  answers HTTP 400 ("The SSL certificate error") to a certificate it does not trust;
- ``PythonTlsServer`` (OpenSSL through ``ssl``, ``CERT_REQUIRED``) aborts the handshake with an
  alert: during the handshake under TLS 1.2, after the client's Finished under TLS 1.3.

Everything an nginx writes (pid, logs, temp dirs) goes under the directory it is given, so it
runs as root without touching /etc or /var.
"""

from __future__ import annotations

import datetime as dt
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devstack.nginx import Nginx, NginxError
from devstack.nginx import start_nginx as _start_nginx
from devstack.pki import Issued, mint_certificate
from devstack.tls import ServerTls, mint_server_tls
from rotation.adapters.canary import ClientIdentity

_IO_TIMEOUT_SECONDS = 5.0


# --- PKI ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryPki:
    """Two CA hierarchies that rotation trusts; the backend trusts only ``backend_root``.

    ``trusted`` chains to the backend's root; ``foreign`` chains to ``other_root``, a trust
    anchor of ours that the backend does not know. ``server`` is the backends' server TLS.
    """

    backend_root: Issued
    backend_intermediate: Issued
    other_root: Issued
    other_intermediate: Issued
    trusted: Issued
    foreign: Issued
    server: ServerTls

    def identity(self, leaf: Issued) -> ClientIdentity:
        intermediate = (
            self.backend_intermediate if leaf is self.trusted else self.other_intermediate
        )
        return ClientIdentity(leaf=leaf.cert, chain=(intermediate.cert,), private_key=leaf.key)

    def chain_of(self, leaf: Issued) -> list[Issued]:
        if leaf is self.trusted:
            return [self.backend_intermediate, self.backend_root]
        return [self.other_intermediate, self.other_root]


def _ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def mint_canary_pki(directory: Path) -> CanaryPki:
    # Real TLS stacks check validity against the machine's clock, so this PKI is valid now.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)

    def ca(name: str, issuer: Issued | None = None) -> Issued:
        return mint_certificate(
            name, issuer=issuer, key=_ec(), ca=True, not_before=start - dt.timedelta(days=1),
            not_after=start + dt.timedelta(days=3650),
        )  # fmt: skip

    def leaf(name: str, issuer: Issued) -> Issued:
        return mint_certificate(
            name, issuer=issuer, key=_ec(), not_before=start,
            not_after=start + dt.timedelta(days=90), eku=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        )  # fmt: skip

    backend_root = ca("Partner Backend Root CA")
    backend_intermediate = ca("Partner Backend Issuing CA", backend_root)
    other_root = ca("Other Trusted Root CA")
    other_intermediate = ca("Other Issuing CA", other_root)
    return CanaryPki(
        backend_root=backend_root,
        backend_intermediate=backend_intermediate,
        other_root=other_root,
        other_intermediate=other_intermediate,
        trusted=leaf("apim-client.partner.test", backend_intermediate),
        foreign=leaf("apim-client.other.test", other_intermediate),
        server=mint_server_tls(directory / "server-tls"),
    )


# --- helpers ------------------------------------------------------------------------------------


def start_nginx(prefix: Path, server: ServerTls, client_ca: Path) -> Nginx:
    """``devstack.nginx.start_nginx``; a failure fails the test, naming why."""
    try:
        return _start_nginx(prefix, server, client_ca)
    except NginxError as exc:
        pytest.fail(str(exc))


# --- Python ssl -----------------------------------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    server: _TlsTcpServer

    def handle(self) -> None:
        raw: socket.socket = self.request
        raw.settimeout(_IO_TIMEOUT_SECONDS)
        with self.server.context.wrap_socket(
            raw, server_side=True, do_handshake_on_connect=False
        ) as tls:
            self._serve(tls)

    def _serve(self, tls: ssl.SSLSocket) -> None:
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            self.server.refusals.append(type(exc).__name__)
            # OpenSSL has sent its alert. Half-close and drain, so that a client that already
            # wrote (TLS 1.3: the request after its Finished) reads the alert, not a reset;
            # or (drain=False) close at once, as many servers do, racing a reset against it.
            if self.server.drain:
                _drain(tls)
            return
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = tls.recv(4096)
            if not chunk:
                return
            head += chunk
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        self.server.accepted += 1


def _drain(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):
            pass
    except OSError:
        return


class _TlsTcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext, host: str, *, drain: bool) -> None:
        super().__init__((host, 0), _Handler)
        self.context = context
        self.drain = drain
        self.refusals: list[str] = []
        self.accepted = 0


class PythonTlsServer:
    """An OpenSSL server (``ssl``) that requires a client certificate from ``client_ca``."""

    def __init__(
        self,
        server: ServerTls,
        client_ca: Path,
        version: ssl.TLSVersion,
        *,
        host: str = "127.0.0.1",
        drain: bool = True,
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = context.maximum_version = version
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
        context.load_cert_chain(server.cert_pem, server.key_pem)
        self.tcp = _TlsTcpServer(context, host, drain=drain)
        self.thread = threading.Thread(target=self.tcp.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.tcp.server_address[1])

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/status"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.tcp.shutdown()
        self.tcp.server_close()
        self.thread.join(timeout=10)
