"""One rotation's canary end to end on real servers: probe every backend with the candidate and
the version in use, judge, and decide per ROTATION_CANARY.
"""

from __future__ import annotations

import socket
import ssl

import pytest
from cryptography import x509

from rotation.adapters.canary import CanaryCase, TlsProber, canary_verdicts
from rotation.domain.canary import CanaryMode, CanaryTarget, Verdict, decide
from rotation.domain.model import Decision, FindingCode, Severity
from tests.canary.servers import PythonTlsServer


@pytest.fixture(scope="module")
def prober(pki) -> TlsProber:
    server_ca = x509.load_pem_x509_certificates(pki.server.ca_pem.read_bytes())
    return TlsProber(timeout=5.0, server_ca=server_ca)


@pytest.fixture
def down_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"https://localhost:{sock.getsockname()[1]}/"


@pytest.fixture
def cases(pki, nginx, down_url):
    current = pki.identity(pki.trusted)
    return [
        CanaryCase(
            target=CanaryTarget(service="apim-1", backend="partner-api", url=nginx.url),
            current=current,
        ),
        CanaryCase(
            target=CanaryTarget(service="apim-1", backend="legacy", url="http://legacy.test/"),
            current=current,
        ),
        CanaryCase(target=CanaryTarget(service="apim-1", backend=None, url="")),
        CanaryCase(
            target=CanaryTarget(service="apim-1", backend="partner-dr", url=down_url),
            current=current,
        ),
    ]


def test_a_candidate_the_backend_does_not_trust_is_rejected_under_enforce(pki, prober, cases):
    verdicts = canary_verdicts(prober, cases, pki.identity(pki.foreign))

    assert [v.verdict for v in verdicts] == [
        Verdict.REFUSED, Verdict.SKIPPED, Verdict.SKIPPED, Verdict.UNREACHABLE,
    ]  # fmt: skip
    assert verdicts[0].current is not None
    assert verdicts[0].current.observation.http_status == 200
    enforce = decide(CanaryMode.ENFORCE, verdicts, certificate="partner-mtls")
    assert enforce.decision is Decision.REJECTED
    assert "partner-api" in (enforce.message or "")
    warn = decide(CanaryMode.WARN, verdicts, certificate="partner-mtls")
    assert warn.decision is None
    assert [(f.code, f.severity) for f in warn.findings] == [
        (FindingCode.CANARY_REFUSED, Severity.WARNING),
        (FindingCode.CANARY_SKIPPED, Severity.INFO),
        (FindingCode.CANARY_SKIPPED, Severity.INFO),
        (FindingCode.CANARY_UNREACHABLE, Severity.WARNING),
    ]


def test_a_trusted_candidate_passes_and_a_down_backend_defers(pki, prober, cases):
    verdicts = canary_verdicts(prober, cases, pki.identity(pki.trusted))

    assert [v.verdict for v in verdicts] == [
        Verdict.PASSED, Verdict.SKIPPED, Verdict.SKIPPED, Verdict.UNREACHABLE,
    ]  # fmt: skip
    assert (verdicts[0].tls_version, verdicts[0].http_status) == ("TLSv1.3", 200)
    assert decide(CanaryMode.ENFORCE, verdicts).decision is Decision.DEFERRED
    assert decide(CanaryMode.ENFORCE, verdicts[:3]).decision is None


def test_a_backend_that_refuses_everything_is_not_blamed_on_the_candidate(pki, prober):
    # The server trusts only its own server CA: no client certificate of ours passes.
    with PythonTlsServer(pki.server, pki.server.ca_pem, ssl.TLSVersion.TLSv1_3) as server:
        target = CanaryTarget(service="apim-1", backend="strict", url=server.url)
        case = CanaryCase(target=target, current=pki.identity(pki.trusted))
        (verdict,) = canary_verdicts(prober, [case], pki.identity(pki.foreign))

    assert verdict.verdict is Verdict.INCONCLUSIVE
    decision = decide(CanaryMode.ENFORCE, [verdict])
    assert decision.decision is None
    assert [(f.code, f.severity) for f in decision.findings] == [
        (FindingCode.CANARY_INCONCLUSIVE, Severity.WARNING)
    ]


def test_the_backends_tls_properties_are_followed(pki, nginx):
    no_extra_ca = TlsProber(timeout=5.0)
    strict = CanaryTarget(service="apim-1", backend="partner-api", url=nginx.url)
    lenient = CanaryTarget(
        service="apim-1", backend="partner-api", url=nginx.url, validate_chain=False
    )

    verdicts = canary_verdicts(
        no_extra_ca,
        [CanaryCase(target=strict), CanaryCase(target=lenient)],
        pki.identity(pki.trusted),
    )

    assert [v.verdict for v in verdicts] == [Verdict.UNREACHABLE, Verdict.PASSED]
    assert "server's certificate" in verdicts[0].message
