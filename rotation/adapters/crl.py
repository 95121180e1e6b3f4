"""Revocation I/O: fetch CRLs from CRL distribution points over HTTP(S) with httpx.

``HttpCrlFetcher`` implements ``rotation.domain.revocation.CrlFetcher``: a per-request timeout
plus an overall deadline, a streamed size cap (the body is never read past ``max_bytes``), and
an in-memory cache keyed by URL that keeps a CRL until its ``nextUpdate`` (judged at the ``at``
the caller passes, so tests control time). Failures are ``DependencyError``s whose message names
the URL and the reason; the domain turns them into ``revocation.unavailable``.

CRL URLs come from certificates, so a fetch can reach any host the certificate names: run
validation where that is acceptable (the Functions app's outbound network), as every TLS client
that checks CRLs does.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509

from rotation.domain.errors import DependencyError, TransientDependencyError

if TYPE_CHECKING:  # httpx is imported on the first download: most validations fetch no CRL
    import httpx

__all__ = ["HttpCrlFetcher"]

_SERVICE = "crl"
_OPERATION = "fetch"


class HttpCrlFetcher:
    """Fetch, parse (DER or PEM) and cache CRLs.

    ``client`` is an ``httpx.Client`` to use (tests pass one with a ``MockTransport``); by
    default one is built lazily and closed by ``close()``.
    """

    def __init__(
        self,
        timeout: float = 5.0,
        max_bytes: int = 4 * 1024 * 1024,
        client: httpx.Client | None = None,
        *,
        max_entries: int = 256,
    ) -> None:
        if timeout <= 0 or max_bytes <= 0 or max_entries <= 0:
            raise ValueError("timeout, max_bytes and max_entries must be positive")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._client = client
        self._owns_client = client is None
        self._cache: OrderedDict[str, x509.CertificateRevocationList] = OrderedDict()
        self._lock = threading.Lock()
        self.fetches = 0  # network fetches made (observable by tests and benchmarks)

    def fetch(self, url: str, *, at: datetime) -> x509.CertificateRevocationList:
        """The CRL at ``url``, from the cache while its ``nextUpdate`` is after ``at``.

        Raises:
            TransientDependencyError: timeout, connection failure, 429 or 5xx.
            DependencyError: not HTTP(S), another status, larger than ``max_bytes``, not a CRL.
        """
        if not url.lower().startswith(("http://", "https://")):
            raise DependencyError(f"{url}: only HTTP(S) CRLs are fetched", service=_SERVICE, operation=_OPERATION)  # fmt: skip
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None and (cached.next_update_utc or at) > at:
            return cached
        crl = _parse(url, self._download(url))
        if crl.next_update_utc is not None and crl.next_update_utc > at:
            with self._lock:
                self._cache[url] = crl
                self._cache.move_to_end(url)
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        return crl

    def close(self) -> None:
        """Close the HTTP client if this fetcher built it."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx  # noqa: PLC0415 - on first use

            self._client = httpx.Client(follow_redirects=True, max_redirects=3)
        return self._client

    def _download(self, url: str) -> bytes:
        import httpx  # noqa: PLC0415 - on first use

        self.fetches += 1
        deadline = time.monotonic() + self.timeout
        try:
            with self._http().stream("GET", url, timeout=self.timeout) as response:
                _check_status(url, response.status_code)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise self._too_large(url)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise self._too_large(url)
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("overall deadline passed")
        except httpx.TimeoutException:
            raise TransientDependencyError(f"{url}: timed out after {self.timeout}s", service=_SERVICE, operation=_OPERATION) from None  # fmt: skip
        except httpx.HTTPError as exc:
            raise TransientDependencyError(f"{url}: unreachable ({type(exc).__name__})", service=_SERVICE, operation=_OPERATION) from None  # fmt: skip
        return bytes(body)

    def _too_large(self, url: str) -> DependencyError:
        return DependencyError(f"{url}: CRL larger than {self.max_bytes} bytes", service=_SERVICE, operation=_OPERATION)  # fmt: skip


def _check_status(url: str, status: int) -> None:
    if status == 200:  # noqa: PLR2004 - HTTP OK
        return
    error = TransientDependencyError if status == 429 or status >= 500 else DependencyError  # noqa: PLR2004
    raise error(
        f"{url}: HTTP {status}", service=_SERVICE, operation=_OPERATION, status_code=status
    )


def _parse(url: str, body: bytes) -> x509.CertificateRevocationList:
    try:
        if body.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(body)
        return x509.load_der_x509_crl(body)
    except ValueError:
        raise DependencyError(
            f"{url}: not a CRL", service=_SERVICE, operation=_OPERATION
        ) from None
