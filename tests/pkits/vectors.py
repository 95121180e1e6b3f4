"""NIST PKITS (2011 edition) from ``cryptography-vectors``: each case's candidate and CRLs.

A case is an end-entity certificate ``{Valid,Invalid}<Name>Test<N>EE.crt``. Its candidate
bundle is the EE plus every CA certificate that can sit on a path from it to the trust anchor
(found by name chaining, including the certificates of CRL issuers its distribution points
name), and its CRLs are those issued by those CAs: "the CRLs of the path's CAs".
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cryptography_vectors
from cryptography import x509

from rotation.domain.bundle import Bundle
from rotation.domain.model import Severity
from rotation.domain.pkix import TrustAnchors, name_key
from rotation.domain.policy import DEFAULT_POLICY, RevocationMode
from rotation.domain.validation import validate_bundle

ROOT = Path(cryptography_vectors.__file__).parent / "x509" / "PKITS_data"
ANCHOR_FILE = "TrustAnchorRootCertificate.crt"
UNREADABLE: list[str] = []  # files cryptography refuses to parse


@dataclass(frozen=True)
class Case:
    name: str  # the EE file name without "EE.crt"
    leaf: x509.Certificate
    others: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]

    @property
    def valid(self) -> bool:
        return self.name.startswith("Valid")


@functools.cache
def _certificates() -> dict[str, x509.Certificate]:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted((ROOT / "certs").glob("*.crt")):
            try:
                out[path.name] = x509.load_der_x509_certificate(path.read_bytes())
            except ValueError:  # cryptography cannot read it (DSA parameters inherited)
                UNREADABLE.append(path.name)
    return out


@functools.cache
def _crls() -> dict[str, x509.CertificateRevocationList]:
    return {p.name: x509.load_der_x509_crl(p.read_bytes()) for p in sorted((ROOT / "crls").glob("*.crl"))}  # fmt: skip


def anchor() -> x509.Certificate:
    return _certificates()[ANCHOR_FILE]


def case_names() -> list[str]:
    files = [p.name for p in (ROOT / "certs").glob("*EE.crt")]
    return sorted(n.removesuffix("EE.crt") for n in files if n.startswith(("Valid", "Invalid")))


def _crl_issuers(cert: x509.Certificate) -> set[Any]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return set()
    return {name_key(n.value) for p in points for n in p.crl_issuer or () if isinstance(n, x509.DirectoryName)}  # fmt: skip


def load(name: str) -> Case | None:
    """The case, or ``None`` when cryptography cannot parse its end-entity certificate."""
    certs = _certificates()
    leaf = certs.get(f"{name}EE.crt")
    if leaf is None:
        return None
    cas = [c for n, c in certs.items() if not n.endswith("EE.crt") and n != ANCHOR_FILE]
    names = {name_key(leaf.issuer), *_crl_issuers(leaf)}
    chosen: list[x509.Certificate] = []
    grown = True
    while grown:
        grown = False
        for cert in cas:
            if name_key(cert.subject) in names and cert not in chosen:
                chosen.append(cert)
                names |= {name_key(cert.issuer), *_crl_issuers(cert)}
                grown = True
    crls = tuple(c for c in _crls().values() if name_key(c.issuer) in names)
    return Case(name, leaf, tuple(chosen), crls)


AT = dt.datetime(2020, 6, 1, tzinfo=dt.UTC)  # inside every PKITS certificate's and CRL's window
# The verdict PKITS judges: the path (with the leaf's own dates, RFC 5280 6.1.3) and revocation.
PATH_CODES = ("chain.", "revocation.", "validity.expired", "validity.not_yet_valid")


@dataclass(frozen=True)
class Outcome:
    accepted: bool  # no path or revocation error
    codes: frozenset[str]  # path/revocation finding codes, errors and warnings


def run(case: Case, mode: RevocationMode, anchors: TrustAnchors) -> Outcome:
    """Validate the case as `certrotate validate` would with its CRLs passed by --crl.

    The product's own rules (RSA 1024 and SHA-1 in PKITS are ``key.weak`` and
    ``signature.weak_algorithm``; no clientAuth EKU, short lifetimes, no key) are left out of
    the verdict: PKITS judges the path and revocation only.
    """
    policy = replace(DEFAULT_POLICY, revocation=mode, require_key=False, min_remaining_days=0)
    report = validate_bundle(Bundle(case.leaf, case.others), trust_anchors=anchors, policy=policy, at=AT, crls=case.crls)  # fmt: skip
    relevant = [f for f in report.findings if str(f.code).startswith(PATH_CODES)]
    accepted = not any(f.severity is Severity.ERROR for f in relevant)
    return Outcome(accepted, frozenset(str(f.code) for f in relevant))
