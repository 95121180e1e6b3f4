"""Validate a certificate bundle against the policy (docs/architecture.md, "Validation and finding
codes") and report every finding.

Path validation is RFC 5280 §6.1 and CRL processing RFC 5280 §6.3, both done by
``pyhanko-certvalidator`` (``rotation.domain.pkix``; the reasons for that choice are in
docs/validation.md). ``cryptography`` stays the parser for everything else.

On top of RFC 5280 the product keeps its own, stricter rules, each a finding with its code:
``usage.leaf_is_ca``, ``key.weak`` (leaf and issuers), ``signature.weak_algorithm`` (leaf and
intermediates), clientAuth EKU (``usage.client_auth_missing``), the minimum remaining lifetime
(``validity.too_short``), the private key (``key.missing``/``key.mismatch``) and an unknown
critical extension on the leaf (``chain.untrusted``: RFC 5280 leaves the leaf's critical
extensions to the application).

Deliberate relaxations of the WebPKI (CA/Browser Forum) profile, because private CAs issue
APIM client certificates and OpenSSL-based backends accept them:

* no authorityKeyIdentifier / subjectKeyIdentifier is required on any certificate (issuers are
  found by name, RFC 5280 §7.1, and confirmed by signature);
* no subjectAltName is required on the leaf (backends match on thumbprint or subject).

Revocation (``ValidationPolicy.revocation``): ``off`` checks nothing; ``soft`` and ``hard``
check every certificate of the path but the anchor against CRLs (given, or fetched from its
distribution points). A certificate listed in a valid CRL is ``revocation.revoked`` (error) in
both; one whose status cannot be determined from a valid CRL is ``revocation.unavailable``,
an error in ``hard`` and a warning naming the reason in ``soft``.

Hostile input never raises: an unreadable structure is ``format.unreadable``, anything the
path or CRL machinery refuses is a finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509

from rotation.domain import pkix
from rotation.domain.bundle import Bundle, parse_bundle
from rotation.domain.checks import (
    identity_findings,
    is_weak_signature,
    key_findings,
    key_problem,
    leaf_findings,
    name_of,
    serial_of,
    weak_signature_finding,
)
from rotation.domain.errors import BundleFormatError
from rotation.domain.model import Finding, FindingCode, SecretMaterial, Severity, ValidationReport
from rotation.domain.pkix import TrustAnchors
from rotation.domain.policy import DEFAULT_POLICY, RevocationMode, ValidationPolicy
from rotation.domain.revocation import CrlFetcher

__all__ = ["CrlFetcher", "PolicyValidator", "TrustAnchors", "unreadable_report", "validate_bundle"]


def validate_bundle(
    bundle: Bundle,
    *,
    trust_anchors: Sequence[x509.Certificate] | TrustAnchors,
    policy: ValidationPolicy = DEFAULT_POLICY,
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList] = (),
    crl_fetcher: CrlFetcher | None = None,
    expected_identity: tuple[str, str] | None = None,
) -> ValidationReport:
    """Run every check of the policy at time ``at`` and report all findings.

    ``trust_anchors`` is best a ``TrustAnchors`` built once (it holds the prepared anchors and
    the summaries of the CA certificates seen); a sequence of certificates is prepared per call.
    ``expected_identity`` is the (subject, issuer) of the version in use, in RFC 4514 form as
    ``CertificateSummary`` spells them; a difference is ``identity.changed`` when the policy pins
    identity.

    Raises:
        ValueError: ``at`` is naive (times are always explicit and tz-aware).
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    try:
        at = at.astimezone(UTC)
        anchors = trust_anchors if isinstance(trust_anchors, TrustAnchors) else TrustAnchors(trust_anchors)  # fmt: skip
        return _validate(
            bundle, anchors, policy, at, crls=crls, fetcher=crl_fetcher, identity=expected_identity
        )
    except (
        OverflowError,
        ValueError,
        TypeError,
    ) as exc:  # the domain is total: a finding, never a traceback
        return unreadable_report(f"the certificate cannot be validated: {type(exc).__name__}: {exc}")  # fmt: skip


def _validate(
    bundle: Bundle,
    anchors: TrustAnchors,
    policy: ValidationPolicy,
    at: datetime,
    *,
    crls: Sequence[x509.CertificateRevocationList],
    fetcher: CrlFetcher | None,
    identity: tuple[str, str] | None,
) -> ValidationReport:
    leaf = bundle.leaf
    findings = leaf_findings(leaf, policy, at)
    findings += key_findings(leaf, bundle.private_key, policy)
    findings += _unknown_critical(leaf)
    findings += _serial_findings(bundle)
    checked: pkix.PathResult | None = None
    refused: list[Finding] = []
    if not anchors:
        message = "no trust anchors were given, so no chain can be trusted"
        result = pkix.PathResult(findings=[_error(FindingCode.CHAIN_UNTRUSTED, message, leaf)])
    else:
        if policy.revocation is not RevocationMode.OFF:  # one pass for a good chain
            checked = pkix.validate_with_crls(
                leaf, bundle.others, anchors, at=at, skew=policy.clock_skew,
                max_depth=policy.max_chain_depth, crls=crls,
                hard=policy.revocation is RevocationMode.HARD,
                fetch=fetcher.fetch if fetcher is not None else None,
            )  # fmt: skip
        result = checked or pkix.build_path(
            leaf, bundle.others, anchors, at=at, skew=policy.clock_skew, max_depth=policy.max_chain_depth
        )  # fmt: skip
    findings += result.findings
    path = result.path
    if path:
        findings += _path_problems(path, policy, at)
        if policy.revocation is not RevocationMode.OFF and checked is None:
            refused = pkix.check_revocation(
                result,
                bundle.others,
                anchors,
                at=at,
                skew=policy.clock_skew,
                hard=policy.revocation is RevocationMode.HARD,
                crls=crls,
                fetch=fetcher.fetch if fetcher is not None else None,
            )
    findings += refused
    if checked is None and (result.findings or refused):
        anchors.forget()  # pyhanko may leave state on refused objects: start clean next time
    findings += identity_findings(leaf, policy, identity)
    issuers = tuple(anchors.summary(c) for c in path[1:])  # path[0] is always the leaf
    summary = anchors.leaf_summary(leaf, issuer=issuers[0].subject if issuers else None)
    return ValidationReport(
        findings=tuple(findings), leaf=summary, chain=(summary, *issuers) if path else ()
    )


def unreadable_report(message: str) -> ValidationReport:
    """The report for a bundle that cannot be parsed: one ``format.unreadable`` error."""
    finding = Finding(code=FindingCode.FORMAT_UNREADABLE, severity=Severity.ERROR, message=message)
    return ValidationReport(findings=(finding,), leaf=None, chain=())


class PolicyValidator:
    """The ``rotation.ports.Validator``: parses Key Vault secret material, then validates it.

    It owns its prepared ``TrustAnchors`` (and so the summaries cached with them).
    """

    def __init__(
        self,
        trust_anchors: Sequence[x509.Certificate],
        policy: ValidationPolicy = DEFAULT_POLICY,
        crl_fetcher: CrlFetcher | None = None,
    ) -> None:
        self.trust_anchors = tuple(trust_anchors)
        self.anchors = TrustAnchors(self.trust_anchors)
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
            trust_anchors=self.anchors,
            policy=self.policy,
            at=at,
            crl_fetcher=self.crl_fetcher,
            expected_identity=expected_identity,
        )


def _serial_findings(bundle: Bundle) -> list[Finding]:
    """RFC 5280 §4.1.2.2: serials are positive (cryptography will refuse others to load)."""
    return [
        _error(
            FindingCode.FORMAT_UNREADABLE,
            f"serial number {serial_of(cert)} is not positive (RFC 5280 4.1.2.2); "
            "TLS libraries are dropping support for such certificates",
            cert,
        )
        for cert in bundle.certificates
        if serial_of(cert) <= 0
    ]


def _unknown_critical(leaf: x509.Certificate) -> list[Finding]:
    """RFC 5280 leaves the leaf's critical extensions to the application: refuse unknown ones."""
    unknown = [
        e.oid.dotted_string
        for e in leaf.extensions
        if e.critical and isinstance(e.value, x509.UnrecognizedExtension)
    ]
    if not unknown:
        return []
    message = f"the leaf has an unknown critical extension ({', '.join(unknown)})"
    return [_error(FindingCode.CHAIN_UNTRUSTED, message, leaf)]


def _path_problems(
    path: Sequence[x509.Certificate], policy: ValidationPolicy, at: datetime
) -> list[Finding]:
    """Weak signatures on intermediates and weak issuer keys (the leaf is checked apart)."""
    out = [weak_signature_finding(c) for c in path[1:-1] if is_weak_signature(c)]
    anchor = path[-1]  # RFC 5280 does not judge the anchor's dates; the product does
    if not anchor.not_valid_before_utc <= at <= anchor.not_valid_after_utc and len(path) > 1:
        message = f"trust anchor outside its validity window ({anchor.not_valid_before_utc.isoformat()} .. {anchor.not_valid_after_utc.isoformat()})"  # fmt: skip
        out.append(_error(FindingCode.CHAIN_ISSUER_EXPIRED, message, anchor))
    for cert in path[1:]:
        reason = key_problem(cert, policy)
        if reason:
            out.append(_error(FindingCode.KEY_WEAK, f"issuer key: {reason}", cert))
    return out


def _error(code: FindingCode, message: str, cert: x509.Certificate) -> Finding:
    return Finding(code=code, severity=Severity.ERROR, message=message, certificate=name_of(cert))
