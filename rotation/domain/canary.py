"""The canary's decisions: what a TLS probe of a backend showed, the verdict, and what it means.

Before any write, a rotation probes each affected https backend twice: presenting the candidate
and presenting the version in use. The adapter (``rotation.adapters.canary``) records plain
facts in a ``ProbeObservation``; this module judges them:

1. ``classify`` turns one observation into a ``ProbeResult``: ``accepted``, ``refused`` (a
   certificate alert, the connection closed after the server asked for a client certificate,
   or HTTP 400/401/403/421/495/496) or ``unreachable`` (DNS, connect, a TLS failure before any
   client certificate was requested, the server's own certificate failing the backend's ``tls``
   checks, or a timeout).
2. ``judge`` compares the candidate's result with the current one's, so that a backend that
   refuses everything is not blamed on the candidate: ``passed``, ``refused``, ``inconclusive``,
   ``unreachable`` or ``skipped`` (http backends, entities without a backend).
3. ``decide`` applies ``ROTATION_CANARY``: ``enforce`` turns a refusal into ``rejected`` and an
   unreachable backend into ``deferred`` (nothing is written either way); ``warn`` records the
   findings as warnings and the rotation goes on; ``off`` never probes.

Everything here is pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from urllib.parse import urlsplit

from rotation.domain.model import ApimBackend, Decision, Finding, FindingCode, Severity

__all__ = [
    "CERTIFICATE_ALERTS",
    "REFUSAL_STATUSES",
    "CanaryDecision",
    "CanaryMode",
    "CanaryTarget",
    "CanaryVerdict",
    "ProbeObservation",
    "ProbeOutcome",
    "ProbeResult",
    "ServerCertificate",
    "TlsAlert",
    "Verdict",
    "alert_name",
    "classify",
    "decide",
    "judge",
    "skip_reason",
    "skipped",
]


class CanaryMode(StrEnum):
    """``ROTATION_CANARY``: never probe, probe and warn, or probe and block."""

    OFF = "off"
    WARN = "warn"
    ENFORCE = "enforce"


class TlsAlert(IntEnum):
    """TLS alert descriptions (RFC 8446 section 6 and RFC 5246 section 7.2), as they arrive on the wire."""

    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    RECORD_OVERFLOW = 22
    HANDSHAKE_FAILURE = 40
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    ACCESS_DENIED = 49
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    INAPPROPRIATE_FALLBACK = 86
    USER_CANCELED = 90
    MISSING_EXTENSION = 109
    UNSUPPORTED_EXTENSION = 110
    UNRECOGNIZED_NAME = 112
    BAD_CERTIFICATE_STATUS_RESPONSE = 113
    UNKNOWN_PSK_IDENTITY = 115
    CERTIFICATE_REQUIRED = 116
    NO_APPLICATION_PROTOCOL = 120


# Alerts a server sends about the client's certificate (or the signature made with its key).
CERTIFICATE_ALERTS = frozenset(
    {
        TlsAlert.BAD_CERTIFICATE,
        TlsAlert.UNSUPPORTED_CERTIFICATE,
        TlsAlert.CERTIFICATE_REVOKED,
        TlsAlert.CERTIFICATE_EXPIRED,
        TlsAlert.CERTIFICATE_UNKNOWN,
        TlsAlert.UNKNOWN_CA,
        TlsAlert.ACCESS_DENIED,
        TlsAlert.DECRYPT_ERROR,
        TlsAlert.CERTIFICATE_REQUIRED,
    }
)

# HTTP statuses that servers use to refuse a client certificate after the handshake (nginx:
# 400 "The SSL certificate error", 495/496; gateways: 401/403; 421 misdirected request).
REFUSAL_STATUSES = frozenset({400, 401, 403, 421, 495, 496})


def alert_name(code: int) -> str:
    """``unknown_ca`` for 48; ``alert_<n>`` for codes outside the table."""
    try:
        return TlsAlert(code).name.lower()
    except ValueError:
        return f"alert_{code}"


# --- one probe -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerCertificate:
    """The server's leaf certificate, as people recognise it."""

    subject: str
    issuer: str
    not_after: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeObservation:
    """What one probe saw, without judgement. Never holds key material.

    ``certificate_requested``: the server sent a CertificateRequest (the client presented its
    certificate). ``alert``: the first alert the server sent (a ``TlsAlert`` code), if any.
    ``closed``: the server closed or reset the connection before an HTTP status was read.
    ``server_rejected``: the server's certificate failed the backend's ``tls`` checks (why).
    ``requested_ca_names``: the CA names of the CertificateRequest (RFC 4514), ``None`` when
    no certificate was requested. ``error``: what stopped the probe, for people.
    """

    url: str
    connected: bool = False
    certificate_requested: bool = False
    handshake_completed: bool = False
    alert: int | None = None
    closed: bool = False
    timed_out: bool = False
    server_rejected: str | None = None
    http_status: int | None = None
    tls_version: str | None = None
    cipher: str | None = None
    server_certificate: ServerCertificate | None = None
    requested_ca_names: tuple[str, ...] | None = None
    error: str | None = None


class ProbeOutcome(StrEnum):
    """What one probe means on its own."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


class _Stage(IntEnum):
    """How far a refused probe got: a later stage is closer to being accepted."""

    HANDSHAKE = 1  # an alert, or the connection closed during/right after the handshake
    HTTP = 2  # a refusing HTTP status


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    """The meaning of one observation: outcome, a short stable ``reason`` and the observation.

    ``reason`` is ``alert:<name>``, ``closed``, ``http:<status>``, ``timeout``, ``connect``,
    ``tls``, ``server_certificate`` or ``http``; equal reasons mean "failed the same way".
    """

    outcome: ProbeOutcome
    reason: str
    detail: str
    observation: ProbeObservation

    @property
    def stage(self) -> int:
        """For refusals: 1 refused during/after the handshake, 2 refused by HTTP status."""
        return _Stage.HTTP if self.reason.startswith("http:") else _Stage.HANDSHAKE


def classify(observation: ProbeObservation) -> ProbeResult:
    """Judge one probe on its own (see the module docstring for the rules)."""
    outcome, reason, detail = _handshake_meaning(observation) or _later_meaning(observation)
    return ProbeResult(outcome=outcome, reason=reason, detail=detail, observation=observation)


def _handshake_meaning(obs: ProbeObservation) -> tuple[ProbeOutcome, str, str] | None:
    """What the server's certificate check or an alert says, if either happened."""
    if obs.server_rejected is not None:
        detail = f"the server's certificate failed the backend's TLS checks: {obs.server_rejected}"
        return ProbeOutcome.UNREACHABLE, "server_certificate", detail
    if obs.alert is None or obs.alert == TlsAlert.CLOSE_NOTIFY:
        return None
    name = alert_name(obs.alert)
    if obs.alert in CERTIFICATE_ALERTS or obs.certificate_requested:
        when = "after" if obs.handshake_completed else "during"
        return ProbeOutcome.REFUSED, f"alert:{name}", f"TLS alert {name} {when} the handshake"
    detail = f"TLS alert {name} before any client certificate was requested"
    return ProbeOutcome.UNREACHABLE, "tls", detail


def _later_meaning(obs: ProbeObservation) -> tuple[ProbeOutcome, str, str]:  # noqa: PLR0911
    """What the HTTP status, a timeout or a close says (no alert, server certificate fine)."""
    if obs.http_status is not None:
        if obs.http_status in REFUSAL_STATUSES:
            return ProbeOutcome.REFUSED, f"http:{obs.http_status}", f"HTTP {obs.http_status}"
        return ProbeOutcome.ACCEPTED, "accepted", f"HTTP {obs.http_status}"
    if obs.timed_out:
        return ProbeOutcome.UNREACHABLE, "timeout", obs.error or "timed out"
    if obs.closed and obs.certificate_requested:
        when = "right after" if obs.handshake_completed else "during"
        detail = f"the server closed the connection {when} the handshake"
        return ProbeOutcome.REFUSED, "closed", detail
    if not obs.connected:
        return ProbeOutcome.UNREACHABLE, "connect", obs.error or "could not connect"
    if not obs.handshake_completed:
        detail = "the TLS handshake failed before any client certificate was requested"
        return ProbeOutcome.UNREACHABLE, "tls", obs.error or detail
    return ProbeOutcome.UNREACHABLE, "http", obs.error or "no HTTP response"


# --- a backend: candidate against the version in use -----------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryTarget:
    """A backend to probe: its APIM names, url and the ``tls`` checks of its server certificate."""

    service: str  # APIM service name
    backend: str | None  # backend id; None for an entity no backend references
    url: str
    validate_chain: bool = True  # tls.validateCertificateChain
    validate_name: bool = True  # tls.validateCertificateName

    @classmethod
    def for_backend(cls, backend: ApimBackend) -> CanaryTarget:
        """The target of an APIM backend, with its ``tls`` properties."""
        return cls(
            service=backend.service_id.rstrip("/").rsplit("/", 1)[-1],
            backend=backend.backend_id,
            url=backend.url,
            validate_chain=backend.validate_certificate_chain,
            validate_name=backend.validate_certificate_name,
        )

    @property
    def label(self) -> str:
        """``backend <id> (<url>)``, for messages."""
        if self.backend is None:
            return f"service {self.service}: no backend"
        return f"backend {self.backend} ({self.url})"


def skip_reason(target: CanaryTarget) -> str | None:
    """Why ``target`` is not probed (no backend, not an https URL), or None to probe it."""
    if target.backend is None:
        return "no backend references the entity"
    parts = urlsplit(target.url)
    if parts.scheme.lower() != "https":
        return f"not an https backend ({parts.scheme or 'no scheme'})"
    if not parts.hostname:
        return "the backend URL has no host"
    return None


class Verdict(StrEnum):
    """The canary's verdict on one backend; ``canary.<verdict>`` is the finding code."""

    PASSED = "passed"
    REFUSED = "refused"
    INCONCLUSIVE = "inconclusive"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


_CODES = {
    Verdict.PASSED: FindingCode.CANARY_PASSED,
    Verdict.REFUSED: FindingCode.CANARY_REFUSED,
    Verdict.INCONCLUSIVE: FindingCode.CANARY_INCONCLUSIVE,
    Verdict.UNREACHABLE: FindingCode.CANARY_UNREACHABLE,
    Verdict.SKIPPED: FindingCode.CANARY_SKIPPED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryVerdict:
    """One backend's verdict, the two results it rests on, and a message for people."""

    target: CanaryTarget
    verdict: Verdict
    message: str
    candidate: ProbeResult | None = None
    current: ProbeResult | None = None

    @property
    def code(self) -> FindingCode:
        """``canary.<verdict>``."""
        return _CODES[self.verdict]

    @property
    def tls_version(self) -> str | None:
        """The TLS version the candidate's probe negotiated."""
        return self.candidate.observation.tls_version if self.candidate else None

    @property
    def http_status(self) -> int | None:
        """The HTTP status the candidate's probe read."""
        return self.candidate.observation.http_status if self.candidate else None


def _refusal_vs_current(candidate: ProbeResult, current: ProbeResult | None) -> Verdict:
    """A refused candidate: refused, unless the version in use fails the same way (or worse)."""
    if current is None or current.outcome is ProbeOutcome.UNREACHABLE:
        # No baseline: a handshake refusal is about the certificate; an HTTP status may not be.
        return Verdict.REFUSED if candidate.stage == _Stage.HANDSHAKE else Verdict.INCONCLUSIVE
    if current.outcome is ProbeOutcome.ACCEPTED or candidate.stage < current.stage:
        return Verdict.REFUSED
    if candidate.stage > current.stage:
        return Verdict.INCONCLUSIVE  # the candidate got further than the version in use
    if candidate.stage == _Stage.HANDSHAKE and "closed" in (candidate.reason, current.reason):
        # A close and an alert can be the same refusal racing a TCP reset: do not tell them apart.
        return Verdict.INCONCLUSIVE
    return Verdict.INCONCLUSIVE if candidate.reason == current.reason else Verdict.REFUSED


def skipped(target: CanaryTarget, why: str) -> CanaryVerdict:
    """A ``skipped`` verdict for a reason only the caller knows (the candidate has no key)."""
    return CanaryVerdict(target=target, verdict=Verdict.SKIPPED, message=f"{target.label}: skipped, {why}")  # fmt: skip


def judge(
    target: CanaryTarget,
    candidate: ProbeObservation | None,
    current: ProbeObservation | None,
) -> CanaryVerdict:
    """The verdict on ``target`` from the candidate's probe and the version in use's probe.

    ``candidate`` is None only for a skipped target; ``current`` is None when nothing is in
    use yet (or its material could not be read).
    """
    reason = skip_reason(target)
    if reason is not None or candidate is None:
        return skipped(target, reason or "not probed")
    cand = classify(candidate)
    base = classify(current) if current is not None else None
    tail = "" if base is None else f"; the version in use: {base.outcome} ({base.detail})"
    if cand.outcome is ProbeOutcome.ACCEPTED:
        version = candidate.tls_version or "TLS"
        verdict, text = Verdict.PASSED, f"accepted the candidate over {version}, {cand.detail}"
    elif cand.outcome is ProbeOutcome.UNREACHABLE:
        verdict, text = Verdict.UNREACHABLE, f"unreachable: {cand.detail}"
    else:
        verdict = _refusal_vs_current(cand, base)
        text = (
            f"refused the candidate: {cand.detail}"
            if verdict is Verdict.REFUSED
            else f"refused the candidate, but cannot be blamed on it: {cand.detail}"
        )
    return CanaryVerdict(
        target=target,
        verdict=verdict,
        message=f"{target.label}: {text}{tail}",
        candidate=cand,
        current=base,
    )


# --- what the verdicts decide ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryDecision:
    """``decision`` is None to go on, else ``rejected``/``deferred`` (nothing is written)."""

    decision: Decision | None
    findings: tuple[Finding, ...]
    message: str | None = None


def _severity(verdict: Verdict, mode: CanaryMode) -> Severity:
    if verdict in (Verdict.PASSED, Verdict.SKIPPED):
        return Severity.INFO
    if verdict is Verdict.REFUSED and mode is CanaryMode.ENFORCE:
        return Severity.ERROR
    return Severity.WARNING


def decide(
    mode: CanaryMode, verdicts: Iterable[CanaryVerdict], *, certificate: str | None = None
) -> CanaryDecision:
    """Apply ``ROTATION_CANARY`` to the verdicts of one rotation.

    ``enforce``: any ``refused`` → ``rejected``; else any ``unreachable`` → ``deferred``.
    ``warn``: every verdict becomes a finding (refused/inconclusive/unreachable as warnings)
    and the rotation goes on. ``off``: no findings, go on. ``certificate`` names the
    certificate the findings are about.
    """
    if mode is CanaryMode.OFF:
        return CanaryDecision(decision=None, findings=())
    items: Sequence[CanaryVerdict] = tuple(verdicts)
    findings = tuple(
        Finding(
            code=v.code,
            severity=_severity(v.verdict, mode),
            message=v.message,
            certificate=certificate,
        )
        for v in items
    )
    if mode is CanaryMode.ENFORCE:
        refused = [v.target.label for v in items if v.verdict is Verdict.REFUSED]
        if refused:
            message = f"the canary was refused by {', '.join(refused)}"
            return CanaryDecision(decision=Decision.REJECTED, findings=findings, message=message)
        unreachable = [v.target.label for v in items if v.verdict is Verdict.UNREACHABLE]
        if unreachable:
            message = f"the canary could not reach {', '.join(unreachable)}; reconcile retries"
            return CanaryDecision(decision=Decision.DEFERRED, findings=findings, message=message)
    return CanaryDecision(decision=None, findings=findings)
