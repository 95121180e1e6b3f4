"""Session-scoped PKIs for the validation tests: key generation is the slow part, so it is done once.

``pki`` holds an RSA chain (root → intermediate → leaf), an EC chain, and spare keys; tests mint
variants with ``mint_certificate(..., key=<a spare key>)``, which only costs a signature.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509

from devstack.pki import EPOCH, Issued, PrivateKey, make_key, mint_certificate, mint_chain

AT = EPOCH + dt.timedelta(days=59)  # 2026-03-01: inside every default validity window


@dataclass(frozen=True)
class Pki:
    """Minted once per session. ``leaf``/``inter``/``root`` are RSA 2048; ``ec_*`` are P-256."""

    leaf: Issued
    inter: Issued
    root: Issued
    ec_leaf: Issued
    ec_inter: Issued
    ec_root: Issued
    other_root: Issued  # a CA nobody trusts
    spare_rsa: PrivateKey  # for extra RSA CAs (renewed intermediates, deeper chains)
    spare_rsa2: PrivateKey
    rsa1024: PrivateKey

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        """The trust anchors of the RSA and EC chains."""
        return (self.root.cert, self.ec_root.cert)

    def deep_chain(self, depth: int) -> list[Issued]:
        """``[leaf, intermediates..., root]`` of ``depth`` certificates, reusing minted keys."""
        keys = [self.inter.key, self.spare_rsa, self.spare_rsa2, self.other_root.key] * 2
        chain = [self.root]
        for i in range(depth - 2):
            chain.append(
                mint_certificate(
                    f"certrotate Deep CA {i + 1}",
                    issuer=chain[-1],
                    key=keys[i],
                    ca=True,
                    not_before=EPOCH - dt.timedelta(days=10),
                    not_after=EPOCH + dt.timedelta(days=1000),
                )
            )
        leaf = mint_certificate(
            f"deep{depth}.certrotate.test", issuer=chain[-1], key=self.leaf.key
        )
        return [leaf, *reversed(chain)]


@pytest.fixture(scope="session", name="pki")
def _pki() -> Pki:
    leaf, inter, root = mint_chain(depth=3)
    ec_leaf, ec_inter, ec_root = mint_chain(depth=3, kind="ec", size=256)
    other_root = mint_certificate("certrotate Untrusted Root CA", key=make_key(), ca=True)
    return Pki(
        leaf=leaf,
        inter=inter,
        root=root,
        ec_leaf=ec_leaf,
        ec_inter=ec_inter,
        ec_root=ec_root,
        other_root=other_root,
        spare_rsa=make_key(),
        spare_rsa2=make_key(),
        rsa1024=make_key("rsa", 1024),
    )
