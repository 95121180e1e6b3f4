"""The canary's TLS probe: present a client certificate to a backend the way APIM would.

``TlsProber.probe`` opens TCP to the backend URL's host and port, does a TLS handshake with
SNI = the URL host while presenting the given leaf, chain and private key, checks the server's
certificate as the backend's ``tls.validateCertificateChain``/``validateCertificateName`` say
(the system store plus the optional extra CAs of ``ROTATION_CANARY_SERVER_CA``), then sends one
``GET`` on the URL's path and reads the status. It returns a ``ProbeObservation``: plain facts
that ``rotation.domain.canary`` judges. ``probe_all`` runs several probes concurrently within a
total time bound.

Why pyOpenSSL rather than ``ssl``: Python's ``ssl`` module cannot present a key held in memory
(``load_cert_chain`` takes file paths) and does not expose the CA names of the server's
CertificateRequest, nor the alerts it receives; pyOpenSSL does all three (``use_privatekey`` on
a ``cryptography`` key, ``get_client_ca_list``, the info callback). So the private key goes
from the ``cryptography`` object straight into OpenSSL: it is never written to a file, and this
module logs nothing. The server name is checked with ``service_identity`` (RFC 6125), which
pyOpenSSL leaves to its callers.

TLS 1.3 note: a server that refuses the client certificate sends its alert after the client's
Finished, so the client-side handshake "succeeds"; the alert (or the close) only shows when the
probe reads, which it always does (the HTTP response).
"""

from __future__ import annotations

import functools
import ipaddress
import selectors
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import h11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)

from rotation.domain.bundle import Bundle, parse_bundle
from rotation.domain.canary import (
    CanaryTarget,
    CanaryVerdict,
    ProbeObservation,
    ServerCertificate,
    judge,
    skip_reason,
    skipped,
)
from rotation.domain.model import SecretMaterial

__all__ = [
    "CanaryCase",
    "ClientIdentity",
    "ProbeRequest",
    "Prober",
    "TlsCanary",
    "TlsProber",
    "canary_verdicts",
]

_T = TypeVar("_T")
_DEFAULT_PORT = 443
_READ_CHUNK = 16 * 1024
_MAX_RESPONSE_HEAD = 64 * 1024
_USER_AGENT = "certrotate-canary"
_GRACE_SECONDS = 0.5  # for probes that hit their deadline to report it themselves
# OpenSSL's state names (SSL_state_string_long) once a CertificateRequest has been read.
_CERTIFICATE_REQUESTED_STATES = frozenset(
    {b"SSLv3/TLS read server certificate request", b"SSLv3/TLS write client certificate"}
)
_FATAL = 2
# The common X509_V_ERR_* codes, so "unable to get local issuer certificate" reads as such.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
    62: "hostname mismatch",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientIdentity:
    """What the probe presents: a leaf, its chain (leaf excluded) and the leaf's private key.

    Raises ``ValueError`` when the key does not match the leaf (never showing either).
    """

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    private_key: PrivateKeyTypes = field(repr=False)

    def __post_init__(self) -> None:
        if self.leaf.public_key() != self.private_key.public_key():
            raise ValueError("the private key does not match the leaf certificate")

    @classmethod
    def from_secret(cls, material: SecretMaterial) -> ClientIdentity:
        """The identity in a Key Vault secret (PKCS#12 or PEM, as Key Vault stores it).

        Raises:
            BundleFormatError: the secret cannot be parsed.
            ValueError: it holds no private key, or one that does not match its leaf.
        """
        return cls.from_bundle(parse_bundle(material.value))

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> ClientIdentity:
        """The identity of a parsed bundle.

        Raises:
            ValueError: the bundle holds no private key, or one that does not match its leaf.
        """
        if bundle.private_key is None:
            raise ValueError("the bundle holds no private key; the canary cannot present it")
        return cls(leaf=bundle.leaf, chain=bundle.others, private_key=bundle.private_key)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeRequest:
    """One probe: a backend URL, what to present, and the backend's server-certificate checks."""

    url: str
    identity: ClientIdentity
    validate_chain: bool = True
    validate_name: bool = True


class _DeadlineError(Exception):
    """The probe's deadline passed."""


class _Probe:
    """The state of one probe; ``run`` never raises for anything the network does."""

    def __init__(
        self,
        request: ProbeRequest,
        *,
        deadline: float,
        server_ca: Sequence[x509.Certificate],
        clock: Callable[[], float],
    ) -> None:
        self.request = request
        self.deadline = deadline
        self.server_ca = server_ca
        self.clock = clock
        parts = urlsplit(request.url)
        self.host = parts.hostname or ""
        self.port = parts.port or _DEFAULT_PORT
        self.authority = parts.netloc.rpartition("@")[2]
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.facts: dict[str, object] = {"url": request.url}

    # --- the steps ---------------------------------------------------------------------------

    def run(self) -> ProbeObservation:
        try:
            sock = self._connect()
        except _DeadlineError:
            return self._done(timed_out=True, error=f"connecting to {self.authority} timed out")
        except OSError as exc:
            return self._done(error=f"cannot connect to {self.authority}: {_os_reason(exc)}")
        try:
            self.facts["connected"] = True
            conn = SSL.Connection(self._context(), sock)
            conn.set_info_callback(self._on_info)
            if not _is_ip(self.host):
                conn.set_tlsext_host_name(self.host.encode("idna"))
            conn.set_connect_state()
            sock.setblocking(False)
            if self._handshake(conn, sock):
                self._exchange(conn, sock)
        finally:
            sock.close()
        return self._done()

    def _connect(self) -> socket.socket:
        remaining = self._remaining()
        try:
            return socket.create_connection((self.host, self.port), timeout=remaining)
        except TimeoutError:
            raise _DeadlineError from None

    def _context(self) -> SSL.Context:
        identity = self.request.identity
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate(identity.leaf)
        for certificate in identity.chain:
            context.add_extra_chain_cert(certificate)
        context.use_privatekey(identity.private_key)  # type: ignore[arg-type]
        context.check_privatekey()
        if self.request.validate_chain:
            _load_system_store(context)
            store = context.get_cert_store()
            if store is not None:
                for ca in self.server_ca:
                    store.add_cert(crypto.X509.from_cryptography(ca))
        context.set_verify(SSL.VERIFY_PEER, self._on_verify)
        return context

    def _handshake(self, conn: SSL.Connection, sock: socket.socket) -> bool:
        try:
            self._io(sock, conn.do_handshake)
        except _DeadlineError:
            self.facts.update(timed_out=True, error="the TLS handshake timed out")
        except (SSL.ZeroReturnError, SSL.SysCallError):
            self.facts.update(closed=True, error="the server closed the connection during the handshake")  # fmt: skip
        except SSL.Error as exc:
            self.facts.setdefault("error", f"TLS handshake failed: {_ssl_reason(exc)}")
            self._note_ca_names(conn)
            if _is_eof(exc):
                self.facts["closed"] = True
        else:
            self.facts.update(
                handshake_completed=True,
                tls_version=conn.get_protocol_version_name(),
                cipher=conn.get_cipher_name(),
            )
            self._note_ca_names(conn)
            peer = conn.get_peer_certificate(as_cryptography=True)
            if peer is not None:
                self._note_server_certificate(peer)
            return True
        return False

    def _exchange(self, conn: SSL.Connection, sock: socket.socket) -> None:
        """Send one GET and read the response head; a refusal may arrive here instead."""
        http = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_MAX_RESPONSE_HEAD)
        headers = [
            ("Host", self.authority),
            ("User-Agent", _USER_AGENT),
            ("Accept", "*/*"),
            ("Connection", "close"),
        ]
        request = http.send(h11.Request(method="GET", target=self.target, headers=headers))
        request = (request or b"") + (http.send(h11.EndOfMessage()) or b"")
        try:
            self._send_all(conn, sock, request)
            self._read_status(http, conn, sock)
        except _DeadlineError:
            self.facts.update(timed_out=True, error="no HTTP response before the timeout")
        except h11.RemoteProtocolError:
            self.facts["error"] = "the server's answer is not an HTTP/1.1 response"
        except (SSL.ZeroReturnError, SSL.SysCallError):
            self.facts.update(closed=True, error="the server closed the connection right after the handshake")  # fmt: skip
        except SSL.Error as exc:
            self.facts.setdefault("error", f"TLS failed after the handshake: {_ssl_reason(exc)}")
            if _is_eof(exc):
                self.facts["closed"] = True
        else:
            self._close_politely(conn)

    def _read_status(
        self, http: h11.Connection, conn: SSL.Connection, sock: socket.socket
    ) -> None:
        while True:
            event = http.next_event()
            if isinstance(event, h11.Response):
                self.facts["http_status"] = event.status_code
                return
            if isinstance(event, h11.ConnectionClosed):
                self.facts.update(closed=True, error="the server closed the connection without an HTTP response")  # fmt: skip
                return
            if event is h11.NEED_DATA:
                http.receive_data(self._read(conn, sock))

    def _send_all(self, conn: SSL.Connection, sock: socket.socket, data: bytes) -> None:
        # Not conn.sendall: after a WantWriteError it would start over from the first byte.
        view = memoryview(data)
        while view:
            sent = self._io(sock, functools.partial(conn.send, view))
            view = view[sent:]

    def _read(self, conn: SSL.Connection, sock: socket.socket) -> bytes:
        try:
            return self._io(sock, lambda: conn.recv(_READ_CHUNK))
        except SSL.ZeroReturnError:
            return b""

    # --- callbacks (OpenSSL calls them during the handshake) ---------------------------------

    def _on_info(self, conn: SSL.Connection, where: int, ret: int) -> None:
        received = where & SSL.SSL_CB_READ_ALERT == SSL.SSL_CB_READ_ALERT  # not WRITE_ALERT
        if received and ret >> 8 == _FATAL and "alert" not in self.facts:
            self.facts["alert"] = ret & 0xFF
        elif where & SSL.SSL_CB_LOOP and conn.get_state_string() in _CERTIFICATE_REQUESTED_STATES:
            self.facts["certificate_requested"] = True

    def _on_verify(
        self, _conn: SSL.Connection, certificate: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        if depth == 0:
            self._note_server_certificate(certificate.to_cryptography())
        if not ok and self.request.validate_chain:
            reason = _VERIFY_ERRORS.get(errno, f"verify error {errno}")
            self.facts.setdefault("server_rejected", f"{reason} (depth {depth})")
            return False
        if depth == 0 and self.request.validate_name:
            try:
                _verify_name(certificate.to_cryptography(), self.host)
            except (VerificationError, CertificateError, ValueError):
                self.facts.setdefault("server_rejected", f"the certificate is not for {self.host}")
                return False
        return True

    # --- helpers ----------------------------------------------------------------------------

    def _note_ca_names(self, conn: SSL.Connection) -> None:
        if self.facts.get("certificate_requested"):
            names = conn.get_client_ca_list(as_cryptography=True)
            self.facts["requested_ca_names"] = tuple(n.rfc4514_string() for n in names)

    def _note_server_certificate(self, certificate: x509.Certificate) -> None:
        self.facts["server_certificate"] = ServerCertificate(
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            not_after=certificate.not_valid_after_utc,
        )

    def _close_politely(self, conn: SSL.Connection) -> None:
        try:
            conn.shutdown()
        except SSL.Error:
            return

    def _remaining(self) -> float:
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise _DeadlineError
        return remaining

    def _io(self, sock: socket.socket, operation: Callable[[], _T]) -> _T:
        """Run a non-blocking pyOpenSSL operation, waiting for the socket until the deadline."""
        with selectors.DefaultSelector() as selector:
            while True:
                try:
                    return operation()
                except SSL.WantReadError:
                    events = selectors.EVENT_READ
                except SSL.WantWriteError:
                    events = selectors.EVENT_WRITE
                selector.register(sock, events)
                ready = selector.select(self._remaining())
                selector.unregister(sock)
                if not ready:
                    raise _DeadlineError

    def _done(self, **facts: object) -> ProbeObservation:
        self.facts.update(facts)
        return ProbeObservation(**self.facts)  # type: ignore[arg-type]


@functools.cache
def _system_store_paths() -> tuple[str | None, str | None]:
    """The system's CA store as ``(cafile, capath)``: the hashed directory when there is one
    (OpenSSL looks issuers up in it lazily, so a context costs ~0.3 ms instead of the ~15 ms of
    parsing the whole bundle), else the bundle file; ``(None, None)`` when neither exists."""
    paths = ssl.get_default_verify_paths()
    if paths.capath and Path(paths.capath).is_dir():
        return None, paths.capath
    if paths.cafile and Path(paths.cafile).is_file():
        return paths.cafile, None
    return None, None


def _load_system_store(context: SSL.Context) -> None:
    cafile, capath = _system_store_paths()
    if cafile is None and capath is None:
        context.set_default_verify_paths()  # pyOpenSSL knows more places to look
    else:
        context.load_verify_locations(cafile, capath)


def _verify_name(certificate: x509.Certificate, host: str) -> None:
    if _is_ip(host):
        verify_certificate_ip_address(certificate, host)
    else:
        verify_certificate_hostname(certificate, host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _ssl_reason(exc: SSL.Error) -> str:
    """OpenSSL's reason strings (``tlsv1 alert unknown ca``); never data, never key material."""
    details = exc.args[0] if exc.args else None
    if isinstance(details, list):
        reasons = [str(item[-1]) for item in details if isinstance(item, tuple) and item]
        if reasons:
            return "; ".join(reasons)
    return type(exc).__name__


def _is_eof(exc: SSL.Error) -> bool:
    return "unexpected eof" in _ssl_reason(exc).lower()


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed ({exc.strerror or exc.errno})"
    return exc.strerror or type(exc).__name__


class TlsProber:
    """Probes backends with a client certificate.

    ``timeout`` bounds each probe (connect, handshake, request and response head together);
    ``total_timeout`` bounds ``probe_all`` (default: ``timeout``, since the probes run side by
    side). ``server_ca`` are extra CAs for backend *server* certificates, on top of the system
    store. ``clock`` is a monotonic clock (injected by tests).
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        total_timeout: float | None = None,
        server_ca: Sequence[x509.Certificate] = (),
        max_workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0 or (total_timeout is not None and total_timeout <= 0):
            raise ValueError("timeouts must be > 0")
        self.timeout = timeout
        self.total_timeout = total_timeout if total_timeout is not None else timeout
        self.server_ca = tuple(server_ca)
        self.max_workers = max(1, max_workers)
        self.clock = clock

    def probe(self, request: ProbeRequest, *, deadline: float | None = None) -> ProbeObservation:
        """One probe, bounded by ``timeout`` (and by ``deadline`` on ``clock``, if earlier)."""
        own = self.clock() + self.timeout
        bound = own if deadline is None else min(own, deadline)
        return _Probe(request, deadline=bound, server_ca=self.server_ca, clock=self.clock).run()

    def probe_all(self, requests: Sequence[ProbeRequest]) -> list[ProbeObservation]:
        """Every probe, concurrently, in the order given, within ``total_timeout``.

        A probe still running when the total bound passes (a DNS lookup that does not return,
        say) is reported as timed out; its thread is left to finish on its own.
        """
        if not requests:
            return []
        deadline = self.clock() + self.total_timeout
        pool = ThreadPoolExecutor(
            max_workers=min(self.max_workers, len(requests)), thread_name_prefix="canary"
        )
        try:
            futures = [pool.submit(self.probe, r, deadline=deadline) for r in requests]
            wait(futures, timeout=max(0.0, deadline - self.clock()) + _GRACE_SECONDS)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return [_outcome(f, r) for f, r in zip(futures, requests, strict=True)]


def _outcome(future: Future[ProbeObservation], request: ProbeRequest) -> ProbeObservation:
    if not future.done() or future.cancelled():
        return ProbeObservation(url=request.url, timed_out=True, error="the canary's total time bound ran out")  # fmt: skip
    exc = future.exception()
    if exc is not None:
        # Not the network (run() absorbs that): the identity could not be loaded, say.
        return ProbeObservation(url=request.url, error=f"the probe could not run ({type(exc).__name__})")  # fmt: skip
    return future.result()


# --- one rotation's canary ---------------------------------------------------------------------


class Prober(Protocol):
    """What ``canary_verdicts`` needs: ``TlsProber`` (or an in-memory stand-in)."""

    def probe_all(self, requests: Sequence[ProbeRequest]) -> list[ProbeObservation]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryCase:
    """One backend to probe, and what it presents today (None: nothing, or unreadable)."""

    target: CanaryTarget
    current: ClientIdentity | None = None


def canary_verdicts(
    prober: Prober, cases: Sequence[CanaryCase], candidate: ClientIdentity
) -> list[CanaryVerdict]:
    """Probe every https backend of ``cases`` with the candidate and with its version in use,
    all at once (one ``probe_all``, so one total time bound), and judge each backend.

    Skipped targets (http, no backend) are judged without a probe. Verdicts keep the order of
    ``cases``.
    """
    requests: list[ProbeRequest] = []
    slots: list[tuple[int | None, int | None]] = []
    for case in cases:
        target = case.target
        if skip_reason(target) is not None:
            slots.append((None, None))
            continue
        flags = {"validate_chain": target.validate_chain, "validate_name": target.validate_name}
        requests.append(ProbeRequest(url=target.url, identity=candidate, **flags))
        current_slot = None
        if case.current is not None:
            current_slot = len(requests)
            requests.append(ProbeRequest(url=target.url, identity=case.current, **flags))
        slots.append((len(requests) - (2 if current_slot is not None else 1), current_slot))
    observations = prober.probe_all(requests)

    def at(slot: int | None) -> ProbeObservation | None:
        return observations[slot] if slot is not None else None

    return [
        judge(case.target, at(cand), at(cur))
        for case, (cand, cur) in zip(cases, slots, strict=True)
    ]


class TlsCanary:
    """The ``BackendCanary`` port (``rotation.ports``): Key Vault secrets in, verdicts out.

    The rollout hands over the secrets it already read (the candidate's for validation, one per
    version in use); the identities are parsed here, in memory, and go to OpenSSL through
    ``TlsProber``. A candidate that cannot be presented (no key) skips every backend; a version
    in use that cannot be parsed leaves that backend without a baseline.
    """

    def __init__(self, prober: Prober) -> None:
        self.prober = prober

    def __repr__(self) -> str:
        return f"TlsCanary({type(self.prober).__name__})"

    def verdicts(
        self,
        cases: Sequence[tuple[CanaryTarget, SecretMaterial | None]],
        candidate: SecretMaterial,
    ) -> list[CanaryVerdict]:
        """Probe every https backend of ``cases`` with ``candidate`` and its version in use."""
        try:
            identity = ClientIdentity.from_secret(candidate)
        except ValueError as exc:  # BundleFormatError is a ValueError; messages carry no data
            why = f"the candidate cannot be presented ({exc})"
            return [skipped(target, why) for target, _ in cases]
        prepared = [
            CanaryCase(target=target, current=_identity(material)) for target, material in cases
        ]
        return canary_verdicts(self.prober, prepared, identity)


def _identity(material: SecretMaterial | None) -> ClientIdentity | None:
    if material is None:
        return None
    try:
        return ClientIdentity.from_secret(material)
    except ValueError:
        return None
