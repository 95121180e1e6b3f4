"""The CRL source port: where revocation lists come from.

The CRL processing itself (RFC 5280 §6.3) is in ``rotation.domain.pkix``. The domain stays pure:
CRLs are given explicitly, or fetched from a path certificate's HTTP(S) distribution points by
a ``CrlFetcher`` passed in (``rotation.adapters.crl`` has the HTTP one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from cryptography import x509

__all__ = ["CrlFetcher"]

MAX_URLS_PER_CERTIFICATE = 4


@runtime_checkable
class CrlFetcher(Protocol):
    """Fetches a CRL from a distribution point URL (HTTP or HTTPS)."""

    def fetch(self, url: str, *, at: datetime) -> x509.CertificateRevocationList:
        """The CRL at ``url``; a cached copy is fine while its ``nextUpdate`` is after ``at``.

        Raises:
            DependencyError: unreachable, timed out, too large, not a CRL (message names the
                URL and the reason; ``TransientDependencyError`` where a retry may help).
        """
        ...
