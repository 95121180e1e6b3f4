"""The canary's pure decisions: classify one probe, judge candidate vs current, decide per mode."""

from __future__ import annotations

import pytest

from rotation.domain.canary import (
    CanaryMode,
    CanaryTarget,
    ProbeObservation,
    ProbeOutcome,
    TlsAlert,
    Verdict,
    alert_name,
    classify,
    decide,
    judge,
    skip_reason,
    skipped,
)
from rotation.domain.model import Decision, FindingCode, Severity

URL = "https://partner.example.test/api"
TARGET = CanaryTarget(service="apim-1", backend="partner-api", url=URL)


def accepted(status: int = 200, version: str = "TLSv1.3") -> ProbeObservation:
    return ProbeObservation(
        url=URL, connected=True, certificate_requested=True, handshake_completed=True,
        http_status=status, tls_version=version, cipher="TLS_AES_256_GCM_SHA384",
    )  # fmt: skip


def alerted(alert: int, *, completed: bool = False, requested: bool = True) -> ProbeObservation:
    return ProbeObservation(
        url=URL, connected=True, certificate_requested=requested, handshake_completed=completed,
        alert=alert, error="TLS handshake failed",
    )  # fmt: skip


def closed(*, completed: bool, requested: bool = True) -> ProbeObservation:
    return ProbeObservation(
        url=URL, connected=True, certificate_requested=requested, handshake_completed=completed,
        closed=True,
    )  # fmt: skip


DOWN = ProbeObservation(
    url=URL, error="cannot connect to partner.example.test: Connection refused"
)
TIMEOUT = ProbeObservation(url=URL, connected=True, timed_out=True, error="the TLS handshake timed out")  # fmt: skip


class TestClassify:
    @pytest.mark.parametrize("status", [200, 204, 301, 404, 500])
    def test_a_status_outside_the_refusals_is_accepted(self, status):
        result = classify(accepted(status))

        assert (result.outcome, result.detail) == (ProbeOutcome.ACCEPTED, f"HTTP {status}")

    @pytest.mark.parametrize("status", [400, 401, 403, 421, 495, 496])
    def test_refusing_statuses(self, status):
        result = classify(accepted(status))

        assert (result.outcome, result.reason) == (ProbeOutcome.REFUSED, f"http:{status}")

    @pytest.mark.parametrize(
        "alert",
        [TlsAlert.BAD_CERTIFICATE, TlsAlert.UNKNOWN_CA, TlsAlert.CERTIFICATE_REQUIRED, TlsAlert.ACCESS_DENIED],
    )  # fmt: skip
    def test_certificate_alerts_are_refusals_during_or_after_the_handshake(self, alert):
        during, after = classify(alerted(alert)), classify(alerted(alert, completed=True))

        assert during.outcome is after.outcome is ProbeOutcome.REFUSED
        assert during.reason == f"alert:{alert.name.lower()}"
        assert "during" in during.detail
        assert "after" in after.detail

    def test_a_certificate_alert_is_a_refusal_even_if_the_request_went_unnoticed(self):
        assert classify(alerted(TlsAlert.UNKNOWN_CA, requested=False)).outcome is ProbeOutcome.REFUSED  # fmt: skip

    def test_another_alert_before_any_certificate_request_is_unreachable(self):
        result = classify(alerted(TlsAlert.PROTOCOL_VERSION, requested=False))

        assert (result.outcome, result.reason) == (ProbeOutcome.UNREACHABLE, "tls")

    def test_any_alert_after_the_certificate_request_is_a_refusal(self):
        result = classify(alerted(TlsAlert.HANDSHAKE_FAILURE))

        assert (result.outcome, result.reason) == (ProbeOutcome.REFUSED, "alert:handshake_failure")

    @pytest.mark.parametrize("completed", [False, True])
    def test_a_close_after_the_certificate_request_is_a_refusal(self, completed):
        result = classify(closed(completed=completed))

        assert (result.outcome, result.reason) == (ProbeOutcome.REFUSED, "closed")

    def test_a_close_before_any_certificate_request_is_unreachable(self):
        assert classify(closed(completed=False, requested=False)).outcome is ProbeOutcome.UNREACHABLE  # fmt: skip

    def test_connect_failure_and_timeout_are_unreachable(self):
        assert classify(DOWN).reason == "connect"
        assert classify(TIMEOUT).reason == "timeout"
        assert classify(DOWN).outcome is classify(TIMEOUT).outcome is ProbeOutcome.UNREACHABLE

    def test_a_server_certificate_failing_the_backend_checks_is_unreachable(self):
        observation = ProbeObservation(
            url=URL,
            connected=True,
            server_rejected="unable to get local issuer certificate (depth 0)",
        )

        result = classify(observation)

        assert (result.outcome, result.reason) == (ProbeOutcome.UNREACHABLE, "server_certificate")
        assert "unable to get local issuer certificate" in result.detail

    def test_a_close_notify_alone_is_no_refusal(self):
        observation = ProbeObservation(
            url=URL, connected=True, certificate_requested=True, handshake_completed=True,
            alert=TlsAlert.CLOSE_NOTIFY, http_status=200,
        )  # fmt: skip

        assert classify(observation).outcome is ProbeOutcome.ACCEPTED

    def test_alert_names(self):
        assert alert_name(48) == "unknown_ca"
        assert alert_name(116) == "certificate_required"
        assert alert_name(250) == "alert_250"


class TestJudge:
    def test_accepted_candidate_passes_with_tls_version_and_status(self):
        verdict = judge(TARGET, accepted(204, "TLSv1.2"), accepted())

        assert verdict.verdict is Verdict.PASSED
        assert (verdict.tls_version, verdict.http_status) == ("TLSv1.2", 204)
        assert "TLSv1.2" in verdict.message
        assert "HTTP 204" in verdict.message
        assert "partner-api" in verdict.message

    def test_refused_while_current_passes_is_refused(self):
        verdict = judge(TARGET, alerted(TlsAlert.UNKNOWN_CA), accepted())

        assert verdict.verdict is Verdict.REFUSED
        assert verdict.code is FindingCode.CANARY_REFUSED
        assert "unknown_ca" in verdict.message

    def test_http_refusal_the_current_did_not_get_is_refused(self):
        assert judge(TARGET, accepted(400), accepted(200)).verdict is Verdict.REFUSED
        assert judge(TARGET, accepted(403), accepted(401)).verdict is Verdict.REFUSED

    def test_both_failing_the_same_way_is_inconclusive(self):
        assert judge(TARGET, accepted(401), accepted(401)).verdict is Verdict.INCONCLUSIVE
        same_alert = judge(TARGET, alerted(TlsAlert.UNKNOWN_CA), alerted(TlsAlert.UNKNOWN_CA))
        assert same_alert.verdict is Verdict.INCONCLUSIVE
        assert same_alert.code is FindingCode.CANARY_INCONCLUSIVE

    def test_an_alert_and_a_close_are_the_same_handshake_refusal(self):
        verdict = judge(TARGET, alerted(TlsAlert.UNKNOWN_CA, completed=True), closed(completed=True))  # fmt: skip

        assert verdict.verdict is Verdict.INCONCLUSIVE

    def test_different_alerts_mean_the_backend_tells_them_apart(self):
        verdict = judge(
            TARGET, alerted(TlsAlert.UNKNOWN_CA), alerted(TlsAlert.CERTIFICATE_EXPIRED)
        )

        assert verdict.verdict is Verdict.REFUSED

    def test_refused_in_the_handshake_while_the_current_got_an_http_refusal_is_refused(self):
        assert judge(TARGET, alerted(TlsAlert.BAD_CERTIFICATE), accepted(403)).verdict is Verdict.REFUSED  # fmt: skip

    def test_candidate_getting_further_than_the_current_is_inconclusive(self):
        assert judge(TARGET, accepted(403), alerted(TlsAlert.CERTIFICATE_EXPIRED)).verdict is Verdict.INCONCLUSIVE  # fmt: skip

    def test_without_a_baseline_only_a_handshake_refusal_is_blamed_on_the_candidate(self):
        assert judge(TARGET, alerted(TlsAlert.UNKNOWN_CA), None).verdict is Verdict.REFUSED
        assert judge(TARGET, alerted(TlsAlert.UNKNOWN_CA), DOWN).verdict is Verdict.REFUSED
        assert judge(TARGET, accepted(401), None).verdict is Verdict.INCONCLUSIVE

    def test_unreachable_candidate_is_unreachable_whatever_the_current(self):
        for current in (accepted(), DOWN, None):
            verdict = judge(TARGET, TIMEOUT, current)
            assert verdict.verdict is Verdict.UNREACHABLE
            assert "timed out" in verdict.message

    @pytest.mark.parametrize(
        ("target", "why"),
        [
            (CanaryTarget(service="apim-1", backend="legacy", url="http://legacy.test/"), "not an https backend (http)"),
            (CanaryTarget(service="apim-1", backend=None, url=""), "no backend references the entity"),
            (CanaryTarget(service="apim-1", backend="odd", url="https:///path"), "the backend URL has no host"),
        ],
    )  # fmt: skip
    def test_http_backends_and_entities_without_a_backend_are_skipped(self, target, why):
        verdict = judge(target, None, None)

        assert skip_reason(target) == why
        assert verdict.verdict is Verdict.SKIPPED
        assert why in verdict.message

    def test_an_https_backend_is_probed(self):
        assert skip_reason(TARGET) is None

    def test_skipped_for_a_reason_of_the_callers(self):
        verdict = skipped(TARGET, "the candidate holds no private key")

        assert verdict.verdict is Verdict.SKIPPED
        assert verdict.code is FindingCode.CANARY_SKIPPED
        assert verdict.message == f"backend partner-api ({URL}): skipped, the candidate holds no private key"  # fmt: skip


def _verdicts(*kinds):
    observations = {
        "passed": (accepted(), accepted()),
        "refused": (alerted(TlsAlert.UNKNOWN_CA), accepted()),
        "inconclusive": (accepted(401), accepted(401)),
        "unreachable": (DOWN, DOWN),
    }
    out = []
    for i, kind in enumerate(kinds):
        target = CanaryTarget(service="apim-1", backend=f"b{i}", url=f"https://b{i}.test/")
        if kind == "skipped":
            target = CanaryTarget(service="apim-1", backend=f"b{i}", url=f"http://b{i}.test/")
            out.append(judge(target, None, None))
        else:
            out.append(judge(target, *observations[kind]))
    assert [v.verdict.value for v in out] == list(kinds)
    return out


class TestDecide:
    def test_enforce_rejects_on_any_refusal(self):
        decision = decide(CanaryMode.ENFORCE, _verdicts("passed", "unreachable", "refused"), certificate="partner-mtls")  # fmt: skip

        assert decision.decision is Decision.REJECTED
        assert "b2" in (decision.message or "")
        refused = [f for f in decision.findings if f.code is FindingCode.CANARY_REFUSED]
        assert [(f.severity, f.certificate) for f in refused] == [(Severity.ERROR, "partner-mtls")]

    def test_enforce_defers_when_a_backend_is_unreachable_and_none_refused(self):
        decision = decide(CanaryMode.ENFORCE, _verdicts("passed", "unreachable", "inconclusive"))

        assert decision.decision is Decision.DEFERRED
        assert "b1" in (decision.message or "")
        assert {f.code: f.severity for f in decision.findings} == {
            FindingCode.CANARY_PASSED: Severity.INFO,
            FindingCode.CANARY_UNREACHABLE: Severity.WARNING,
            FindingCode.CANARY_INCONCLUSIVE: Severity.WARNING,
        }

    def test_enforce_goes_on_when_everything_passed_or_was_skipped(self):
        decision = decide(CanaryMode.ENFORCE, _verdicts("passed", "skipped", "inconclusive"))

        assert decision.decision is None
        assert [f.code for f in decision.findings] == [
            FindingCode.CANARY_PASSED, FindingCode.CANARY_SKIPPED, FindingCode.CANARY_INCONCLUSIVE,
        ]  # fmt: skip
        assert decision.findings[1].severity is Severity.INFO

    def test_warn_records_every_problem_as_a_warning_and_goes_on(self):
        decision = decide(CanaryMode.WARN, _verdicts("refused", "unreachable", "inconclusive", "passed"))  # fmt: skip

        assert decision.decision is None
        assert [f.severity for f in decision.findings] == [Severity.WARNING] * 3 + [Severity.INFO]

    def test_off_records_nothing(self):
        decision = decide(CanaryMode.OFF, _verdicts("refused", "unreachable"))

        assert (decision.decision, decision.findings) == (None, ())

    def test_no_backends_at_all_goes_on(self):
        assert decide(CanaryMode.ENFORCE, []).decision is None
