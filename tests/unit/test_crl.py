"""Tests for revocation: rotation.domain.revocation (pure) and rotation.adapters.crl (HTTP, loopback)."""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devstack.pki import EPOCH, Issued, make_crl, mint_certificate
from rotation.adapters.crl import HttpCrlFetcher
from rotation.domain.bundle import Bundle
from rotation.domain.errors import DependencyError, TransientDependencyError
from rotation.domain.model import FindingCode, Severity, ValidationReport
from rotation.domain.policy import DEFAULT_POLICY, RevocationMode
from rotation.domain.revocation import CrlFetcher
from rotation.domain.validation import validate_bundle
from tests.unit.conftest import AT, Pki

C = FindingCode


@dataclass
class CrlServer:
    """A loopback HTTP server: ``routes`` maps a path to (status, body); ``hits`` counts GETs."""

    base: str
    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this server."""
        return f"{self.base}{path}"


@pytest.fixture(name="server")
def _server() -> Iterator[CrlServer]:
    state = CrlServer(base="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits[self.path] = state.hits.get(self.path, 0) + 1
            status, body = state.routes.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(name="closed_url")
def _closed_url() -> str:
    """A URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.crl"


def fresh_crl(issuer: Issued, **kwargs: object) -> x509.CertificateRevocationList:
    """A CRL from ``issuer`` issued a day before AT (so current at AT) unless told otherwise."""
    kwargs.setdefault("last_update", AT - dt.timedelta(days=1))
    return make_crl(issuer, **kwargs)  # type: ignore[arg-type]


def der(crl: x509.CertificateRevocationList) -> bytes:
    """The CRL as DER."""
    return crl.public_bytes(serialization.Encoding.DER)


class FakeFetcher:
    """A CrlFetcher returning fixed CRLs (or raising) per URL, recording each call."""

    def __init__(self, answers: dict[str, x509.CertificateRevocationList | Exception]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def fetch(self, url: str, *, at: dt.datetime) -> x509.CertificateRevocationList:
        """Answer from the table."""
        self.calls.append(url)
        answer = self.answers[url]
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(
    pki: Pki,
    leaf: Issued,
    *,
    mode: RevocationMode,
    crls: tuple[x509.CertificateRevocationList, ...] = (),
    fetcher: CrlFetcher | None = None,
    at: dt.datetime = AT,
) -> ValidationReport:
    """Validate ``leaf`` under the RSA intermediate with the given revocation setup."""
    return validate_bundle(
        Bundle(leaf.cert, (pki.inter.cert,), leaf.key),
        trust_anchors=pki.anchors,
        policy=replace(DEFAULT_POLICY, revocation=mode),
        at=at,
        crls=crls,
        crl_fetcher=fetcher,
    )


def findings(report: ValidationReport) -> list[tuple[str, str]]:
    """(code, severity) pairs of a report."""
    return [(str(f.code), str(f.severity)) for f in report.findings]


class TestGivenCrls:
    """Explicitly given CRLs are checked in every mode, and verified before they count."""

    @pytest.mark.parametrize("mode", [RevocationMode.SOFT, RevocationMode.HARD])
    def test_revoked_leaf(self, pki: Pki, mode: RevocationMode):
        """A leaf listed in a valid given CRL is revocation.revoked in soft and hard mode."""
        crl = fresh_crl(pki.inter, revoked_serials=(pki.leaf.cert.serial_number,))

        report = run(pki, pki.leaf, mode=mode, crls=(crl, fresh_crl(pki.root)))

        assert findings(report) == [("revocation.revoked", "error")]

    def test_off_checks_nothing(self, pki: Pki):
        """Revocation off: even a CRL listing the leaf changes nothing."""
        crl = fresh_crl(pki.inter, revoked_serials=(pki.leaf.cert.serial_number,))

        assert run(pki, pki.leaf, mode=RevocationMode.OFF, crls=(crl,)).findings == ()

    def test_not_revoked(self, pki: Pki):
        """A valid CRL not listing the leaf is no finding (and nothing is fetched)."""
        crl = fresh_crl(
            pki.inter, revoked_serials=(12345,), last_update=EPOCH + dt.timedelta(days=55)
        )
        fetcher = FakeFetcher({})

        report = run(pki, pki.leaf, mode=RevocationMode.HARD, crls=(crl, fresh_crl(pki.root)), fetcher=fetcher)  # fmt: skip

        assert report.findings == ()
        assert fetcher.calls == []

    def test_revoked_intermediate(self, pki: Pki):
        """An intermediate listed in the root's CRL is revocation.revoked on that CA."""
        crl = fresh_crl(pki.root, revoked_serials=(pki.inter.cert.serial_number,))

        report = run(pki, pki.leaf, mode=RevocationMode.HARD, crls=(crl, fresh_crl(pki.inter)))

        assert findings(report) == [("revocation.revoked", "error")]
        assert report.findings[0].certificate == pki.inter.cert.subject.rfc4514_string()

    @pytest.mark.parametrize(("mode", "severity"), [(RevocationMode.SOFT, "warning"), (RevocationMode.HARD, "error")])  # fmt: skip
    def test_forged_crl_is_unavailable(self, pki: Pki, mode: RevocationMode, severity: str):
        """A CRL not signed by the issuer's key does not count: unavailable, never trusted."""
        forged = fresh_crl(pki.inter, revoked_serials=(pki.leaf.cert.serial_number,), signer=pki.spare_rsa)  # fmt: skip

        report = run(pki, pki.leaf, mode=mode, crls=(forged, fresh_crl(pki.root)))

        assert findings(report) == [("revocation.unavailable", severity)]
        assert "signature" in report.findings[0].message

    def test_stale_crl_is_unavailable(self, pki: Pki):
        """A CRL whose nextUpdate is before ``at`` is stale: it cannot show the leaf unrevoked.

        (A stale CRL that *lists* the leaf still proves it revoked: revocation does not expire.)
        """
        stale = fresh_crl(pki.inter, revoked_serials=(12345,), last_update=EPOCH, next_update=AT - dt.timedelta(hours=1))  # fmt: skip

        report = run(pki, pki.leaf, mode=RevocationMode.SOFT, crls=(stale, fresh_crl(pki.root)))

        assert findings(report) == [("revocation.unavailable", "warning")]
        assert report.findings[0].certificate == pki.leaf.cert.subject.rfc4514_string()

    def test_crl_from_the_future_is_unavailable(self, pki: Pki):
        """A CRL issued after ``at`` (beyond skew) is not valid yet."""
        future = fresh_crl(pki.inter, last_update=AT + dt.timedelta(days=1))

        report = run(pki, pki.leaf, mode=RevocationMode.HARD, crls=(future,))

        assert findings(report) == [("revocation.unavailable", "error"), ("revocation.unavailable", "error")]  # fmt: skip


class TestModes:
    """Distribution points are fetched in soft/hard mode only; failures by mode."""

    def test_hard_mode_without_any_source_is_an_error(self, pki: Pki):
        """In hard mode a certificate with no CRL at all cannot be shown unrevoked: error."""
        report = run(pki, pki.leaf, mode=RevocationMode.HARD)

        assert findings(report) == [("revocation.unavailable", "error")] * 2

    def test_soft_mode_without_any_source_warns(self, pki: Pki):
        """In soft mode a certificate whose status is unknown is accepted with a warning."""
        report = run(pki, pki.leaf, mode=RevocationMode.SOFT)

        assert findings(report) == [("revocation.unavailable", "warning")] * 2
        assert report.accepted
        assert "no HTTP(S) distribution point" in report.findings[0].message

    def test_off_mode_does_not_fetch(self, pki: Pki):
        """Revocation off: distribution points are not fetched."""
        url = "http://127.0.0.1:1/crl"
        leaf = mint_certificate("cdp-off", issuer=pki.inter, key=pki.leaf.key, crl_urls=(url,))
        fetcher = FakeFetcher({url: DependencyError("boom", service="crl", operation="fetch")})

        report = run(pki, leaf, mode=RevocationMode.OFF, fetcher=fetcher)

        assert report.findings == ()
        assert fetcher.calls == []

    def test_non_http_distribution_point(self, pki: Pki):
        """An LDAP distribution point is not fetched and is reported as unavailable in soft mode."""
        leaf = mint_certificate("cdp-ldap", issuer=pki.inter, key=pki.leaf.key, crl_urls=("ldap://dir/cn=crl",))  # fmt: skip

        report = run(pki, leaf, mode=RevocationMode.SOFT, fetcher=FakeFetcher({}))

        assert findings(report) == [("revocation.unavailable", "warning")] * 2
        assert "ldap://dir/cn=crl: only HTTP(S)" in report.findings[0].message


class TestHttpCrlFetcher:
    """The HTTP adapter against a loopback server: fetch, cache, caps, failures."""

    def test_fetches_and_caches_until_next_update(self, pki: Pki, server: CrlServer):
        """A fetched CRL is served from the cache until its nextUpdate, then fetched again."""
        crl = fresh_crl(pki.inter, last_update=EPOCH, next_update=AT + dt.timedelta(days=1))
        server.routes["/inter.crl"] = (200, der(crl))
        fetcher = HttpCrlFetcher(timeout=5, max_bytes=100_000)

        first = fetcher.fetch(server.url("/inter.crl"), at=AT)
        second = fetcher.fetch(server.url("/inter.crl"), at=AT + dt.timedelta(hours=23))
        third = fetcher.fetch(server.url("/inter.crl"), at=AT + dt.timedelta(days=2))
        fetcher.close()

        assert first == second == third == crl
        assert server.hits["/inter.crl"] == 2
        assert fetcher.fetches == 2

    def test_pem_crl(self, pki: Pki, server: CrlServer):
        """A PEM-encoded CRL is accepted too."""
        crl = fresh_crl(pki.inter)
        server.routes["/pem.crl"] = (200, crl.public_bytes(serialization.Encoding.PEM))

        assert HttpCrlFetcher().fetch(server.url("/pem.crl"), at=AT) == crl

    def test_size_cap(self, pki: Pki, server: CrlServer):
        """A body larger than max_bytes is refused without reading it all."""
        server.routes["/big.crl"] = (200, der(fresh_crl(pki.inter)) + b"\0" * 10_000)

        with pytest.raises(DependencyError, match="larger than 1000 bytes"):
            HttpCrlFetcher(max_bytes=1000).fetch(server.url("/big.crl"), at=AT)

    def test_http_errors(self, server: CrlServer):
        """404 is a DependencyError; 503 a TransientDependencyError with the status code."""
        server.routes["/down.crl"] = (503, b"")
        fetcher = HttpCrlFetcher()

        with pytest.raises(DependencyError, match="HTTP 404") as missing:
            fetcher.fetch(server.url("/nope.crl"), at=AT)
        with pytest.raises(TransientDependencyError, match="HTTP 503") as down:
            fetcher.fetch(server.url("/down.crl"), at=AT)

        assert not isinstance(missing.value, TransientDependencyError)
        assert down.value.status_code == 503

    def test_not_a_crl(self, server: CrlServer):
        """A body that is not a CRL is a DependencyError naming the URL."""
        server.routes["/junk.crl"] = (200, b"<html>hello</html>")

        with pytest.raises(DependencyError, match=r"junk\.crl: not a CRL"):
            HttpCrlFetcher().fetch(server.url("/junk.crl"), at=AT)

    def test_unreachable(self, closed_url: str):
        """A closed port is a TransientDependencyError (unreachable)."""
        with pytest.raises(TransientDependencyError, match="unreachable"):
            HttpCrlFetcher(timeout=2).fetch(closed_url, at=AT)

    def test_timeout(self):
        """A server that accepts but never answers times out within the timeout."""
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow.crl"

            with pytest.raises(TransientDependencyError, match="timed out"):
                HttpCrlFetcher(timeout=0.3).fetch(url, at=AT)

    def test_only_http_schemes(self):
        """file:// and ldap:// are refused without any I/O."""
        with pytest.raises(DependencyError, match="only HTTP"):
            HttpCrlFetcher().fetch("file:///etc/passwd", at=AT)

    def test_injected_client(self, pki: Pki):
        """An injected httpx client (MockTransport) is used as is."""
        crl = fresh_crl(pki.inter)
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(str(request.url))
            return httpx.Response(200, content=der(crl))

        client = httpx.Client(transport=httpx.MockTransport(handler))
        fetcher = HttpCrlFetcher(client=client)

        assert fetcher.fetch("https://pki.example.test/inter.crl", at=AT) == crl
        fetcher.close()
        assert not client.is_closed
        assert seen == ["https://pki.example.test/inter.crl"]

    def test_rejects_nonsense_settings(self):
        """Zero or negative limits are programming errors."""
        with pytest.raises(ValueError, match="positive"):
            HttpCrlFetcher(timeout=0)


class TestEndToEndOverHttp:
    """validate_bundle with the HTTP fetcher and a CRL served on 127.0.0.1."""

    @pytest.mark.parametrize("mode", [RevocationMode.SOFT, RevocationMode.HARD])
    def test_revoked_via_distribution_point(
        self, pki: Pki, server: CrlServer, mode: RevocationMode
    ):
        """A leaf revoked in the CRL its distribution point serves is revocation.revoked."""
        leaf = mint_certificate("cdp-revoked", issuer=pki.inter, key=pki.leaf.key, crl_urls=(server.url("/r.crl"),))  # fmt: skip
        server.routes["/r.crl"] = (200, der(fresh_crl(pki.inter, revoked_serials=(leaf.cert.serial_number,))))  # fmt: skip
        root_crl = fresh_crl(pki.root)

        report = run(pki, leaf, mode=mode, crls=(root_crl,), fetcher=HttpCrlFetcher())

        assert findings(report) == [("revocation.revoked", "error")]
        assert server.hits == {"/r.crl": 1}

    def test_good_via_distribution_point(self, pki: Pki, server: CrlServer):
        """A leaf absent from its served CRL passes hard mode (root covered by a given CRL)."""
        leaf = mint_certificate("cdp-good", issuer=pki.inter, key=pki.leaf.key, crl_urls=(server.url("/g.crl"),))  # fmt: skip
        server.routes["/g.crl"] = (200, der(fresh_crl(pki.inter)))

        report = run(pki, leaf, mode=RevocationMode.HARD, crls=(fresh_crl(pki.root),), fetcher=HttpCrlFetcher())  # fmt: skip

        assert report.findings == ()

    @pytest.mark.parametrize(
        ("mode", "expected"),
        [(RevocationMode.OFF, []), (RevocationMode.SOFT, [("revocation.unavailable", "warning")]), (RevocationMode.HARD, [("revocation.unavailable", "error")])],
    )  # fmt: skip
    def test_unreachable_distribution_point(self, pki: Pki, closed_url: str, mode: RevocationMode, expected: list[tuple[str, str]]):  # fmt: skip
        """An unreachable CRL: nothing when off, a warning in soft mode, an error in hard mode."""
        leaf = mint_certificate("cdp-gone", issuer=pki.inter, key=pki.leaf.key, crl_urls=(closed_url,))  # fmt: skip

        report = run(pki, leaf, mode=mode, crls=(fresh_crl(pki.root),), fetcher=HttpCrlFetcher(timeout=2))  # fmt: skip

        assert findings(report) == expected
        assert report.accepted is (mode is not RevocationMode.HARD)
        if expected:
            assert closed_url in report.findings[0].message
            assert report.findings[0].severity is Severity(expected[0][1])
