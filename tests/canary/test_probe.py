"""The TLS probe against real servers: nginx (HTTP 400 after the handshake) and OpenSSL through
Python's ``ssl`` (an alert during the TLS 1.2 handshake, after the client's Finished in TLS 1.3).
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from itertools import count
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from devstack.nginx import Nginx
from devstack.pki import mint_certificate, to_pem_bundle, to_pkcs12
from devstack.tls import ServerTls
from rotation.adapters.canary import ClientIdentity, ProbeRequest, TlsProber
from rotation.domain.canary import (
    CanaryMode,
    CanaryTarget,
    ProbeOutcome,
    TlsAlert,
    Verdict,
    classify,
    decide,
    judge,
)
from rotation.domain.model import Decision, FindingCode, SecretMaterial
from tests.canary.servers import CanaryPki, PythonTlsServer


@pytest.fixture(scope="module")
def server_ca(pki: CanaryPki) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates(pki.server.ca_pem.read_bytes()))


@pytest.fixture(scope="module")
def prober(server_ca) -> TlsProber:
    return TlsProber(timeout=5.0, server_ca=server_ca)


@pytest.fixture
def refusing_port():
    """A port nothing listens on (bound, so nobody else takes it while the test runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def black_hole():
    """A port that completes TCP connects but never says a word (the backlog holds them)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def request(pki: CanaryPki, url: str, leaf=None, **tls) -> ProbeRequest:
    return ProbeRequest(url=url, identity=pki.identity(leaf or pki.trusted), **tls)


class TestNginx:
    def test_the_candidate_the_backend_trusts_passes(self, nginx: Nginx, pki, prober):
        observation = prober.probe(request(pki, nginx.url, pki.trusted))

        result = classify(observation)
        assert (result.outcome, observation.http_status) == (ProbeOutcome.ACCEPTED, 200)
        assert observation.tls_version == "TLSv1.3"
        assert observation.cipher
        assert observation.certificate_requested
        assert observation.server_certificate is not None
        assert observation.server_certificate.subject == "CN=localhost"
        # nginx names its ssl_client_certificate CAs in the CertificateRequest.
        assert observation.requested_ca_names == (pki.backend_root.cert.subject.rfc4514_string(),)  # fmt: skip

    def test_one_chaining_to_our_anchor_but_not_the_backends_ca_is_refused_with_400(
        self, nginx: Nginx, pki, prober
    ):
        observation = prober.probe(request(pki, nginx.url, pki.foreign))

        result = classify(observation)
        assert (result.outcome, result.reason) == (ProbeOutcome.REFUSED, "http:400")
        assert observation.handshake_completed

    def test_verdict_and_enforce_decision_against_the_version_in_use(
        self, nginx: Nginx, pki, prober
    ):
        target = CanaryTarget(service="apim-1", backend="partner-api", url=nginx.url)
        candidate, current = prober.probe_all(
            [request(pki, nginx.url, pki.foreign), request(pki, nginx.url, pki.trusted)]
        )

        verdict = judge(target, candidate, current)
        decision = decide(CanaryMode.ENFORCE, [verdict], certificate="partner-mtls")

        assert verdict.verdict is Verdict.REFUSED
        assert decision.decision is Decision.REJECTED
        assert [f.code for f in decision.findings] == [FindingCode.CANARY_REFUSED]

        swapped = judge(target, current, candidate)
        assert swapped.verdict is Verdict.PASSED
        assert decide(CanaryMode.ENFORCE, [swapped]).decision is None


@pytest.fixture(
    params=[(ssl.TLSVersion.TLSv1_2, "TLSv1.2", False), (ssl.TLSVersion.TLSv1_3, "TLSv1.3", True)],
    ids=["TLSv1.2", "TLSv1.3"],
)
def python_server(request, pki, backend_ca):
    """(server, negotiated version name, whether the client's handshake completes on refusal)."""
    version, name, completed = request.param
    with PythonTlsServer(pki.server, backend_ca, version) as server:
        yield server, name, completed


class TestHandshakeRefusal:
    def test_trusted_passes(self, pki, prober, python_server):
        server, name, _ = python_server
        observation = prober.probe(request(pki, server.url, pki.trusted))

        assert classify(observation).outcome is ProbeOutcome.ACCEPTED
        assert (observation.tls_version, observation.http_status) == (name, 200)

    def test_foreign_is_refused_with_the_servers_alert(self, pki, prober, python_server):
        server, _, completed = python_server
        observation = prober.probe(request(pki, server.url, pki.foreign))

        result = classify(observation)
        assert (result.outcome, result.reason) == (ProbeOutcome.REFUSED, "alert:unknown_ca")
        assert observation.alert == TlsAlert.UNKNOWN_CA
        # TLS 1.3: the client's handshake completed; only reading showed the alert.
        assert observation.handshake_completed is completed
        assert observation.http_status is None

    def test_a_server_that_closes_at_once_is_still_a_refusal(self, pki, prober, python_server):
        server, _, _ = python_server
        server.tcp.drain = False  # close right after the alert: the client may see a reset

        observation = prober.probe(request(pki, server.url, pki.foreign))

        result = classify(observation)
        assert result.outcome is ProbeOutcome.REFUSED
        assert result.reason in {"alert:unknown_ca", "closed"}


class TestUnreachable:
    def test_a_backend_that_is_down(self, pki, prober, refusing_port):
        observation = prober.probe(request(pki, f"https://localhost:{refusing_port}/"))

        result = classify(observation)
        assert (result.outcome, result.reason) == (ProbeOutcome.UNREACHABLE, "connect")
        assert "Connection refused" in (observation.error or "")
        target = CanaryTarget(service="apim-1", backend="down", url=observation.url)
        decision = decide(CanaryMode.ENFORCE, [judge(target, observation, observation)])
        assert decision.decision is Decision.DEFERRED
        assert [f.code for f in decision.findings] == [FindingCode.CANARY_UNREACHABLE]

    def test_a_name_that_does_not_resolve(self, pki, prober):
        observation = prober.probe(request(pki, "https://no-such-host.invalid/"))

        assert classify(observation).reason == "connect"
        assert "name resolution failed" in (observation.error or "")

    def test_a_silent_server_times_out(self, pki, server_ca, black_hole):
        quick = TlsProber(timeout=0.3, server_ca=server_ca)

        observation = quick.probe(request(pki, f"https://localhost:{black_hole}/"))

        assert observation.connected
        assert (classify(observation).reason, observation.timed_out) == ("timeout", True)

    def test_the_deadline_follows_the_injected_clock(self, pki, server_ca, nginx):
        ticks = count(step=10.0)  # every reading of the clock is 10 s later than the last
        prober = TlsProber(timeout=5.0, server_ca=server_ca, clock=lambda: next(ticks))

        observation = prober.probe(request(pki, nginx.url))

        assert observation.timed_out
        assert classify(observation).outcome is ProbeOutcome.UNREACHABLE


class TestServerCertificateChecks:
    def test_a_server_ca_outside_the_store_fails_validate_chain(self, pki, nginx):
        observation = TlsProber(timeout=5.0).probe(request(pki, nginx.url))

        result = classify(observation)
        assert (result.outcome, result.reason) == (ProbeOutcome.UNREACHABLE, "server_certificate")
        assert observation.server_rejected is not None
        assert "local issuer" in observation.server_rejected
        # TLS 1.3 sends the CertificateRequest before the server's Certificate, so the request
        # is seen, but the client stops before presenting anything.
        assert not observation.handshake_completed

    def test_validate_chain_false_accepts_it(self, pki, nginx):
        observation = TlsProber(timeout=5.0).probe(request(pki, nginx.url, validate_chain=False))

        assert classify(observation).outcome is ProbeOutcome.ACCEPTED

    def test_an_ip_address_the_certificate_names_passes_validate_name(self, pki, nginx, prober):
        url = nginx.url.replace("localhost", "127.0.0.1")  # no SNI; matched as an IP SAN

        assert classify(prober.probe(request(pki, url))).outcome is ProbeOutcome.ACCEPTED

    def test_validate_name_rejects_a_mismatch_and_false_skips_it(self, pki, backend_ca, prober):
        with PythonTlsServer(pki.server, backend_ca, ssl.TLSVersion.TLSv1_3, host="127.0.0.2") as server:  # fmt: skip
            url = f"https://127.0.0.2:{server.port}/"
            checked = prober.probe(request(pki, url))
            unchecked = prober.probe(request(pki, url, validate_name=False))

        assert checked.server_rejected == "the certificate is not for 127.0.0.2"
        assert classify(checked).outcome is ProbeOutcome.UNREACHABLE
        assert classify(unchecked).outcome is ProbeOutcome.ACCEPTED

    def test_a_server_certificate_without_names_fails_validate_name(
        self, pki, backend_ca, prober, tmp_path
    ):
        ca = mint_certificate("Nameless Server CA", ca=True, not_before=_yesterday())
        leaf = mint_certificate(
            "nameless", issuer=ca, eku=(ExtendedKeyUsageOID.SERVER_AUTH,), not_before=_yesterday()
        )
        tls = ServerTls(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server-key.pem")
        tls.ca_pem.write_bytes(ca.pem)
        tls.cert_pem.write_bytes(leaf.pem)
        tls.key_pem.write_bytes(leaf.key_pem)
        nameless = TlsProber(timeout=5.0, server_ca=[ca.cert])

        with PythonTlsServer(tls, backend_ca, ssl.TLSVersion.TLSv1_3) as server:
            checked = nameless.probe(request(pki, server.url))
            unchecked = nameless.probe(request(pki, server.url, validate_name=False))

        assert checked.server_rejected == "the certificate is not for localhost"
        assert classify(unchecked).outcome is ProbeOutcome.ACCEPTED


class TestConcurrency:
    def test_probe_all_keeps_the_order_and_judges_each(self, pki, prober, nginx, refusing_port):
        requests = [
            request(pki, nginx.url, pki.trusted),
            request(pki, f"https://localhost:{refusing_port}/"),
            request(pki, nginx.url, pki.foreign),
        ]

        observations = prober.probe_all(requests)

        assert [o.url for o in observations] == [r.url for r in requests]
        assert [classify(o).reason for o in observations] == ["accepted", "connect", "http:400"]

    def test_the_total_bound_covers_probes_that_never_started(self, pki, server_ca, black_hole):
        # One worker, three silent backends: the first uses up the total bound, the others
        # never get their turn and are reported as timed out.
        prober = TlsProber(timeout=5.0, total_timeout=0.3, max_workers=1, server_ca=server_ca)

        observations = prober.probe_all([request(pki, f"https://localhost:{black_hole}/")] * 3)

        assert [o.timed_out for o in observations] == [True, True, True]
        assert {classify(o).outcome for o in observations} == {ProbeOutcome.UNREACHABLE}

    def test_a_probe_that_cannot_run_is_reported_not_raised(self, pki, prober):
        (observation,) = prober.probe_all([request(pki, "https://localhost:99999/")])

        assert observation.error == "the probe could not run (ValueError)"
        assert classify(observation).outcome is ProbeOutcome.UNREACHABLE

    def test_a_key_that_does_not_match_the_leaf_is_refused_up_front(self, pki):
        with pytest.raises(ValueError, match="does not match the leaf certificate"):
            ClientIdentity(leaf=pki.trusted.cert, private_key=pki.foreign.key)

    def test_no_requests(self, prober):
        assert prober.probe_all([]) == []


class TestNoTraces:
    def test_a_probe_writes_no_file_and_leaks_no_descriptor(
        self, pki, prober, nginx, tmp_path, monkeypatch
    ):
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("TMPDIR", str(tmp_path))
        prober.probe(request(pki, nginx.url))  # warm-up: OpenSSL loads its store once
        fds = Path("/proc/self/fd")
        before = sorted(p.name for p in fds.iterdir())

        prober.probe(request(pki, nginx.url, pki.foreign))
        prober.probe_all([request(pki, nginx.url), request(pki, nginx.url, pki.foreign)])

        assert list(tmp_path.iterdir()) == []
        # No descriptor the probes opened is still open. (Other tests' background threads and
        # the garbage collector may close theirs meanwhile, so only new ones count.)
        assert sorted({p.name for p in fds.iterdir()} - set(before)) == []
        assert not [link for fd in fds.iterdir() if (link := _readlink(fd)).startswith("/memfd:")]

    def test_an_identity_from_a_key_vault_secret(self, pki, prober, nginx):
        pfx = to_pkcs12(pki.trusted, pki.chain_of(pki.trusted))
        material = SecretMaterial(content_type="application/x-pkcs12", value=pfx)
        no_key = SecretMaterial(
            content_type="application/x-pem-file",
            value=to_pem_bundle(pki.trusted, pki.chain_of(pki.trusted), with_key=False),
        )

        identity = ClientIdentity.from_secret(material)

        assert identity.leaf == pki.trusted.cert
        assert identity.chain == tuple(c.cert for c in pki.chain_of(pki.trusted))
        assert prober.probe(ProbeRequest(url=nginx.url, identity=identity)).http_status == 200
        with pytest.raises(ValueError, match="holds no private key"):
            ClientIdentity.from_secret(no_key)

    def test_repr_of_an_identity_hides_the_key(self, pki):
        assert "private_key" not in repr(pki.identity(pki.trusted))


def _yesterday() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=1)


def _readlink(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return ""
