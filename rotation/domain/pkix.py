"""RFC 5280 path validation and CRL processing, by ``pyhanko-certvalidator`` (pinned).

``cryptography`` parses everything; the certificates are handed to pyhanko-certvalidator (as
asn1crypto objects) for what it does completely: path building, RFC 5280 §6.1 path validation
(RFC 5280 §7.1 name comparison, certificate policies with the default inputs, name constraints,
self-issued key-rollover certificates, basicConstraints/keyUsage/pathLen) and RFC 5280 §6.3 CRL
processing (signature, issuer, cRLSign, thisUpdate/nextUpdate, unknown critical CRL and entry
extensions, issuing distribution point scope, indirect CRLs, delta CRLs, separate CRL keys).

Two passes, so that only the CRLs of the *built* path can change a verdict:

1. the path, without revocation (and with every algorithm accepted: the product's own
   ``signature.weak_algorithm`` and ``key.weak`` findings judge algorithms);
2. revocation, in pyhanko's "CRL required" mode, on that path only, with only the CRLs whose
   issuer is a CA of the path (or a ``cRLIssuer`` a path certificate names) *and* whose
   signature verifies with the key of a certificate of that very name. The second condition
   closes pyhanko's indirect-CRL shortcut (a CRL forged with a sibling CA's key could
   otherwise stand in for the real one).

When the full-path revocation pass cannot decide, each certificate is checked on its own
(the path truncated at it), so that a revoked certificate is ``revocation.revoked`` even when
another certificate's status is unknown.

Deliberate relaxation against the WebPKI profile (documented in docs/validation.md): no
authorityKeyIdentifier/subjectKeyIdentifier and no subjectAltName are required (RFC 5280 path
validation does not require them; OpenSSL accepts such private-CA chains).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.authority import CertTrustAnchor
from pyhanko_certvalidator.context import ValidationContext
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    AcceptAllAlgorithms,
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.validate import async_validate_path

from rotation.domain.checks import serial_of, summarize
from rotation.domain.errors import DependencyError
from rotation.domain.model import CertificateSummary, Finding, FindingCode, Severity

__all__ = ["MAX_CRL_ENTRIES", "PathResult", "TrustAnchors", "build_path", "check_revocation"]  # fmt: skip

MAX_CRL_ENTRIES = 200_000  # a CRL listing more is refused (bounds the work on a huge CRL)
MAX_URLS_PER_CERTIFICATE = 4
_MAX_SUMMARIES = 256
_MAX_PREPARED = 512

_NO_REVOCATION = CertRevTrustPolicy(
    RevocationCheckingPolicy(RevocationCheckingRule.NO_CHECK, RevocationCheckingRule.NO_CHECK)
)
_CRL_FOR_ALL = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        RevocationCheckingRule.CRL_REQUIRED, RevocationCheckingRule.CRL_REQUIRED
    )
)
_CRL_FOR_LEAF_ONLY = CertRevTrustPolicy(
    RevocationCheckingPolicy(RevocationCheckingRule.CRL_REQUIRED, RevocationCheckingRule.NO_CHECK)
)
_ALGORITHMS = AcceptAllAlgorithms()


def name_key(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A name for RFC 5280 §7.1 comparison: case-folded, white space collapsed, per RDN."""
    return tuple(
        tuple(
            sorted((a.oid.dotted_string, " ".join(str(a.value).casefold().split())) for a in rdn)
        )
        for rdn in name.rdns
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    """The asn1crypto form of ``cert`` (parsed eagerly, so a malformed one raises here).

    Raises:
        ValueError: asn1crypto cannot read the certificate.
    """
    try:
        loaded = asn1_x509.Certificate.load(_der(cert))
        _ = loaded["tbs_certificate"]["subject"], loaded["tbs_certificate"]["issuer"]
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"unreadable certificate structure ({type(exc).__name__})") from None
    return loaded


class TrustAnchors:
    """Trust anchors prepared once (asn1crypto forms), owned by whoever validates with them."""

    def __init__(self, certificates: Iterable[x509.Certificate]) -> None:
        self.certificates = tuple(certificates)
        self._asn1 = tuple(to_asn1(c) for c in self.certificates)
        self._by_der = {_der(c): c for c in self.certificates}
        self._summaries: dict[bytes, CertificateSummary] = {}
        self._prepared: dict[bytes, Any] = {}  # DER -> asn1crypto object (certs, CRLs, verdicts)

    def prepared(self, cert: x509.Certificate) -> asn1_x509.Certificate:
        """``to_asn1(cert)``, remembered: chain certificates recur in every validation, and an
        asn1crypto object keeps its normalised names (the costly part of path building).

        Raises:
            ValueError: asn1crypto cannot read the certificate.
        """
        der = _der(cert)
        found = self._prepared.get(der)
        if found is None:
            found = self._remember(der, to_asn1(cert))
        return found

    def prepared_anchor(self, cert: x509.Certificate) -> asn1_x509.Certificate:
        """The prepared asn1crypto form of anchor ``cert`` (never forgotten).

        Raises:
            LookupError: ``cert`` is not one of the anchors.
        """
        return self._asn1[self.certificates.index(cert)]

    def prepared_crl(self, crl: x509.CertificateRevocationList) -> asn1_crl.CertificateList:
        """The asn1crypto form of ``crl``, remembered (fetched CRLs recur until nextUpdate).

        Raises:
            ValueError: asn1crypto cannot read the CRL.
        """
        der = crl.public_bytes(Encoding.DER)
        found = self._prepared.get(der)
        if found is None:
            try:
                loaded = asn1_crl.CertificateList.load(der)
                _ = loaded["tbs_cert_list"]["issuer"]
            except (ValueError, TypeError, OverflowError) as exc:
                raise ValueError(f"unreadable CRL structure ({type(exc).__name__})") from None
            found = self._remember(der, loaded)
        return found

    def forget(self) -> None:
        """Drop every prepared form (certificates and CRLs; the anchors' own are kept)."""
        self._prepared.clear()

    def _remember(self, der: bytes, value: Any) -> Any:
        if len(self._prepared) >= _MAX_PREPARED:
            self._prepared.clear()
        self._prepared[der] = value
        return value

    def summary(self, cert: x509.Certificate) -> CertificateSummary:
        """``summarize(cert)``, remembered: the same CA certificates recur in every validation."""
        der = _der(cert)
        found = self._summaries.get(der)
        if found is None:
            if len(self._summaries) >= _MAX_SUMMARIES:
                self._summaries.clear()
            found = self._summaries[der] = summarize(cert)
        return found

    def leaf_summary(self, cert: x509.Certificate, *, issuer: str | None) -> CertificateSummary:
        """``summarize(cert, issuer=...)`` (never remembered: every leaf is new)."""
        return summarize(cert, issuer=issuer)

    def __len__(self) -> int:
        return len(self.certificates)

    @property
    def asn1(self) -> tuple[asn1_x509.Certificate, ...]:
        """The anchors as asn1crypto certificates."""
        return self._asn1

    def original(self, der: bytes) -> x509.Certificate | None:
        """The anchor with this DER encoding, if it is one."""
        return self._by_der.get(der)


@dataclass(slots=True)
class PathResult:
    """The outcome of path validation: the path (leaf first) and its findings."""

    path: tuple[x509.Certificate, ...] = ()
    findings: list[Finding] = field(default_factory=list)
    validated: ValidationPath | None = None


class _ThreadLoop:
    """One thread's event loop, closed when the thread ends (its thread-local slot is cleared
    then): a loop left to the garbage collector warns about its unclosed self-pipe."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        self.loop.close()


_LOOPS = threading.local()


def _run(coro: Any) -> Any:
    """Run a pyhanko coroutine to completion on this thread's own event loop.

    pyhanko-certvalidator's API is async; nothing here awaits I/O (fetching is off), so one
    loop per thread, reused, saves ``asyncio.run``'s set-up and tear-down on every call.
    """
    holder: _ThreadLoop | None = getattr(_LOOPS, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _LOOPS.holder = _ThreadLoop()
    return holder.loop.run_until_complete(coro)


def _context(
    anchors: TrustAnchors,
    others: Sequence[asn1_x509.Certificate],
    *,
    at: datetime,
    skew: timedelta,
    revinfo: CertRevTrustPolicy,
    crls: Sequence[asn1_crl.CertificateList] = (),
) -> ValidationContext:
    return ValidationContext(
        trust_roots=list(anchors.asn1),
        other_certs=list(others),
        moment=at,
        crls=list(crls),
        revinfo_policy=revinfo,
        algorithm_usage_policy=_ALGORITHMS,
        time_tolerance=skew,
    )


def build_path(
    leaf: x509.Certificate,
    others: Sequence[x509.Certificate],
    anchors: TrustAnchors,
    *,
    at: datetime,
    skew: timedelta,
    max_depth: int,
) -> PathResult:
    """Build and validate the path from ``leaf`` to an anchor at ``at`` (no revocation).

    An expired or not-yet-valid *leaf* is left to the caller's ``validity.*`` checks: the path
    is then validated at a moment inside the leaf's window, and the issuers' dates at ``at``.
    """
    try:
        leaf_a = to_asn1(leaf)
        others_a = [anchors.prepared(c) for c in others]
    except ValueError as exc:
        return PathResult(findings=[_error(FindingCode.FORMAT_UNREADABLE, str(exc), leaf)])
    pool = {_der(c): c for c in (*others, *anchors.certificates)}
    moment = at
    if not leaf.not_valid_before_utc - skew <= at <= leaf.not_valid_after_utc:
        moment = min(max(at, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    ctx = _context(anchors, others_a, at=moment, skew=skew, revinfo=_NO_REVOCATION)
    try:
        validated = _run(_validate(ctx, leaf_a, others_a, max_depth))
    except pv_errors.PathBuildingError:
        return PathResult(findings=[_no_path(leaf, pool, anchors)])
    except pv_errors.PathValidationError as exc:
        return _path_error(exc, leaf, pool, at, _run(_first_path(ctx, leaf_a)))
    except (ValueError, TypeError, OverflowError, KeyError) as exc:
        message = f"the path cannot be validated: {type(exc).__name__}: {exc}"
        return PathResult(findings=[_error(FindingCode.CHAIN_UNTRUSTED, message, leaf)])
    top_down = [pool.get(c.dump()) for c in validated.iter_certs(include_root=True)]
    path = (leaf, *(c for c in reversed(top_down[:-1]) if c is not None))
    findings = _issuer_dates(path[1:], at) if moment != at else []
    return PathResult(path=path, findings=findings, validated=validated)


async def _validate(
    ctx: ValidationContext,
    leaf: asn1_x509.Certificate,
    others: Sequence[asn1_x509.Certificate],
    max_depth: int,
) -> ValidationPath:
    del others  # registered through the context
    paths = ctx.path_builder.async_build_paths_lazy(leaf)
    first: Exception | None = None
    tried = 0
    try:
        async for candidate in paths:
            if candidate.pkix_len + 1 > max_depth:
                continue
            tried += 1
            try:
                await async_validate_path(ctx, candidate)
            except pv_errors.PathValidationError as exc:
                first = first or exc
            else:
                return candidate
            if tried >= 8:  # noqa: PLR2004 - bound the work on a hostile pool
                break
    finally:
        await paths.cancel()  # type: ignore[no-untyped-call]
    if first is not None:
        raise first
    raise pv_errors.PathBuildingError("no path to a trust anchor within the maximum depth")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, UnsupportedAlgorithm, InvalidSignature):
        return False
    return True


async def _first_path(
    ctx: ValidationContext, leaf: asn1_x509.Certificate
) -> ValidationPath | None:
    paths = ctx.path_builder.async_build_paths_lazy(leaf)
    try:
        async for candidate in paths:
            return candidate
    except pv_errors.PathBuildingError:
        return None
    finally:
        await paths.cancel()  # type: ignore[no-untyped-call]
    return None


def _no_path(
    leaf: x509.Certificate, pool: dict[bytes, x509.Certificate], anchors: TrustAnchors
) -> Finding:
    """Why no path was found, named by walking up from the leaf by name and signature."""
    anchor_ders = {_der(a) for a in anchors.certificates}
    cert, seen = leaf, set[bytes]()
    while _der(cert) not in seen and len(seen) < 16:  # noqa: PLR2004 - bounded walk
        seen.add(_der(cert))
        if cert.issuer == cert.subject and _der(cert) not in anchor_ders:
            if cert is leaf:
                return _error(FindingCode.CHAIN_UNTRUSTED, "self-signed and not a trust anchor", leaf)  # fmt: skip
            message = f"no path to a trust anchor: the chain ends at the self-signed {cert.subject.rfc4514_string()}, which is not a trust anchor (unknown CA)"  # fmt: skip
            return _error(FindingCode.CHAIN_UNTRUSTED, message, leaf)
        named = [c for c in pool.values() if c is not cert and name_key(c.subject) == name_key(cert.issuer)]  # fmt: skip
        if not named:
            break
        signer = next((c for c in named if _issued_by(cert, c)), None)
        if signer is None:
            message = f"not signed by the key of its issuer {cert.issuer.rfc4514_string()}"
            return _error(FindingCode.CHAIN_BAD_SIGNATURE, message, cert)
        if _der(signer) in anchor_ders:
            break
        cert = signer
    message = (
        f"no path to a trust anchor: issuer {cert.issuer.rfc4514_string()} of "
        f"{cert.subject.rfc4514_string()} is neither in the bundle nor a trust anchor "
        "(missing intermediate or unknown CA), or the path breaks a path rule"
    )
    return _error(FindingCode.CHAIN_UNTRUSTED, message, leaf)


def _path_error(
    exc: pv_errors.PathValidationError,
    leaf: x509.Certificate,
    pool: dict[bytes, x509.Certificate],
    at: datetime,
    head: ValidationPath | None,
) -> PathResult:
    message = str(exc)
    path: tuple[x509.Certificate, ...] = ()
    if head is not None:
        top_down = [pool.get(c.dump()) for c in head.iter_certs(include_root=True)]
        path = (leaf, *(c for c in reversed(top_down[:-1]) if c is not None))
    if isinstance(exc, pv_errors.ExpiredError | pv_errors.NotYetValidError):
        dates = _issuer_dates(path[1:], at)
        if dates:
            return PathResult(path=path, findings=dates)
        return PathResult(findings=[_error(FindingCode.CHAIN_ISSUER_EXPIRED, message, leaf)])
    for cert, issuer in itertools.pairwise(path):
        if not _issued_by(cert, issuer):
            bad = f"not signed by the key of its issuer {cert.issuer.rfc4514_string()}"
            return PathResult(findings=[_error(FindingCode.CHAIN_BAD_SIGNATURE, bad, cert)])
    return PathResult(findings=[_error(FindingCode.CHAIN_UNTRUSTED, f"the path is refused: {message}", leaf)])  # fmt: skip


def _issuer_dates(issuers: Sequence[x509.Certificate], at: datetime) -> list[Finding]:
    out = []
    for cert in issuers:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if not start <= at <= end:
            when = f"expired at {end.isoformat()}" if at > end else f"not valid before {start.isoformat()}"  # fmt: skip
            out.append(_error(FindingCode.CHAIN_ISSUER_EXPIRED, f"issuer {when}", cert))
    return out


# --- revocation -------------------------------------------------------------------------------


_NameKey = tuple[tuple[tuple[str, str], ...], ...]


@dataclass(slots=True)
class _Crls:
    """The CRLs that belong to the path, and why others were left out."""

    anchors: TrustAnchors  # prepares (and remembers) the asn1crypto forms
    usable: list[asn1_crl.CertificateList] = field(default_factory=list)
    issuers: set[_NameKey] = field(default_factory=set)  # of the usable CRLs
    indirect: bool = False  # a usable CRL is an indirect CRL
    problems: dict[_NameKey, list[str]] = field(default_factory=dict)  # per CRL issuer name

    def about(self, cert: x509.Certificate) -> list[str]:
        """The problems met with CRLs for ``cert`` (those of its issuer)."""
        return self.problems.get(name_key(cert.issuer), [])


def validate_with_crls(
    leaf: x509.Certificate,
    others: Sequence[x509.Certificate],
    anchors: TrustAnchors,
    *,
    at: datetime,
    skew: timedelta,
    max_depth: int,
    hard: bool,
    crls: Sequence[x509.CertificateRevocationList],
    fetch: Any = None,
) -> PathResult | None:
    """The common case in one pyhanko pass: path and revocation of a good chain.

    Builds the first candidate path, gathers the CRLs that belong to it, and validates it with
    the status required of every certificate some CRL can speak for (the others are
    ``revocation.unavailable`` at once). Returns that result, or ``None`` when anything else is
    not clean (no path, a refused path, a revoked or unknown status, a leaf outside its
    dates): the caller then runs ``build_path`` and ``check_revocation``, which name the reason.
    """
    if not leaf.not_valid_before_utc - skew <= at <= leaf.not_valid_after_utc:
        return None
    path = _walk(leaf, others, anchors, max_depth)
    if path is None:
        return None
    try:
        leaf_a = to_asn1(leaf)
        others_a = [anchors.prepared(c) for c in others]
        names = _crl_issuer_names(path)
        collected = _collect(path, [*others, *anchors.certificates], names, _Crls(anchors), at=at, crls=crls, fetch=fetch)  # fmt: skip
        uncovered = _without_crl(path, collected)
        rules = _rules(path, uncovered)
        if rules is None:
            anchors.forget()  # what was prepared for this path is not validated: start clean
            return None
        candidate = ValidationPath(
            CertTrustAnchor(anchors.prepared_anchor(path[-1])),
            [anchors.prepared(c) for c in reversed(path[1:-1])],
            leaf_a,
        )
        ctx = _context(anchors, others_a, at=at, skew=skew, revinfo=rules, crls=collected.usable)  # fmt: skip
        _run(async_validate_path(ctx, candidate))
    except (pv_errors.PathError, pv_errors.ValidationError, ValueError, TypeError, OverflowError, LookupError):  # fmt: skip
        # pyhanko leaves state on the asn1crypto objects of a refused run (seen with PKITS
        # 4.3.6: the next, otherwise clean run then fails a signature): forget them all.
        anchors.forget()
        return None
    unknown = [_unavailable(c, collected, hard=hard) for c in path[:-1] if c in uncovered]
    return PathResult(path=path, findings=unknown, validated=candidate)


def _walk(
    leaf: x509.Certificate,
    others: Sequence[x509.Certificate],
    anchors: TrustAnchors,
    max_depth: int,
) -> tuple[x509.Certificate, ...] | None:
    """The obvious path (exact issuer names, signatures checked) for the one-pass case, or
    ``None``: then pyhanko builds the paths itself (RFC 5280 name comparison, several
    candidates)."""
    anchor_ders = {_der(a) for a in anchors.certificates}
    pool = (*others, *anchors.certificates)
    path = [leaf]
    while len(path) < max_depth:
        cert = path[-1]
        issuers = [c for c in pool if c.subject == cert.issuer and c not in path and _issued_by(cert, c)]  # fmt: skip
        if len(issuers) != 1:  # none, or a choice: leave it to pyhanko's path building
            return None
        path.append(issuers[0])
        if _der(issuers[0]) in anchor_ders:
            return tuple(path)
    return None


def _rules(
    path: tuple[x509.Certificate, ...], uncovered: set[x509.Certificate]
) -> CertRevTrustPolicy | None:
    """Require CRLs exactly where some exist: for the leaf, and for all intermediates or none
    (pyhanko has one rule for each); ``None`` when the intermediates are mixed."""
    cas = path[1:-1]
    covered_cas = [c for c in cas if c not in uncovered]
    if covered_cas and len(covered_cas) < len(cas):
        return None
    leaf_rule = RevocationCheckingRule.NO_CHECK if path[0] in uncovered else RevocationCheckingRule.CRL_REQUIRED  # fmt: skip
    ca_rule = RevocationCheckingRule.CRL_REQUIRED if covered_cas else RevocationCheckingRule.NO_CHECK  # fmt: skip
    return CertRevTrustPolicy(RevocationCheckingPolicy(leaf_rule, ca_rule))


def check_revocation(
    result: PathResult,
    others: Sequence[x509.Certificate],
    anchors: TrustAnchors,
    *,
    at: datetime,
    skew: timedelta,
    hard: bool,
    crls: Sequence[x509.CertificateRevocationList],
    fetch: Any = None,
) -> list[Finding]:
    """Revocation findings for the validated path of ``result`` (the anchor is not checked).

    ``fetch(url, *, at)`` returns a CRL or raises ``DependencyError``; it is asked only for the
    distribution points of path certificates no given CRL covers.
    """
    path, validated = result.path, result.validated
    if validated is None or len(path) < 2:  # noqa: PLR2004 - a leaf and an anchor
        return []
    names = _crl_issuer_names(path)
    pool = [*others, *anchors.certificates]
    collected = _collect(path, pool, names, _Crls(anchors), at=at, crls=crls, fetch=fetch)
    if not collected.usable:  # nothing to decide with: say why, certificate by certificate
        return [_unavailable(cert, collected, hard=hard) for cert in path[:-1]]
    try:
        others_a = [anchors.prepared(c) for c in others]
    except ValueError:
        others_a = []
    uncovered = _without_crl(path, collected)
    if not uncovered:
        error = _revocation_error(validated, anchors, others_a, collected, at=at, skew=skew, policy=_CRL_FOR_ALL)  # fmt: skip
        if error is None:
            return []
    # Settle every certificate on its own, so nothing revoked hides behind an unknown status.
    findings: list[Finding] = []
    current: ValidationPath | None = validated
    for cert in path[:-1]:
        if current is None:
            break
        if cert in uncovered:
            findings.append(_unavailable(cert, collected, hard=hard))
        else:
            one = _revocation_error(current, anchors, others_a, collected, at=at, skew=skew, policy=_CRL_FOR_LEAF_ONLY)  # fmt: skip
            if one is not None:
                findings.append(_status_finding(cert, one, collected.about(cert), hard=hard))
        current = current.copy_and_drop_leaf() if current.pkix_len > 1 else None
    return findings


def _without_crl(path: tuple[x509.Certificate, ...], collected: _Crls) -> set[x509.Certificate]:
    """Certificates of the path no usable CRL can speak for (decided without pyhanko).

    Only the plain case is decided here: when a usable CRL is indirect or a certificate names a
    cRLIssuer, pyhanko decides for every certificate.
    """
    if collected.indirect or any(p.crl_issuer for c in path[:-1] for p in _distribution_points(c)):  # fmt: skip
        return set()
    return {c for c in path[:-1] if name_key(c.issuer) not in collected.issuers}


def _revocation_error(
    validated: ValidationPath,
    anchors: TrustAnchors,
    others: Sequence[asn1_x509.Certificate],
    collected: _Crls,
    *,
    at: datetime,
    skew: timedelta,
    policy: CertRevTrustPolicy,
) -> Exception | None:
    ctx = _context(anchors, others, at=at, skew=skew, revinfo=policy, crls=collected.usable)
    try:
        _run(async_validate_path(ctx, validated))
    except pv_errors.PathValidationError as exc:
        return exc
    except (ValueError, TypeError, OverflowError, KeyError) as exc:
        return exc
    return None


def _status_finding(
    cert: x509.Certificate, exc: Exception, problems: list[str], *, hard: bool
) -> Finding:
    if isinstance(exc, pv_errors.RevokedError):
        message = f"serial {serial_of(cert):X} is revoked: {exc}"
        return _error(FindingCode.REVOCATION_REVOKED, message, cert)
    reasons = "; ".join([_plain(exc), *problems])
    severity = Severity.ERROR if hard else Severity.WARNING
    return Finding(
        code=FindingCode.REVOCATION_UNAVAILABLE,
        severity=severity,
        message=f"revocation status unknown: {reasons}",
        certificate=cert.subject.rfc4514_string(),
    )


def _unavailable(cert: x509.Certificate, collected: _Crls, *, hard: bool) -> Finding:
    problems = collected.about(cert) or ["no HTTP(S) distribution point"]
    reason = f"no valid CRL from {cert.issuer.rfc4514_string()} was given or fetched ({'; '.join(problems)})"  # fmt: skip
    return Finding(
        code=FindingCode.REVOCATION_UNAVAILABLE,
        severity=Severity.ERROR if hard else Severity.WARNING,
        message=f"revocation status unknown: {reason}",
        certificate=cert.subject.rfc4514_string(),
    )


def _plain(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, pv_errors.PathValidationError) else f"{type(exc).__name__}: {text}"  # fmt: skip


def _crl_issuer_names(path: tuple[x509.Certificate, ...]) -> set[_NameKey]:
    """The issuers whose CRLs belong to the path: its CAs and the cRLIssuers it names."""
    names = {name_key(cert.issuer) for cert in path[:-1]}
    for cert in path[:-1]:
        for point in _distribution_points(cert):
            for name in point.crl_issuer or ():
                if isinstance(name, x509.DirectoryName):
                    names.add(name_key(name.value))
    return names


def _distribution_points(cert: x509.Certificate) -> list[x509.DistributionPoint]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value)
    except (x509.ExtensionNotFound, ValueError):
        return []


def _collect(
    path: tuple[x509.Certificate, ...],
    pool: Sequence[x509.Certificate],
    names: set[_NameKey],
    out: _Crls,
    *,
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList],
    fetch: Any,
) -> _Crls:
    signers: dict[_NameKey, list[x509.Certificate]] = {}
    for cert in (*path, *pool):
        key = name_key(cert.subject)
        if key in names and cert not in signers.setdefault(key, []):
            signers[key].append(cert)
    covered: set[_NameKey] = set()
    for crl in crls:
        key = name_key(crl.issuer)
        if key in names and _accept(
            crl, signers, out, problems_for=out.problems.setdefault(key, [])
        ):
            covered.add(key)
    _fetch_missing(path, names, signers, covered, out, at=at, fetch=fetch)
    return out


def _fetch_missing(
    path: tuple[x509.Certificate, ...],
    names: set[_NameKey],
    signers: dict[_NameKey, list[x509.Certificate]],
    covered: set[_NameKey],
    out: _Crls,
    *,
    at: datetime,
    fetch: Any,
) -> None:
    for cert in path[:-1]:
        if name_key(cert.issuer) in covered:
            continue
        problems = out.problems.setdefault(name_key(cert.issuer), [])
        for url in _crl_urls(cert, problems):
            if fetch is None:
                problems.append(f"{url}: no CRL fetcher configured")
                continue
            try:
                crl = fetch(url, at=at)
            except DependencyError as exc:
                problems.append(str(exc))
                continue
            if name_key(crl.issuer) not in names:
                problems.append(f"{url}: issued by {crl.issuer.rfc4514_string()}, no CA of the path")  # fmt: skip
            elif _accept(crl, signers, out, problems_for=problems, source=url):
                break


def _accept(
    crl: x509.CertificateRevocationList,
    signers: dict[_NameKey, list[x509.Certificate]],
    out: _Crls,
    *,
    problems_for: list[str] | None,
    source: str = "given CRL",
) -> bool:
    """Keep ``crl`` when a certificate named as its issuer signed it (and it is not absurd)."""
    problem = _crl_problem(crl, signers.get(name_key(crl.issuer), []))
    if problem is None:
        try:
            loaded = out.anchors.prepared_crl(crl)
        except ValueError as exc:
            problem = str(exc)
        else:
            out.usable.append(loaded)
            out.issuers.add(name_key(crl.issuer))
            idp = loaded.issuing_distribution_point_value
            out.indirect = out.indirect or bool(idp is not None and idp["indirect_crl"].native)
            return True
    if problems_for is not None:
        problems_for.append(f"{source}: {problem}")
    return False


def _crl_problem(
    crl: x509.CertificateRevocationList, signers: list[x509.Certificate]
) -> str | None:
    try:
        if len(crl) > MAX_CRL_ENTRIES:
            return f"lists more than {MAX_CRL_ENTRIES} certificates"
    except ValueError:
        return "malformed revoked-certificates list"
    for signer in signers:
        try:
            if crl.is_signature_valid(signer.public_key()):  # type: ignore[arg-type]
                return None
        except (TypeError, ValueError, UnsupportedAlgorithm):
            continue
    return "signature does not verify against the key of any certificate named as its issuer"


def _crl_urls(cert: x509.Certificate, problems: list[str]) -> list[str]:
    urls: list[str] = []
    for point in _distribution_points(cert):
        for name in point.full_name or ():
            if not isinstance(name, x509.UniformResourceIdentifier):
                continue
            if name.value.lower().startswith(("http://", "https://")):
                urls.append(name.value)
            else:
                problems.append(f"{name.value}: only HTTP(S) distribution points are fetched")
    return urls[:MAX_URLS_PER_CERTIFICATE]


def _error(code: FindingCode, message: str, cert: x509.Certificate) -> Finding:
    return Finding(
        code=code,
        severity=Severity.ERROR,
        message=message,
        certificate=cert.subject.rfc4514_string(),
    )
