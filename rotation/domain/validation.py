"""Validate a certificate bundle against the policy (docs/architecture.md, "Validation and finding codes") and report every finding.

Path validation uses ``cryptography.x509.verification``'s *client* verifier with extension
policies chosen on purpose for private-CA client certificates:

* CA certificates: ``ExtensionPolicy.webpki_defaults_ca()`` unchanged, so an issuer must assert
  basicConstraints CA:TRUE (and respect pathLenConstraint) and keyUsage keyCertSign.
* The leaf: ``webpki_defaults_ee()`` with subjectAltName relaxed to ``may_be_present``. Private-CA
  client certificates are identified by subject, and often carry no SAN; APIM presents them to
  a backend, which matches on thumbprint or subject, never on a SAN. Every other WebPKI
  end-entity rule stays (no CA:TRUE, EKU must allow clientAuth when present, no unknown critical
  extension).

The verifier runs at ``at`` clamped into the leaf's own validity window: the leaf's dates are
judged by the precise ``validity.*`` checks (with the policy's clock skew), so an expired leaf is
``validity.expired`` rather than an anonymous untrusted path; intermediates and anchors are then
checked at ``at`` itself. When the verifier refuses, its error text (not a stable API) is not
parsed: the path is rebuilt here, signature by signature, to name the reason
(``chain.untrusted``, ``chain.bad_signature``, ``chain.issuer_expired``,
``signature.weak_algorithm``, ``key.weak``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509 import verification as xv

from rotation.domain.bundle import Bundle, parse_bundle
from rotation.domain.checks import (
    identity_findings,
    is_weak_signature,
    key_findings,
    key_problem,
    leaf_findings,
    name_of,
    signed_by,
    summarize,
    summarize_issuer,
    weak_signature_finding,
)
from rotation.domain.errors import BundleFormatError
from rotation.domain.model import Finding, FindingCode, SecretMaterial, Severity, ValidationReport
from rotation.domain.policy import DEFAULT_POLICY, ValidationPolicy
from rotation.domain.revocation import CrlFetcher, revocation_findings

__all__ = ["CrlFetcher", "PolicyValidator", "unreadable_report", "validate_bundle"]

CA_POLICY = xv.ExtensionPolicy.webpki_defaults_ca()
EE_POLICY = xv.ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, xv.Criticality.AGNOSTIC, None
)
_SEARCH_BUDGET = 256  # signature checks the diagnosis may spend on a hostile bundle


def validate_bundle(
    bundle: Bundle,
    *,
    trust_anchors: Sequence[x509.Certificate],
    policy: ValidationPolicy = DEFAULT_POLICY,
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList] = (),
    crl_fetcher: CrlFetcher | None = None,
    expected_identity: tuple[str, str] | None = None,
) -> ValidationReport:
    """Run every check of the policy at time ``at`` and report all findings.

    ``expected_identity`` is the (subject, issuer) of the version in use, in RFC 4514 form as
    ``CertificateSummary`` spells them; a difference is ``identity.changed`` when the policy pins
    identity.

    Raises:
        ValueError: ``at`` is naive (times are always explicit and tz-aware).
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    at = at.astimezone(UTC)
    leaf = bundle.leaf
    findings = leaf_findings(leaf, policy, at)
    findings += key_findings(leaf, bundle.private_key, policy)
    path, path_findings = _validate_path(bundle, tuple(trust_anchors), policy, at, findings)
    findings += path_findings
    if path:
        findings += revocation_findings(path, policy=policy, at=at, crls=crls, fetcher=crl_fetcher)
    findings += identity_findings(leaf, policy, expected_identity)
    issuers = tuple(summarize_issuer(c) for c in path[1:])  # path[0] is always the leaf
    summary = summarize(leaf, issuer=issuers[0].subject if issuers else None)
    return ValidationReport(
        findings=tuple(findings), leaf=summary, chain=(summary, *issuers) if path else ()
    )


def unreadable_report(message: str) -> ValidationReport:
    """The report for a bundle that cannot be parsed: one ``format.unreadable`` error."""
    finding = Finding(code=FindingCode.FORMAT_UNREADABLE, severity=Severity.ERROR, message=message)
    return ValidationReport(findings=(finding,), leaf=None, chain=())


class PolicyValidator:
    """The ``rotation.ports.Validator``: parses Key Vault secret material, then validates it."""

    def __init__(
        self,
        trust_anchors: Sequence[x509.Certificate],
        policy: ValidationPolicy = DEFAULT_POLICY,
        crl_fetcher: CrlFetcher | None = None,
    ) -> None:
        self.trust_anchors = tuple(trust_anchors)
        self.policy = policy
        self.crl_fetcher = crl_fetcher

    def validate(
        self,
        material: SecretMaterial,
        *,
        at: datetime,
        expected_identity: tuple[str, str] | None = None,
    ) -> ValidationReport:
        """Validate ``material`` at ``at``; an unparsable bundle is a ``format.unreadable`` finding.

        Raises:
            ValueError: ``at`` is naive.
        """
        try:
            bundle = parse_bundle(material.value)
        except BundleFormatError as exc:
            return unreadable_report(str(exc))
        return validate_bundle(
            bundle,
            trust_anchors=self.trust_anchors,
            policy=self.policy,
            at=at,
            crl_fetcher=self.crl_fetcher,
            expected_identity=expected_identity,
        )


_STORES: dict[tuple[int, ...], tuple[tuple[x509.Certificate, ...], xv.Store]] = {}


def _store(anchors: tuple[x509.Certificate, ...]) -> xv.Store:
    """One ``Store`` per set of anchor objects (keyed by identity; entries pin the objects)."""
    key = tuple(map(id, anchors))
    entry = _STORES.get(key)
    if entry is not None and all(a is b for a, b in zip(entry[0], anchors, strict=True)):
        return entry[1]
    store = xv.Store(list(anchors))
    if len(_STORES) >= 16:  # noqa: PLR2004 - a handful of anchor sets per process
        _STORES.clear()
    _STORES[key] = (anchors, store)
    return store


def _validate_path(
    bundle: Bundle,
    anchors: tuple[x509.Certificate, ...],
    policy: ValidationPolicy,
    at: datetime,
    leaf_problems: list[Finding],
) -> tuple[tuple[x509.Certificate, ...], list[Finding]]:
    """The verified path (leaf first) and its findings; on refusal, the diagnosed path."""
    leaf = bundle.leaf
    if not anchors:
        message = "no trust anchors were given, so no chain can be trusted"
        return (), [_error(FindingCode.CHAIN_UNTRUSTED, message, leaf)]
    moment = min(max(at, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    verifier = (
        xv.PolicyBuilder()
        .store(_store(anchors))
        .time(moment)
        .max_chain_depth(policy.max_chain_depth)
        .extension_policies(ca_policy=CA_POLICY, ee_policy=EE_POLICY)
        .build_client_verifier()
    )
    try:
        path = tuple(verifier.verify(leaf, list(bundle.others)).chain)
    except xv.VerificationError as exc:
        return _diagnose(
            bundle, anchors, policy=policy, at=at, leaf_problems=leaf_problems, error=str(exc)
        )
    findings = [] if moment == at else _issuer_dates(path[1:], at)
    return path, findings


def _issuer_dates(issuers: Sequence[x509.Certificate], at: datetime) -> list[Finding]:
    out = []
    for cert in issuers:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if not start <= at <= end:
            when = f"expired at {end.isoformat()}" if at > end else f"not valid before {start.isoformat()}"  # fmt: skip
            out.append(_error(FindingCode.CHAIN_ISSUER_EXPIRED, f"issuer {when}", cert))
    return out


@dataclass(slots=True)
class _Search:
    anchors: frozenset[x509.Certificate]
    pool: tuple[x509.Certificate, ...]
    max_depth: int
    budget: int = _SEARCH_BUDGET
    paths: list[tuple[x509.Certificate, ...]] = field(default_factory=list)
    stuck: list[x509.Certificate] = field(default_factory=list)  # certs with no usable issuer
    forged: list[x509.Certificate] = field(default_factory=list)  # issuer by name, not by key

    def walk(self, path: tuple[x509.Certificate, ...]) -> None:
        cert = path[-1]
        if cert in self.anchors:
            self.paths.append(path)
            return
        if len(path) >= self.max_depth:
            return
        found = False
        for issuer in self.pool:
            if issuer.subject != cert.issuer or issuer in path or self.budget <= 0:
                continue
            self.budget -= 1
            if signed_by(cert, issuer):
                found = True
                self.walk((*path, issuer))
            elif cert not in self.forged:
                self.forged.append(cert)
        if not found:
            self.stuck.append(cert)


def _diagnose(
    bundle: Bundle,
    anchors: tuple[x509.Certificate, ...],
    *,
    policy: ValidationPolicy,
    at: datetime,
    leaf_problems: list[Finding],
    error: str,
) -> tuple[tuple[x509.Certificate, ...], list[Finding]]:
    pool = tuple(dict.fromkeys((*bundle.others, *anchors)))
    search = _Search(frozenset(anchors), pool, policy.max_chain_depth)
    search.walk((bundle.leaf,))
    if not search.paths:
        return (), [_no_path(bundle.leaf, search)]
    scored = [(len(_path_problems(p, policy, at)), len(p), p) for p in search.paths]
    path = min(scored, key=lambda item: item[:2])[2]
    problems = _path_problems(path, policy, at)
    explained = {f.code for f in leaf_problems} & {
        FindingCode.USAGE_LEAF_IS_CA,
        FindingCode.USAGE_CLIENT_AUTH_MISSING,
        FindingCode.SIGNATURE_WEAK_ALGORITHM,
    }
    if not problems and not explained:
        reason = error.removeprefix("validation failed: ")
        message = f"the verifier refused the path to {name_of(path[-1])}: {reason}"
        problems = [_error(FindingCode.CHAIN_UNTRUSTED, message, bundle.leaf)]
    return path, problems


def _path_problems(
    path: Sequence[x509.Certificate], policy: ValidationPolicy, at: datetime
) -> list[Finding]:
    """Issuer dates, weak signatures and weak issuer keys along a path (leaf checked apart)."""
    out = _issuer_dates(path[1:], at)
    out += [weak_signature_finding(c) for c in path[1:-1] if is_weak_signature(c)]
    for cert in path[1:]:
        reason = key_problem(cert, policy)
        if reason:
            out.append(_error(FindingCode.KEY_WEAK, f"issuer key: {reason}", cert))
    return out


def _no_path(leaf: x509.Certificate, search: _Search) -> Finding:
    forged = [c for c in search.forged if c in search.stuck]
    if forged:
        cert = forged[0]
        message = f"not signed by the key of its issuer {cert.issuer.rfc4514_string()}"
        return _error(FindingCode.CHAIN_BAD_SIGNATURE, message, cert)
    if leaf.issuer == leaf.subject:
        return _error(FindingCode.CHAIN_UNTRUSTED, "self-signed and not a trust anchor", leaf)
    cert = search.stuck[-1] if search.stuck else leaf
    if cert.issuer == cert.subject:  # a root that came with the bundle, but nobody trusts it
        message = (
            f"no path to a trust anchor: the chain ends at the self-signed {name_of(cert)}, "
            "which is not a trust anchor (unknown CA)"
        )
        return _error(FindingCode.CHAIN_UNTRUSTED, message, leaf)
    message = (
        f"no path to a trust anchor: issuer {cert.issuer.rfc4514_string()} of "
        f"{name_of(cert)} is neither in the bundle nor a trust anchor "
        "(missing intermediate or unknown CA)"
    )
    return _error(FindingCode.CHAIN_UNTRUSTED, message, leaf)


def _error(code: FindingCode, message: str, cert: x509.Certificate) -> Finding:
    return Finding(code=code, severity=Severity.ERROR, message=message, certificate=name_of(cert))
